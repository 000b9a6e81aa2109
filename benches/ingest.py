"""End-to-end ingest benchmark: gzip CSV → sorted SQLite partitions with indexes and snapshots.

    python benches/ingest.py --rows 10000000      # synthetic (generated once into bench-data/)
    python benches/ingest.py --sample             # the sample shipped in the package

Each ingest runs in a child process so its peak resident memory can be measured alone.
Prints rows/s, where the time went, and peak memory per event; then how long opening the
dataset takes (median of 20) and how fast `verify` reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import rplacevit

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, rplacevit
summary = rplacevit.ingest(sys.argv[1:-1], sys.argv[-1], force=True, progress=False)
summary.pop("sources"); summary.pop("path")
print(json.dumps(summary))
"""


def ingest_in_child(inputs: list[Path], out: Path) -> tuple[dict, float, int]:
    """(summary, wall seconds, peak RSS bytes) of one ingest in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, *map(str, inputs), str(out)], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"ingest failed:\n{result.stderr}")
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kib <= before:
        print("warning: peak RSS not attributable (an earlier child was larger)", file=sys.stderr)
    return json.loads(result.stdout), wall, peak_kib * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="synthetic rows (default: %(default)s)")
    parser.add_argument("--sample", action="store_true", help="use the shipped sample instead of synthetic data")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "bench-data")
    args = parser.parse_args()

    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.sample:
        source, label = rplacevit.SAMPLE_CSV, "shipped sample"
    else:
        source = args.data_dir / f"synth_{args.rows}_{args.seed}.csv.gz"
        label = f"synthetic, {args.rows:,} rows, seed {args.seed}"
        if not source.exists():
            start = time.perf_counter()
            rplacevit.synth(source, args.rows, seed=args.seed)
            print(f"generated {source.name} in {time.perf_counter() - start:.1f} s")
    out = args.data_dir / "ingest-bench"
    summary, wall, peak = ingest_in_child([source], out)
    phases = summary["phase_seconds"]
    inside = sum(phases.values())
    print(f"data:      {label} ({source.stat().st_size / 1e6:.1f} MB gzip)")
    print(f"machine:   {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"events:    {summary['events']:,} ({summary['rows']:,} rows, {summary['users']:,} users, {summary['partitions']} partitions)")
    print(f"ingest:    {inside:.2f} s inside ingest = {summary['rows'] / inside:,.0f} rows/s "
          f"({wall:.2f} s with process start = {summary['rows'] / wall:,.0f} rows/s)")
    print("phases:    " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items()))
    print(f"peak RSS:  {peak / 2**20:,.0f} MiB = {peak / summary['events']:.1f} bytes/event "
          f"(users: {summary['users']:,})")
    opens = []
    for _ in range(20):
        start = time.perf_counter()
        rplacevit.open(out)
        opens.append(time.perf_counter() - start)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    start = time.perf_counter()
    problems = rplacevit.verify(out, progress=False)
    seconds = time.perf_counter() - start
    print(f"open:      {sorted(opens)[10] * 1000:.2f} ms (median of 20)")
    print(f"verify:    {seconds:.2f} s for {size / 1e6:,.0f} MB = {size / seconds / 1e9:.2f} GB/s, "
          f"{summary['events'] / seconds:,.0f} events/s ({len(problems)} problems)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
