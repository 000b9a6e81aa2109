"""Evaluation benchmark: events evaluated per second by :func:`rplacevit.evaluate.evaluate`
with tiny random-weight models, and how that time splits between the models and the baselines.

    python benches/evaluate.py                                   # the shipped sample, last 40% of it
    python benches/evaluate.py --data bench-data/synth_10000000_1 --samples 20000
    python benches/evaluate.py --device cuda --preset small

The split times the same calls :func:`evaluate` makes, one part at a time, on the same events:
the readers' windows and targets, each model's forward pass, and each baseline's reads.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

import rplacevit
from rplacevit.baselines import RECENT_MS, RECENT_SIZE, current_ranking, neighbourhood_ranking, recent_ranking
from rplacevit.evaluate import choose_events, evaluate
from rplacevit.models import ModelConfig, build_model
from rplacevit.times import format_time


def timed(work, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="dataset folder (default: the shipped sample, ingested to a temporary folder)")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement; the fastest is shown")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        data = args.data
        if data is None:
            data = Path(scratch) / "sample"
            rplacevit.ingest(rplacevit.SAMPLE_CSV, data)
        history = rplacevit.open(data)
        first, last = history.time_range
        t_from = first + (last - first) * 6 // 10
        torch.manual_seed(0)
        device = torch.device(args.device)
        color = build_model(ModelConfig.preset(args.preset, "color", window=args.window)).to(device).eval()
        timer = build_model(ModelConfig.preset(args.preset, "time", window=args.window)).to(device).eval()
        ids, _ = choose_events(history, None, t_from, None, args.samples, 0)
        n = len(ids)
        print(f"{data}: {len(history):,} events; evaluating {n:,} from {format_time(t_from)}; "
              f"{args.preset} models, window {args.window}, batch {args.batch_size}, {args.device}, "
              f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")

        for label, time_model in (("color only", None), ("color + time", timer)):
            seconds = timed(lambda: evaluate(data, color, time_model, t0=t_from, samples=args.samples, batch_size=args.batch_size,
                                             device=device, progress=False), args.repeats)
            print(f"  evaluate ({label}): {seconds:.2f} s, {n / seconds:,.0f} events/s")

        def batches(work):
            def run():
                for start in range(0, n, args.batch_size):
                    work(ids[start : start + args.batch_size])
            return run

        def forward(model, side):
            def run(batch):
                with torch.inference_mode():
                    model(torch.from_numpy(history.windows(batch, side)).to(device)).cpu()
            return run

        parts = {
            "color model (windows + forward)": forward(color, args.window),
            "time model (windows + targets + forward)": lambda b: (history.time_targets(b, timer.config.centre), forward(timer, args.window)(b)),
            "current + neighbourhood baselines": lambda b: (current_ranking(w := history.windows(b, 3)), neighbourhood_ranking(w)),
            "recent baseline": lambda b: recent_ranking(*history.recent_colors(b, RECENT_SIZE, RECENT_MS)),
            "recency baseline": lambda b: history.last_change_times(b, timer.config.centre),
        }
        for name, work in parts.items():
            seconds = timed(batches(work), args.repeats)
            print(f"    {name:<42} {seconds:6.3f} s  ({n / seconds:,.0f} events/s)")


if __name__ == "__main__":
    main()
