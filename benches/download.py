"""Download and folder-ingest benchmark: a synthetic history split into official-named gzip
parts, served by a Range-capable HTTP server on 127.0.0.1 and fetched with ``rplacevit.download``
(bytes/s; the disk's write rate beside it), then the ingest of the folder of parts against the
ingest of one file with the same rows, in the same run. ``--stop`` measures instead how long
``rplacevit download`` takes to end after SIGTERM while its server stalls the GET (before the
answer, and midway through the body).

    python benches/download.py --rows 10000000 --parts 10     # parts made once in bench-data/
    python benches/download.py --stop
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import rplacevit
from rplacevit import download as dl

ROOT = Path(__file__).resolve().parent.parent


class Files(http.server.SimpleHTTPRequestHandler):
    """The standard library's file handler, with ``Range: bytes=N-``."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_head(self):
        path = Path(self.translate_path(self.path))
        ranged = self.headers.get("Range")
        if not ranged or not path.is_file():
            return super().send_head()
        start, size = int(ranged.removeprefix("bytes=").rstrip("-")), path.stat().st_size
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        return f


class Stalling(http.server.BaseHTTPRequestHandler):
    """Announces a file on HEAD, then holds the GET until the server closes: ``/silent`` sends
    nothing, ``/midway`` its headers and the first half of the body."""

    protocol_version = "HTTP/1.1"
    SIZE = 1 << 17

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", str(self.SIZE))
        self.end_headers()

    def do_GET(self):
        if self.path.endswith("midway"):
            self.do_HEAD()
            self.wfile.write(bytes(self.SIZE // 2))
            self.wfile.flush()
        self.server.stalled.set()
        self.server.closing.wait()


def stop_seconds(where: str, scratch: Path) -> tuple[float, int]:
    """Seconds from SIGTERM to the end of a ``rplacevit download`` whose GET the server holds
    (``where``: ``silent`` or ``midway``), and its exit status."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads, server.stalled, server.closing = True, threading.Event(), threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    listing = scratch / f"{where}.txt"
    listing.write_text(f"http://127.0.0.1:{server.server_address[1]}/{where}\n")
    process = subprocess.Popen([sys.executable, "-m", "rplacevit", "download", "--url-list", str(listing), "-o", str(scratch / where),
                                "--quiet"], stderr=subprocess.DEVNULL)
    try:
        if not server.stalled.wait(60):
            raise RuntimeError("the download never sent its GET")
        time.sleep(1.0)  # the transfer is now blocked in its read
        started = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=300)
        return time.perf_counter() - started, status
    finally:
        process.kill()
        server.closing.set()
        server.shutdown()
        server.server_close()


def make_parts(rows: int, seed: int, parts: int, data: Path) -> tuple[Path, Path]:
    """The single file, and a folder of ``parts`` gzip parts with the same rows (made once)."""
    single = data / f"synth_{rows}_{seed}.csv.gz"
    if not single.exists():
        rplacevit.synth(single, rows, seed=seed)
    folder = data / f"synth_{rows}_{seed}-parts{parts}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        with gzip.open(single, "rb") as source:
            header = source.readline()
            per_part = -(-rows // parts)
            for k in range(parts):
                with gzip.open(folder / dl.part_name(2022, k), "wb", compresslevel=6) as out:
                    out.write(header)
                    for _ in range(per_part):
                        line = source.readline()
                        if not line:
                            break
                        out.write(line)
        (folder / ".complete").write_text("")
    return single, folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parts", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "bench-data")
    parser.add_argument("--stop", action="store_true", help="measure only how long a stop takes while the server stalls")
    args = parser.parse_args()
    if args.stop:
        with tempfile.TemporaryDirectory() as scratch:
            for where in ("silent", "midway"):
                seconds, status = stop_seconds(where, Path(scratch))
                print(f"stop, GET stalled {'before its answer' if where == 'silent' else 'midway through the body'}: "
                      f"{seconds:.2f} s from SIGTERM to exit (status {status})")
        return
    single, folder = make_parts(args.rows, args.seed, args.parts, args.data_dir)
    size = sum(p.stat().st_size for p in folder.glob("*.csv.gzip"))
    print(f"data: {args.rows:,} synthetic rows as {args.parts} parts ({size / 2**20:,.0f} MiB of gzip); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Files(*a, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(dir=args.data_dir) as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        with open(scratch / "disk-probe", "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(min(size >> 20, 2048)):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        disk = min(size, 2048 << 20) / (time.perf_counter() - started)
        (scratch / "disk-probe").unlink()
        summary = dl.download(scratch / "files", parts=f"0-{args.parts - 1}", base_url=f"http://127.0.0.1:{server.server_address[1]}/",
                              jobs=args.jobs, progress=False)
        print(f"download: {summary['bytes'] / summary['seconds'] / 2**20:,.0f} MiB/s ({summary['seconds']:.1f} s, --jobs {args.jobs}, "
              f"gzip and sha256 checks included); the disk writes {disk / 2**20:,.0f} MiB/s with fsync")
        server.shutdown()

        for name, inputs in (("one file", [single]), (f"folder of {args.parts} parts", [scratch / "files"])):
            started = time.perf_counter()
            done = rplacevit.ingest(inputs, scratch / "dataset", force=True, progress=False)
            seconds = time.perf_counter() - started
            inside = sum(done["phase_seconds"].values())
            print(f"ingest {name}: {done['rows'] / seconds:,.0f} rows/s ({seconds:.1f} s; read + parse "
                  f"{done['phase_seconds']['read_parse']:.1f} s, {done['rows'] / inside:,.0f} rows/s inside ingest)")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
