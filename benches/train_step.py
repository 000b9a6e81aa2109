"""Training-step benchmark: samples per second of a preset, and the data loader's share of the
step (one Rust call per model input and one for the targets per batch, in the training process).

    python benches/train_step.py --preset tiny --device cpu                   # CPU
    python benches/train_step.py --preset tiny --device cpu --inputs color,age,placer,users
    python benches/train_step.py --preset small --device cuda --amp --batch-size 256
    python benches/train_step.py --preset base --device cuda --amp --batch-size 128 --task time

Data: the shipped sample (ingested once into bench-data/), or --data DATASET.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

import rplacevit
from rplacevit.data import ColorDataset, TimeDataset, UserVectors, to_device
from rplacevit.models import ModelConfig, build_model, parameter_count

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--task", choices=("color", "time"), default="color")
    parser.add_argument("--inputs", default="color", help="what the model sees, e.g. color,age,placer,users")
    args = parser.parse_args()

    dataset = args.data
    if dataset is None:
        dataset = ROOT / "bench-data" / "sample"
        if not (dataset / "meta.sqlite").exists():
            rplacevit.ingest(rplacevit.SAMPLE_CSV, dataset, force=True)
    history = rplacevit.open(dataset)
    device = torch.device(args.device)
    config = ModelConfig.preset(args.preset, args.task, inputs=args.inputs)
    model = build_model(config).to(device)
    net = torch.compile(model) if args.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = np.arange(len(history), dtype=np.int64)
    users = UserVectors.of(history, None) if "users" in config.inputs else None
    data = ColorDataset(history, ids, config, users=users) if args.task == "color" else TimeDataset(history, ids, config, users=users)
    rng = np.random.default_rng(0)

    def step(batch: np.ndarray) -> tuple[float, float]:
        start = time.perf_counter()
        inputs, targets = data.__getitems__(batch)
        inputs, targets = to_device(inputs, device, non_blocking=True), targets.to(device, non_blocking=True)
        loaded = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            loss = model.loss(net(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return loaded - start, time.perf_counter() - start

    for _ in range(3):  # warm-up (and compilation)
        step(rng.integers(0, len(data), args.batch_size))
    loading, total = 0.0, 0.0
    for _ in range(args.steps):
        load, whole = step(rng.integers(0, len(data), args.batch_size))
        loading += load
        total += whole
    print(f"data:    {dataset} ({len(history):,} events); {platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, device {device}")
    print(f"model:   {args.preset} {args.task} model seeing {','.join(config.inputs)}, {parameter_count(model):,} parameters, batch {args.batch_size}, "
          f"amp {args.amp}, compile {args.compile}")
    print(f"speed:   {args.steps * args.batch_size / total:,.0f} samples/s ({total / args.steps * 1000:.1f} ms per step)")
    print(f"loader:  {loading / total:.1%} of the step ({loading / args.steps * 1000:.2f} ms per batch, "
          f"{args.steps * args.batch_size / loading:,.0f} samples/s alone)")


if __name__ == "__main__":
    main()
