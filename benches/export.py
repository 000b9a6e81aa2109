"""Export benchmark: the 10 M-event synthetic dataset (bench-data/, generated and ingested once)
written as parquet by ``rplacevit export``, in a fresh process so that its peak memory is its
own; then the file's size and two DuckDB queries over it, and polars reading it.

    python benches/export.py --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import rplacevit
from windows import dataset_for  # the benchmarks' shared synthetic dataset

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
from rplacevit.export import export
start = time.perf_counter()
summary = export(sys.argv[1], sys.argv[2], progress=False)
print(json.dumps({"seconds": time.perf_counter() - start, "events": summary["events"], "row_groups": summary["row_groups"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "bench-data")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    dataset = dataset_for(args.rows, args.seed, args.data_dir)
    source = dataset.with_name(dataset.name + ".csv.gz")
    history = rplacevit.open(dataset)
    columns_bytes = sum(f.stat().st_size for f in (dataset / "events").iterdir())
    print(f"data:     {len(history):,} events ({dataset.name}, {source.stat().st_size / 2**20:,.0f} MiB of csv.gz, "
          f"{columns_bytes / 2**20:,.0f} MiB of event columns); {os.cpu_count()} cores, {platform.machine()}, "
          f"Python {platform.python_version()}")
    out = args.data_dir / "export-bench.parquet"
    done = subprocess.run([sys.executable, "-c", CHILD, str(dataset), str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr)
    result = json.loads(done.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    size = out.stat().st_size
    print(f"export:   {result['seconds']:.1f} s = {result['events'] / result['seconds'] / 1e6:,.1f} M events/s, "
          f"{result['row_groups']} row groups, {size / 2**20:,.0f} MiB ({size / result['events']:.2f} bytes per event), "
          f"peak RSS {peak / 2**20:,.0f} MiB")
    try:
        import duckdb
    except ImportError:
        duckdb = None
    if duckdb is not None:
        for query in (f"SELECT count(*) FROM '{out}'",
                      f"SELECT color_hex, count(*) AS n FROM '{out}' GROUP BY color_hex ORDER BY n DESC LIMIT 3",
                      f"SELECT user_id, count(*) AS n FROM '{out}' GROUP BY user_id ORDER BY n DESC LIMIT 3"):
            start = time.perf_counter()
            duckdb.sql(query).fetchall()
            print(f"duckdb:   {time.perf_counter() - start:.2f} s for {query.replace(str(out), 'FILE')}")
    try:
        import polars as pl
    except ImportError:
        pl = None
    if pl is not None:
        start = time.perf_counter()
        frame = pl.read_parquet(out)
        print(f"polars:   {time.perf_counter() - start:.2f} s to read all {frame.height:,} rows")
    out.unlink()


if __name__ == "__main__":
    main()
