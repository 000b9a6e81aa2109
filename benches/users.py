"""Users benchmark: the per-user features, placer_history and the cluster command on a synthetic
history (generated and ingested once into bench-data/), each in a fresh process so that its
peak memory is its own.

    python benches/users.py --rows 10000000
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
from pathlib import Path

import rplacevit
from windows import dataset_for  # the benchmarks' shared synthetic dataset

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
import numpy as np
import rplacevit
from rplacevit import users
h = rplacevit.open(sys.argv[1])
what = sys.argv[2]
result = {}
if what == "features":
    again = []
    for _ in range(1 + 9):
        start = time.perf_counter()
        columns = h._core.user_features(None)
        again.append(time.perf_counter() - start)
    result["seconds"], again = again[0], sorted(again[1:])
    result["best"], result["median"] = again[0], again[len(again) // 2]
    result["users"] = int((columns["count"] > 0).sum())
elif what == "placer":
    ids = np.random.default_rng(0).integers(0, len(h), 400 * 1024).astype(np.int64)
    h.placer_history(ids[:1024], 8)
    start = time.perf_counter()
    for batch in ids.reshape(-1, 1024):
        h.placer_history(batch, 8)
    result["seconds"] = time.perf_counter() - start
    result["events"] = len(ids)
else:
    start = time.perf_counter()
    users.cluster(h, sys.argv[3], clusters=100, seed=0, progress=False, say=lambda _: None)
    result["seconds"] = time.perf_counter() - start
print(json.dumps(result))
"""


def child(*args: str) -> tuple[dict, int]:
    """(what the child printed, its peak RSS in bytes)."""
    result = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(result.stderr)
    return json.loads(result.stdout), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "bench-data")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    dataset = dataset_for(args.rows, args.seed, args.data_dir)
    history = rplacevit.open(dataset)
    print(f"data:     {len(history):,} events, {history.users:,} users ({dataset.name}); {os.cpu_count()} cores, "
          f"{platform.machine()}, Python {platform.python_version()}")
    features, peak = child(str(dataset), "features")
    rate = lambda seconds: f"{seconds:.2f} s = {len(history) / seconds / 1e6:,.1f} M events/s"  # noqa: E731
    print(f"features: {rate(features['seconds'])} the first time; 9 more calls: best {rate(features['best'])}, "
          f"median {rate(features['median'])} ({features['users']:,} users with events); peak RSS {peak / 2**20:,.0f} MiB")
    placer, _ = child(str(dataset), "placer")
    print(f"placer:   {placer['events'] / placer['seconds'] / 1e6:,.2f} M events/s (k=8, batches of 1024 random events)")
    out = args.data_dir / "users-cluster-bench"
    shutil.rmtree(out, ignore_errors=True)
    clustered, peak = child(str(dataset), "cluster", str(out))
    print(f"cluster:  {clustered['seconds']:.1f} s for {features['users']:,} users, 100 clusters (features cached), "
          f"peak RSS {peak / 2**20:,.0f} MiB")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
