"""Viewer benchmark on the 10 M-event synthetic dataset (bench-data/, generated and ingested
once): the reader's region reads and the PNG encoders in process; then a real
``rplacevit view`` server on loopback — sequential latencies of /api/canvas.png (the whole
2000×2000 canvas and 512×512 regions at random times) and /api/pixel (the busiest pixels),
32 concurrent clients hammering random canvases for 20 s (errors, latencies, the server's
memory), and, when Chromium is installed, the frames per second a headless browser shows while
its slider is scrubbed.

    python benches/view.py --rows 10000000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

import rplacevit
from rplacevit.view import Viewer, png
from windows import dataset_for  # the benchmarks' shared synthetic dataset

ROOT = Path(__file__).resolve().parent.parent


def median_ms(fn, calls) -> float:
    fn(calls[0])
    times = []
    for call in calls:
        start = time.perf_counter()
        fn(call)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def in_process(history, rng) -> None:
    first, last = history.time_range
    times = [int(t) for t in rng.integers(first, last, size=30)]
    corners = rng.integers(0, 2000 - 512, size=(30, 2))
    full = median_ms(lambda t: history.canvas_at(t), times)
    whole = median_ms(lambda t: history.canvas_at(t, (0, 0, 2000, 2000)), times)
    part = median_ms(lambda i: history.canvas_at(times[i], (*corners[i], *(corners[i] + 512))), list(range(30)))
    print(f"reader:   canvas_at full (partition snapshot + replay) {full:.1f} ms, the same from the tiles {whole:.1f} ms, "
          f"a 512×512 region {part:.2f} ms (medians of 30 random times)")
    canvases = [history.canvas_at(t) for t in times[:10]]
    palette = history.palette_rgb
    from PIL import Image

    def pillow(canvas, level, mode):
        picture = Image.fromarray(canvas)
        if mode == "P":
            picture.putpalette(bytes(np.asarray(palette, np.uint8).ravel()))
        else:
            picture = Image.fromarray(np.asarray(palette, np.uint8)[canvas])
        out = io.BytesIO()
        picture.save(out, "PNG", compress_level=level)
        return len(out.getvalue())

    for mode, level in (("P", 0), ("P", 1), ("P", 6), ("RGB", 1)):
        ms = median_ms(lambda c: pillow(c, level, mode), canvases)
        size = np.median([pillow(c, level, mode) for c in canvases[:3]])
        print(f"png:      Pillow {mode} level {level}: {ms:.1f} ms, {size / 1e6:.2f} MB for the 2000×2000 canvas")
    ms = median_ms(lambda c: png(c[:512, :512], palette), canvases)
    print(f"png:      what the viewer uses (P, level 1) on 512×512: {ms:.2f} ms")


def start_server(dataset: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "rplacevit", "view", str(dataset), "--port", "0", *flags], stdout=subprocess.PIPE,
                               text=True)
    line = process.stdout.readline()
    if "http://" not in line:
        sys.exit(f"the server did not start: {line}")
    return process, line.split(" at ")[1].split()[0]


def sequential(url: str, history, rng) -> None:
    first, last = history.time_range
    columns = history.events()
    counts = np.bincount(columns["y"].astype(np.int64) * 2000 + columns["x"], minlength=4_000_000)
    busiest = np.argsort(-counts)[:20]
    with httpx.Client(base_url=url, timeout=60) as client:
        def get(path):
            response = client.get(path)
            response.raise_for_status()
            return response

        times = [int(t) for t in rng.integers(first, last, size=40)]
        full = median_ms(lambda t: get(f"api/canvas.png?t={t}"), times)
        corners = rng.integers(0, 2000 - 512, size=(40, 2))
        part = median_ms(lambda i: get(f"api/canvas.png?t={times[i]}&region={corners[i][0]},{corners[i][1]},"
                                       f"{corners[i][0] + 512},{corners[i][1] + 512}"), list(range(40)))
        pixel = median_ms(lambda k: get(f"api/pixel?x={k % 2000}&y={k // 2000}&t={times[0]}"), [int(k) for k in busiest])
        heat = median_ms(lambda t: get(f"api/heat.png?t0={t - 3_600_000}&t1={t}"), times[:20])
    print(f"http:     /api/canvas.png 2000×2000 {full:.1f} ms, 512×512 {part:.1f} ms (medians of 40 random times); /api/pixel "
          f"{pixel:.1f} ms for the 20 busiest pixels ({counts[busiest[-1]]:,} to {counts[busiest[0]]:,} events); "
          f"/api/heat.png of the last hour over the whole canvas {heat:.1f} ms")


async def run_clients(url: str, clients: int, client, sample, every: float, until: float, timeout: float) -> None:
    """Runs ``clients`` coroutines ``client(k, http)`` at once over one pool of connections to
    ``url``, while a thread calls ``sample()`` every ``every`` seconds until a second past
    ``until`` (``time.monotonic``)."""

    def watch() -> None:
        while time.monotonic() < until + 1:
            sample()
            time.sleep(every)

    watcher = threading.Thread(target=watch)
    watcher.start()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http:
        await asyncio.gather(*(client(k, http) for k in range(clients)))
    watcher.join()


async def hammer(url: str, history, clients: int, seconds: float, pid: int) -> None:
    first, last = history.time_range
    latencies, errors = [], []
    memory = [rss_mib(pid)]
    stop = time.monotonic() + seconds

    async def client(k: int, http: httpx.AsyncClient) -> None:
        rng = np.random.default_rng(k)
        while time.monotonic() < stop:
            t = int(rng.integers(first, last))
            start = time.perf_counter()
            try:
                response = await http.get(f"api/canvas.png?t={t}")
                if response.status_code != 200 or response.content[:4] != b"\x89PNG":
                    errors.append(response.status_code)
            except httpx.HTTPError as error:
                errors.append(repr(error))
            latencies.append(time.perf_counter() - start)

    await run_clients(url, clients, client, lambda: memory.append(rss_mib(pid)), 0.25, stop, 120)
    print(f"hammer:   {clients} clients, {seconds:.0f} s of random whole canvases: {len(latencies):,} requests "
          f"({len(latencies) / seconds:.1f}/s), {len(errors)} errors, latency median {np.median(latencies) * 1000:.0f} ms, "
          f"p99 {np.percentile(latencies, 99) * 1000:.0f} ms; server RSS {memory[0]:.0f} MiB before, peak {max(memory):.0f} MiB, "
          f"{memory[-1]:.0f} MiB after")


def scrub(url: str) -> None:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        print("browser:  skipped (no chromium and chromedriver)")
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        for view, what in (("", "the whole canvas (fit)"), ("x=1000&y=1000&z=4", "zoom 4 (a 300×215 region)")):
            driver.get(f"{url}#{view}")
            driver.refresh()
            deadline = time.monotonic() + 60
            while not driver.execute_script("return !!(window.viewer && viewer.info && viewer.idle() && viewer.layers.canvas.image)"):
                if time.monotonic() > deadline:
                    sys.exit("the page did not load")
                time.sleep(0.05)
            frames = driver.execute_async_script("""
                const done = arguments[arguments.length - 1];
                const slider = document.getElementById('slider');
                const first = Number(slider.min), last = Number(slider.max);
                const before = viewer.frameCount;
                let i = 0;
                const timer = setInterval(() => {
                    slider.value = first + (last - first) * ((i++ * 7919) % 1000) / 1000;
                    slider.dispatchEvent(new Event('input'));
                }, 16);
                setTimeout(() => { clearInterval(timer); done(viewer.frameCount - before); }, 5000);
            """)
            print(f"browser:  scrubbing the slider at {what}: {frames / 5:.1f} new frames per second (headless Chromium, same machine)")
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "bench-data")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    dataset = dataset_for(args.rows, args.seed, args.data_dir)
    history = rplacevit.open(dataset)
    print(f"data:     {len(history):,} events ({dataset.name}), {history.canvas_width}×{history.canvas_height}; {os.cpu_count()} cores, "
          f"{platform.machine()}, Python {platform.python_version()}")
    rng = np.random.default_rng(0)
    in_process(history, rng)
    Viewer(dataset)  # the first open checks the columns: not part of any request below
    process, url = start_server(dataset)
    try:
        sequential(url, history, rng)
        asyncio.run(hammer(url, history, args.clients, args.seconds, process.pid))
        scrub(url)
    finally:
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    main()
