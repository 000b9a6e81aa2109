"""How torch's CPU thread count holds up when other work shares the cores: the demo's tiny color
model trained for a fixed number of steps with ``--threads 1`` and ``--threads 2``, on idle
cores and beside other busy processes (each a multi-threaded torch matmul loop, as another
training would be). The figure behind :data:`rplacevit.devices.DEFAULT_THREADS`.

    python benches/threads.py                      # 300 steps, loads of 0 and 2 processes
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rplacevit

#: A busy neighbour: torch at its default thread count, multiplying matrices until killed.
LOAD = "import torch\nx = torch.randn(512, 512)\nwhile True:\n    x = torch.tanh(x @ x)\n"


def train_seconds(dataset: Path, threads: int, steps: int, folder: Path) -> float:
    out = folder / f"run-{threads}-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "rplacevit", "train", "color", str(dataset), "-o", str(out), "--steps", str(steps),
               "--window", "16", "--centre", "4", "--lr", "3e-3", "--val-every", str(steps), "--device", "cpu",
               "--threads", str(threads), "--quiet"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    shutil.rmtree(out)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--loads", default="0,2", help="numbers of busy neighbours to try (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.steps} steps of the demo's "
          f"color model (tiny, 16-pixel windows, batches of 64), wall seconds including the process start")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        dataset = folder / "sample"
        rplacevit.ingest(rplacevit.SAMPLE_CSV, dataset, progress=False)
        for load in (int(n) for n in args.loads.split(",")):
            neighbours = [subprocess.Popen([sys.executable, "-c", LOAD]) for _ in range(load)]
            try:
                time.sleep(2 if load else 0)
                for threads in (1, 2):
                    runs = [train_seconds(dataset, threads, args.steps, folder) for _ in range(args.repeats)]
                    print(f"busy neighbours {load}, --threads {threads}: " + ", ".join(f"{s:.1f} s" for s in runs), flush=True)
            finally:
                for neighbour in neighbours:
                    neighbour.kill()
                    neighbour.wait()


if __name__ == "__main__":
    main()
