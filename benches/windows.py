"""Reader benchmark: batched windows and targets at random events, canvas_at, open time, and the
original project's method (one SQL query per view) on the same partitions, side by side.

    python benches/windows.py --rows 10000000     # synthetic with hotspots (made once in bench-data/)
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import rplacevit

ROOT = Path(__file__).resolve().parent.parent


def dataset_for(rows: int, seed: int, data_dir: Path) -> Path:
    source = data_dir / f"synth_{rows}_{seed}.csv.gz"
    dataset = data_dir / f"synth_{rows}_{seed}"
    if not source.exists():
        rplacevit.synth(source, rows, seed=seed)
    try:
        rplacevit.open(dataset)
    except rplacevit.DatasetError:  # none yet, or one of an earlier format
        rplacevit.ingest(source, dataset, force=True)
    return dataset


def rate(fn, batches: list[np.ndarray]) -> float:
    """Items per second of fn over the batches (after one warm-up batch)."""
    fn(batches[0])
    start = time.perf_counter()
    for batch in batches:
        fn(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def original_view(partitions: list[sqlite3.Connection], snapshots: np.ndarray, partition_size: int, event_id: int, t: int, x: int, y: int) -> np.ndarray:
    """The original's view: the state at the end of the previous partition plus one SQL query on
    the event's partition, one-hot encoded as 64×64×32 float32 (cut at the edge in the original;
    here the SQL is the same and the edge is ignored)."""
    p = event_id // partition_size
    view = snapshots[p, max(y - 32, 0) : y + 32, max(x - 32, 0) : x + 32].copy()
    rows = partitions[p].execute(
        "SELECT x, y, color_id, MAX(timestamp) FROM pixels WHERE timestamp < ? AND x >= ? AND x < ? AND y >= ? AND y < ? GROUP BY x, y",
        (t, x - 32, x + 32, y - 32, y + 32),
    ).fetchall()
    for px, py, color, _ in rows:
        view[py - max(y - 32, 0), px - max(x - 32, 0)] = color
    return np.eye(32, dtype=np.float32)[np.minimum(view, 31)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "bench-data")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    dataset = dataset_for(args.rows, args.seed, args.data_dir)

    opener = "import sys, time, rplacevit; s = time.perf_counter(); h = rplacevit.open(sys.argv[1]); print(time.perf_counter() - s)"
    open_seconds = float(subprocess.run([sys.executable, "-c", opener, str(dataset)], capture_output=True, text=True, check=True).stdout)

    h = rplacevit.open(dataset)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, len(h), 256) for _ in range(args.batches)]
    print(f"data:     synthetic with hotspots, {len(h):,} events ({dataset.name}); {os.cpu_count()} cores, {platform.machine()}")
    print(f"open:     {open_seconds * 1000:.1f} ms in a fresh process")
    both = rate(lambda b: (h.windows(b, 64), h.color_targets(b)), batches)
    print(f"windows:  {both:,.0f} windows/s (64×64 + color_targets placed, batches of 256)")
    print(f"majority: {rate(lambda b: h.color_targets(b, 'next_minute_majority'), batches):,.0f} targets/s (next_minute_majority, 60 s)")
    print(f"time:     {rate(lambda b: h.time_targets(b, 16), batches[: max(1, args.batches // 4)]):,.0f} targets/s (16×16, 1 h horizon)")
    print(f"ages:     {rate(lambda b: h.age_buckets(b, 64), batches):,.0f} windows/s (64×64 age buckets, the models' age input)")
    print(f"placers:  {rate(lambda b: h.last_placers(b, 64), batches):,.0f} windows/s (64×64 last placers, the users input)")
    print(f"previous: {rate(lambda b: h.previous_colors(b, 64), batches):,.0f} windows/s (64×64 previous colors, the previous input)")
    print(f"placer:   {rate(lambda b: h.placer_history(b, 8), batches):,.0f} events/s (placer_history, k = 8)")
    first, last = h.time_range
    times = rng.integers(first, last, 50)
    h.canvas_at(int(times[0]))
    durations = []
    for t in times:
        start = time.perf_counter()
        h.canvas_at(int(t))
        durations.append(time.perf_counter() - start)
    print(f"canvas_at: mean {np.mean(durations) * 1000:.1f} ms, max {np.max(durations) * 1000:.1f} ms (2000×2000, 50 random times)")

    info = rplacevit.info(dataset)
    snapshots = np.load(dataset / "snapshots.npy", mmap_mode="r")
    partitions = [sqlite3.connect(f"file:{p}?mode=ro", uri=True) for p in sorted((dataset / "partitions").glob("*.sqlite"))]
    columns = h.events()
    sample = batches[0][:64]
    start = time.perf_counter()
    for i in sample:
        original_view(partitions, snapshots, info["partition_size"], int(i), int(columns["timestamp"][i]), int(columns["x"][i]), int(columns["y"][i]))
    original = len(sample) / (time.perf_counter() - start)
    print(f"original: {original:,.0f} views/s (one SQL query per view + one-hot, same partitions) → {both / original:,.0f}× faster")


if __name__ == "__main__":
    main()
