"""Inference benchmark: placements per second of :func:`rplacevit.infer.infer` with random-weight
models on a white canvas, one view per group (the sequential algorithm) and many, beside the
original's loop: one pixel per pair of forward passes, the canvas in numpy, each window sliced
and sent to the device, each result read back before the next step.

    python benches/infer.py                                           # CPU: tiny, B = 1 and 64, 256×256
    python benches/infer.py --device cuda --presets small base --batch-views 1 256 --canvas 2000 2000

A group holds only the views that fit on the canvas without seeing each other (about a dozen
64-pixel views on 256×256), so large B needs a large canvas; the table shows the mean group.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import rplacevit
from rplacevit.infer import infer
from rplacevit.models import ModelConfig, WindowModel, build_model, parameter_count


def original_loop(color_model: WindowModel, time_model: WindowModel, canvas: np.ndarray, steps: int, seed: int) -> float:
    """Seconds for ``steps`` placements the original's way (argmax colors, noise 0.1)."""
    device = next(color_model.parameters()).device
    rng = np.random.default_rng(seed)
    height, width = canvas.shape
    grid, offset, time_side = time_model.config.centre, time_model.config.centre_start, time_model.config.window
    color_side = color_model.config.window
    pad = max(time_side, color_side) // 2
    padded = np.pad(canvas, pad, constant_values=rplacevit.OUTSIDE)

    def window(top: int, left: int, side: int) -> torch.Tensor:
        return torch.from_numpy(padded[None, top : top + side, left : left + side]).to(device)

    start = time.perf_counter()
    with torch.inference_mode():
        for _ in range(steps):
            top, left = rng.integers(0, (height - grid + 1, width - grid + 1)) + pad
            predicted = time_model(window(top - offset, left - offset, time_side))[0].cpu().numpy()
            cell = int((predicted + 0.1 * rng.random((grid, grid))).argmin())
            y, x = top + cell // grid, left + cell % grid
            padded[y, x] = int(color_model(window(y - color_side // 2, x - color_side // 2, color_side)).argmax())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", nargs="+", default=["tiny"])
    parser.add_argument("--batch-views", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--canvas", nargs=2, type=int, default=[256, 256], metavar=("W", "H"))
    parser.add_argument("--seconds", type=float, default=2.0, help="rough duration of each measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per row; the fastest is shown")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    width, height = args.canvas
    white = np.full((height, width), rplacevit.WHITE, dtype=np.uint8)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"{width}×{height} white canvas, random weights, argmax colors, time noise 0.1")
    print(f"best of {args.repeats} runs of about {args.seconds:g} s each")
    print(f"{'model':<26}{'method':<22}{'mean group':>11}{'placements/s':>14}{'ms per group':>14}")

    def report(model: str, method: str, group: float, steps: int, seconds: float) -> None:
        print(f"{model:<26}{method:<22}{group:>11.1f}{steps / seconds:>14,.0f}{seconds / steps * group * 1000:>14.2f}")

    for preset in args.presets:
        torch.manual_seed(0)
        color_model = build_model(ModelConfig.preset(preset, "color")).to(device).eval()
        time_model = build_model(ModelConfig.preset(preset, "time")).to(device).eval()
        model = f"{preset} ({parameter_count(color_model) / 1e6:.2f} M each)"

        def timed(steps: int, batch_views: int):
            result = infer(color_model, time_model, steps=steps, init=white, batch_views=batch_views, device=device, progress=False)
            return result.seconds, result.groups.mean()

        for batch_views in args.batch_views:
            seconds, _ = timed(2 * batch_views, batch_views)  # warm-up, and a first rate for sizing the run
            steps = max(2 * batch_views, int(args.seconds * 2 * batch_views / seconds))
            seconds, group = min(timed(steps, batch_views) for _ in range(args.repeats))
            report(model, f"infer B={batch_views}", group, steps, seconds)
        seconds = original_loop(color_model, time_model, white, 2, 0)
        steps = max(2, int(args.seconds * 2 / seconds))
        seconds = min(original_loop(color_model, time_model, white, steps, 0) for _ in range(args.repeats))
        report(model, "original's loop", 1.0, steps, seconds)


if __name__ == "__main__":
    main()
