"""Download and folder-ingest benchmark: a synthetic history split into official-named gzip
parts, served by a Range-capable HTTP server on 127.0.0.1 and fetched with ``rplacevit.download``
(bytes/s; the disk's write rate beside it), then the ingest of the folder of parts against the
ingest of one file with the same rows, in the same run.

    python benches/download.py --rows 10000000 --parts 10     # parts made once in bench-data/
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import os
import platform
import shutil
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
    args = parser.parse_args()
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
