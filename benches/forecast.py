"""The wall time of one forecast step of the ``model`` forecaster (the map painter from the real
canvas, as many placements as the data has events in the step) and of ``model-auto``, for a
region of a dataset, on CPU or a GPU.

    python benches/forecast.py DATASET --color-model C --time-model T --at TIME --region x0,y0,x1,y1 [--horizon 30m]

Each is run ``--repeat`` times (the first one also warms the models up); the median is printed
with the number of placements.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import rplacevit
from rplacevit.forecast import Calibration, auto_forecast, change_ranks, open_at, state_at
from rplacevit.infer import InferConfig, infer
from rplacevit.models import model_on
from rplacevit.options import parse_region
from rplacevit.times import parse_duration, parse_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--color-model", required=True)
    parser.add_argument("--time-model", required=True)
    parser.add_argument("--at", required=True)
    parser.add_argument("--region", type=parse_region, required=True)
    parser.add_argument("--horizon", default="30m")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    color, time_ = model_on(args.color_model, "color", device)[0], model_on(args.time_model, "time", device)[0]
    history = rplacevit.open(args.dataset)
    s, horizon = parse_time(args.at), parse_duration(args.horizon)
    x0, y0, x1, y1 = region = args.region
    n = len(history.select(x0=x0, y0=y0, x1=x1, y1=y1, t0=s + 1, t1=s + horizon + 1))
    config = InferConfig(steps=n, dataset=args.dataset, at=s, region=region, pixel_choice="map", refresh=max(n, 1), avoid_current=True,
                         time_noise=0.0, interval_ms=max(1, horizon // max(n, 1)), device=args.device, threads=args.threads, progress=False)
    painter = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        infer(color, time_, config)
        painter.append(time.perf_counter() - began)
    pad = max(color.config.window, time_.config.window)
    state = state_at(history, s - horizon, region, pad, [color, time_], device)
    ranks = change_ranks(time_, state, pad, (y1 - y0, x1 - x0), s - horizon)
    calibration = Calibration.fit(ranks.ravel(), (history.canvas_at(s - horizon, region) != history.canvas_at(s, region)).ravel())
    auto = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        state = state_at(history, s, region, pad, [color, time_], device)
        auto_forecast(color, time_, state, pad, history.canvas_at(s, region), s, calibration, open_at(history, s, region))
        auto.append(time.perf_counter() - began)
    print(f"region {x1 - x0}x{y1 - y0}, {n:,} placements, {args.device} ({args.threads} threads): "
          f"model {statistics.median(painter):.2f} s, model-auto {statistics.median(auto):.2f} s (medians of {args.repeat})")


if __name__ == "__main__":
    main()
