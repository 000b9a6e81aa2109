"""Viewer memory against the number of clients (issue 29): for each number of clients, a fresh
``rplacevit view`` server on loopback, hammered for ``--seconds`` by that many clients at once,
each asking in turn for a random whole canvas, a 512×512 region, the heat of an hour over the
whole canvas and a busy pixel's history (with models, also a pixel's prediction and a 128×128
"changes soon" map); then the server's peak resident memory (VmHWM), its most threads, the
answers and the errors.

    python benches/view_memory.py --dataset DATASET [--clients 4 32 128] [--seconds 20]
    python benches/view_memory.py --rows 2000000    # a synthetic dataset, in a temporary folder deleted after

The server inherits the environment: ``MALLOC_ARENA_MAX=1 python benches/view_memory.py ...``
measures it with a single allocator arena.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

import rplacevit
from view import run_clients, start_server  # the viewer benchmark's server on a free port, and its clients


def status(pid: int) -> dict[str, int]:
    """VmHWM (the peak resident memory) and VmRSS in kB, and Threads, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {key: int(fields[key].split()[0]) for key in ("VmHWM", "VmRSS", "Threads")}


def busiest_pixels(history, n: int = 100) -> np.ndarray:
    """The ``n`` pixels with the most events, as y · width + x."""
    columns = history.events()
    return np.argsort(-np.bincount(columns["y"].astype(np.int64) * history.canvas_width + columns["x"]))[:n]


def paths(history, busiest: np.ndarray, models: bool, rng: np.random.Generator):
    """An endless mix of the viewer's heavy requests at random moments."""
    first, last = history.time_range
    while True:
        t = int(rng.integers(first + 3_600_000, last))
        x0, y0 = int(rng.integers(history.canvas_width - 512)), int(rng.integers(history.canvas_height - 512))
        key = int(busiest[rng.integers(len(busiest))])
        x, y = key % history.canvas_width, key // history.canvas_width
        yield f"api/canvas.png?t={t}"
        yield f"api/canvas.png?t={t}&region={x0},{y0},{x0 + 512},{y0 + 512}"
        yield f"api/heat.png?t0={t - 3_600_000}&t1={t}"
        yield f"api/pixel?x={x}&y={y}&t={t}"
        if models:
            yield f"api/predict?x={x}&y={y}&t={t}"
            yield f"api/predict.png?t={t}&region={x0},{y0},{x0 + 128},{y0 + 128}"


async def hammer(url: str, history, clients: int, seconds: float, pid: int, models: bool) -> dict:
    answers, errors = [0], []
    peak_threads = [status(pid)["Threads"]]
    busiest = busiest_pixels(history)
    stop = time.monotonic() + seconds

    async def client(k: int, http: httpx.AsyncClient) -> None:
        for path in paths(history, busiest, models, np.random.default_rng(k)):
            if time.monotonic() >= stop:
                return
            try:
                response = await http.get(path)
                if response.status_code == 200:
                    answers[0] += 1
                else:
                    errors.append(response.status_code)
            except httpx.HTTPError as error:
                errors.append(repr(error))

    await run_clients(url, clients, client, lambda: peak_threads.append(status(pid)["Threads"]), 0.1, stop, 300)
    return {"answers": answers[0], "errors": errors, "threads": max(peak_threads)}


def measure(dataset: Path, clients: int, seconds: float, flags: list[str]) -> None:
    history = rplacevit.open(dataset)
    process, url = start_server(dataset, *flags)
    try:
        httpx.get(url + "api/info", timeout=60).raise_for_status()
        idle = status(process.pid)
        result = asyncio.run(hammer(url, history, clients, seconds, process.pid, bool(flags)))
        after = status(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    print(f"{clients:>4} clients: {result['answers']:,} answers in {seconds:.0f} s ({result['answers'] / seconds:.1f}/s), "
          f"{len(result['errors'])} errors{' ' + repr(result['errors'][:3]) if result['errors'] else ''}; server RSS "
          f"{idle['VmRSS'] / 1024:.0f} MiB idle, peak {after['VmHWM'] / 1024:.0f} MiB, {after['VmRSS'] / 1024:.0f} MiB after; "
          f"at most {result['threads']} threads", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, help="an ingested dataset (default: a synthetic one of --rows)")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clients", type=int, nargs="+", default=[4, 32, 128])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--color-model", metavar="CKPT")
    parser.add_argument("--time-model", metavar="CKPT")
    args = parser.parse_args()
    flags: list[str] = []
    for flag, path in (("--color-model", args.color_model), ("--time-model", args.time_model)):
        flags += [flag, path] if path else []
    with tempfile.TemporaryDirectory(prefix="view-memory-") as scratch:
        dataset = args.dataset
        if dataset is None:
            dataset = Path(scratch) / "dataset"
            rplacevit.synth(Path(scratch) / "synth.csv.gz", args.rows, seed=args.seed)
            rplacevit.ingest(Path(scratch) / "synth.csv.gz", dataset)
        history = rplacevit.open(dataset)
        arenas = os.environ.get("MALLOC_ARENA_MAX", "unset")
        print(f"data: {len(history):,} events, {history.canvas_width}×{history.canvas_height}; {os.cpu_count()} cores, "
              f"{platform.machine()}, Python {platform.python_version()}; MALLOC_ARENA_MAX={arenas}"
              f"{'; models: ' + ' '.join(flags) if flags else ''}", flush=True)
        for clients in args.clients:
            measure(dataset, clients, args.seconds, flags)


if __name__ == "__main__":
    main()
