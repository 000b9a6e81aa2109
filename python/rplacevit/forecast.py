"""Forecast the canvas one horizon ahead and score it against the real one: ``rplacevit forecast``.

Steps of one horizon run from ``t0`` to ``t1``. Each step starts from the real canvas of the
region at its start ``s`` (every event with timestamp ≤ s, with the real ages and previous colors
the models see) and ends at ``e = s + horizon``. N is the number of events the data has in the
region with s < timestamp ≤ e. Every forecaster gives a canvas for ``e`` with at most N changed
pixels (``model-auto`` decides its own number), so they compete on *where* and *what*:

- ``model``: the two models with the map painter (:mod:`rplacevit.infer`, ``pixel_choice="map"``):
  the time model ranks every pixel of the region, the N soonest are colored by the color model
  (its likeliest color, which may be the one a pixel shows: many events repaint a pixel's own
  color, and keeping it forecast better on the synthetic history, 0.122 against 0.098 F1). One
  map serves the whole step by default (``refresh``): a map
  computed again on the painted canvas ranks the neighbours of its own placements first, which
  forecast worse in every measurement (BENCHMARKS.md, "Forecast");
- ``model-auto``: the models decide which pixels change: a pixel takes the color c ≠ its own
  that the color model finds likeliest when the chance that it ends the step in c is more than
  one half and more than the chance that it ends in its own color: P(change)·q_c > 1/2 and
  P(change)·q_c > 1 − P(change) + P(change)·q_own, with q the color model's probabilities and
  P(change) the rank of the time model's score (as the painter ranks it) calibrated on the step
  before the first one (the share of pixels that changed there, per bin of ranks);
- ``seed-painter``: today's ``infer`` loop (random views, the time model's soonest pixel in each);
- ``recency-previous``: the N most recently placed pixels, each back to the color it showed before
  its last placement (what a damaged pixel is restored to);
- ``recency-neighbourhood``: the same pixels, each given the most common color of its 8 neighbours;
- ``persistence``: the start left as it is.

Scores, on the region's cells open at both s and e (:func:`score`): ``hits`` (pixels changed to
exactly their real final color), precision = hits / pixels changed, recall = hits / pixels that
really changed, F1; ``position_f1`` (changed at all, right or wrong color); ``color_accuracy`` on
the pixels both changed; ``skill`` = 1 − errors / errors of persistence, errors being the pixels
whose forecast is not the real final color (persistence scores 0; a perfect forecast 1). The
totals sum every step's counts before dividing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch

from . import OUTSIDE, ArgumentError, outputs
from .baselines import neighbourhood_ranking
from .devices import DEFAULT_THREADS, DEVICES, resolve_device, use_threads
from .history import History
from .history import open as open_history
from .infer import NEVER_PLACED, Canvas, InferConfig, canvas_state, infer, open_at, ranks_by_position, time_map
from .models import WindowModel, check_palette, model_on
from .options import option, parse_region
from .progress import bar as progress_bar
from .render import to_rgb
from .times import format_time, parse_duration, parse_time

_Path = Union[str, os.PathLike]

#: Every forecaster, in the order of the report.
FORECASTERS = ("model", "model-auto", "seed-painter", "recency-previous", "recency-neighbourhood", "persistence")
#: The metrics of each forecaster, in the order of the report.
METRICS = ("precision", "recall", "f1", "position_f1", "color_accuracy", "skill")
#: Steps drawn as pictures (the first ones).
PICTURE_STEPS = 4
#: Pixels whose neighbourhood is counted at a time (:func:`neighbourhood_majority`).
NEIGHBOURHOOD_PIXELS = 1 << 16
#: Bins of the time model's ranks when they are calibrated into chances of a change.
CALIBRATION_BINS = 12


@dataclass
class ForecastConfig:
    """A forecast run (see the module docstring); each field is also an option of
    ``rplacevit forecast``."""

    dataset: str = option(help="a dataset folder written by rplacevit ingest", positional=True, metavar="DATASET")
    color_model: str = option(help="the color model's checkpoint", metavar="CKPT")
    time_model: str = option(help="the time model's checkpoint", metavar="CKPT")
    out: str = option(help="the report folder: report.json, report.md, step pictures", flag="--output", short="-o", metavar="DIR")
    t0: str | None = option(None, "the first step's start, ISO 8601 or ms (default: where the models' training data ends)",
                            flag="--from", metavar="TIME")
    t1: str | None = option(None, "no step ends after this moment (default: the end of the data)", flag="--to", metavar="TIME")
    horizon: str = option("30m", "each step's length: 30m, 1h, 90s, or ms", metavar="DURATION")
    region: tuple[int, int, int, int] | None = option(None, "the rectangle forecast (default: where the events are)",
                                                      parse=parse_region, metavar="x0,y0,x1,y1")
    changes: str = option("auto", "auto: also the model-auto forecaster, which decides how many pixels change; events: only "
                          "the forecasters given the data's number of events", choices=("auto", "events"))
    refresh: int | None = option(None, "the map painter's placements between two maps (default: one map for the step, "
                                 "which forecast best: see BENCHMARKS.md)", metavar="K")
    max_steps: int | None = option(None, "forecast at most this many steps (default: all)", metavar="N")
    seed: int = option(0, "the painters' random numbers are a function of it")
    allow_overlap: bool = option(False, "forecast from a moment the models trained on")
    allow_other_palette: bool = option(False, "forecast a dataset whose palette is not the models'")
    force: bool = option(False, "replace a forecast folder written before")
    device: str = option("auto", "auto: cuda when there is one", choices=DEVICES)
    threads: int = option(DEFAULT_THREADS, "torch CPU threads; the count changes the floating-point result")
    progress: bool = True

    def __post_init__(self):
        for name, low in (("refresh", 1), ("seed", 0), ("max_steps", 1), ("threads", 1)):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise ArgumentError(f"`{name}` = {value!r}: expected an integer >= {low}")
        try:
            positive = parse_duration(self.horizon) > 0
        except ArgumentError:
            positive = False
        if not positive:
            raise ArgumentError(f"`horizon` {self.horizon!r}: expected a positive duration (30m, 1h, 90s, or ms)")
        if self.region is not None:
            self.region = tuple(self.region)


# --- scores --------------------------------------------------------------------------------------


COUNTS = ("changed", "real_changed", "hits", "both_changed", "errors", "persistence_errors")


def score(start: np.ndarray, forecast: np.ndarray, real: np.ndarray, open_cells: np.ndarray | None = None) -> dict[str, int]:
    """The counts of a forecast (all (h, w) palette indices) on the cells ``open_cells`` (all when
    None): ``changed`` (forecast ≠ start), ``real_changed`` (real ≠ start), ``hits`` (changed, and
    to the real color), ``both_changed``, ``errors`` (forecast ≠ real) and ``persistence_errors``
    (start ≠ real)."""
    cells = np.ones(start.shape, dtype=bool) if open_cells is None else open_cells
    changed, real_changed = (forecast != start) & cells, (real != start) & cells
    return {
        "changed": int(changed.sum()),
        "real_changed": int(real_changed.sum()),
        "hits": int((changed & (forecast == real)).sum()),
        "both_changed": int((changed & real_changed).sum()),
        "errors": int(((forecast != real) & cells).sum()),
        "persistence_errors": int(real_changed.sum()),
    }


def metrics(counts: dict[str, int]) -> dict[str, float]:
    """:data:`METRICS` of summed :func:`score` counts (NaN where a ratio has nothing to divide)."""

    def ratio(a: float, b: float) -> float:
        return a / b if b else math.nan

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r > 0 else (0.0 if not (math.isnan(p) or math.isnan(r)) else math.nan)

    precision, recall = ratio(counts["hits"], counts["changed"]), ratio(counts["hits"], counts["real_changed"])
    if counts["changed"] == 0:
        precision = 0.0 if counts["real_changed"] else math.nan
    position_p, position_r = ratio(counts["both_changed"], counts["changed"]), ratio(counts["both_changed"], counts["real_changed"])
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1(precision, recall),
        "position_f1": f1(0.0 if counts["changed"] == 0 else position_p, position_r),
        "color_accuracy": ratio(counts["hits"], counts["both_changed"]),
        "skill": 1 - ratio(counts["errors"], counts["persistence_errors"]),
    }


# --- the rules -----------------------------------------------------------------------------------


def most_recent(times: np.ndarray, count: int, open_cells: np.ndarray) -> np.ndarray:
    """Flat indices of the ``count`` open pixels placed on last (latest first; never placed on:
    none), from (h, w) int64 last placement times."""
    placed = open_cells & (times != NEVER_PLACED)
    order = np.argsort(-times, axis=None, kind="stable")
    return order[placed.flat[order]][:count]


def neighbourhood_majority(canvas: np.ndarray) -> np.ndarray:
    """(h, w): the most common color of each pixel's 8 neighbours, as the evaluation's
    ``neighbourhood`` rule ranks them (:func:`rplacevit.baselines.neighbourhood_ranking`: OUTSIDE
    and off the rectangle left out, the lowest index on ties); the pixel's own color when it has
    none. A band of rows at a time, so memory stays near the canvas's size."""
    h, w = canvas.shape
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(canvas, 1, constant_values=OUTSIDE), (3, 3))
    out = canvas.copy()
    band = max(1, NEIGHBOURHOOD_PIXELS // w)
    for top in range(0, h, band):
        best = neighbourhood_ranking(windows[top : top + band].reshape(-1, 3, 3))[:, 0].reshape(-1, w)
        out[top : top + band] = np.where(best >= 0, best, canvas[top : top + band])
    return out


def rule_forecast(start: np.ndarray, times: np.ndarray, colors: np.ndarray, count: int, open_cells: np.ndarray) -> np.ndarray:
    """``start`` with the ``count`` most recently placed open pixels given ``colors`` (h, w)."""
    forecast = start.copy()
    chosen = most_recent(times, count, open_cells)
    forecast.flat[chosen] = colors.flat[chosen]
    return forecast


# --- the models ----------------------------------------------------------------------------------


def state_at(history: History, t_ms: int, region: tuple[int, int, int, int], pad: int, models: list[WindowModel],
             device: torch.device) -> Canvas:
    """The canvas of ``region`` at ``t_ms`` as the models see it (:func:`rplacevit.infer.canvas_state`),
    with ``pad`` cells off the canvas all round: the rectangle is all they see, as when they
    paint it."""
    return canvas_state(history, t_ms, region, models, device).bordered(pad)


def change_ranks(time_model: WindowModel, state: Canvas, pad: int, shape: tuple[int, int], clock: int) -> np.ndarray:
    """(h, w) float64 in [0, 1]: the time model's map at ``clock`` ranked place by place in its
    squares (:func:`rplacevit.infer.ranks_by_position`; lower = sooner), as the painter ranks it."""
    with torch.inference_mode():
        score = time_map(time_model, state, pad, pad, shape[0], shape[1], clock).cpu().numpy()
    return ranks_by_position(score, time_model.config.centre)


@dataclass
class Calibration:
    """Chances of a change within the horizon, by the rank of the time model's score
    (:func:`change_ranks`): ``edges`` of the rank bins (halving towards the soonest, where the
    changes are: 0, 2⁻¹², …, 1/4, 1/2), and the share of pixels that changed in each (add-one
    smoothed; never smaller for a sooner bin)."""

    edges: np.ndarray
    shares: np.ndarray

    def __call__(self, ranks: np.ndarray) -> np.ndarray:
        return self.shares[np.clip(np.searchsorted(self.edges, ranks, side="right") - 1, 0, len(self.shares) - 1)]

    @classmethod
    def fit(cls, ranks: np.ndarray, changed: np.ndarray) -> Calibration:
        edges = np.array([0.0, *(2.0 ** -np.arange(CALIBRATION_BINS, 0, -1))])
        which = np.clip(np.searchsorted(edges, ranks, side="right") - 1, 0, len(edges) - 1)
        total = np.bincount(which, minlength=len(edges))
        hits = np.bincount(which, weights=changed.astype(np.float64), minlength=len(edges))
        # Smoothed towards the overall share, and an empty bin takes the share of the bin after
        # it (less soon), so that no bin claims more than the pixels showed.
        overall = (hits.sum() + 1) / (total.sum() + 2)
        shares = (hits + overall) / (total + 1)
        for k in range(len(shares) - 2, -1, -1):
            if total[k] == 0:
                shares[k] = shares[k + 1]
        return cls(edges, np.maximum.accumulate(shares[::-1])[::-1])  # a sooner bin is never a smaller chance


def auto_forecast(color_model: WindowModel, time_model: WindowModel, state: Canvas, pad: int, start: np.ndarray, clock: int,
                  calibration: Calibration, open_cells: np.ndarray) -> np.ndarray:
    """The ``model-auto`` forecast: each open pixel takes the color c ≠ its own that the color
    model finds likeliest when it is more likely than not to end the step in c, and more likely
    than in its own color (see the module docstring)."""
    chance = calibration(change_ranks(time_model, state, pad, start.shape, clock))
    forecast = start.copy()
    # Only a pixel whose change is more likely than not can pass (q_c ≤ 1).
    candidates = np.flatnonzero((chance > 0.5) & open_cells)
    if len(candidates) == 0:
        return forecast
    rows, cols = np.divmod(candidates, start.shape[1])
    first = pad - color_model.config.window // 2
    probabilities = []
    with torch.inference_mode():
        for part in range(0, len(rows), 1024):
            r = torch.as_tensor(rows[part : part + 1024] + first, device=state.colors.device)
            c = torch.as_tensor(cols[part : part + 1024] + first, device=state.colors.device)
            clocks = torch.full((len(r),), clock, dtype=torch.int64, device=r.device)
            probabilities.append(torch.softmax(color_model(state.inputs(color_model, r, c, clocks)).float(), dim=1).cpu().numpy())
    q = np.concatenate(probabilities).astype(np.float64)
    own = start.flat[candidates].astype(np.int64)
    q_own = q[np.arange(len(q)), own]
    q[np.arange(len(q)), own] = -1
    best = q.argmax(axis=1)
    chance_of = chance.flat[candidates]
    likeliest = chance_of * q[np.arange(len(q)), best]
    moves = (likeliest > 1 - chance_of + chance_of * q_own) & (likeliest > 0.5)
    forecast.flat[candidates[moves]] = best[moves]
    return forecast


# --- the run ------------------------------------------------------------------------------------


def forecast(config: ForecastConfig) -> dict:
    """Runs the forecast ``config`` describes, writes its folder (``report.json``, ``report.md``
    and a picture per step for the first :data:`PICTURE_STEPS` steps, published when complete)
    and returns the report. Raises ArgumentError (naming the argument) for a bad horizon,
    region, time range or palette, before anything is written."""
    out = Path(config.out)
    outputs.check(out, "forecast", config.force)
    device = resolve_device(config.device)
    use_threads(config.threads)
    color_model, color_training, _ = model_on(config.color_model, "color", device)
    time_model, time_training, _ = model_on(config.time_model, "time", device)
    history = open_history(config.dataset)
    for model, what in ((color_model, "color_model"), (time_model, "time_model")):
        try:
            check_palette(model.config, history.palette, config.allow_other_palette, f"the dataset {config.dataset}")
        except ValueError as error:
            raise ArgumentError(f"`{what}`: {error}") from None
    horizon = parse_duration(config.horizon)
    trained = [t["until"] for t in (color_training, time_training) if t and t.get("until") is not None]
    if config.t0 is None and not trained:
        raise ArgumentError("no `t0` given and no training record in the models to take it from: give `t0`")
    t0 = parse_time(config.t0) if config.t0 is not None else max(trained)
    t1 = parse_time(config.t1) if config.t1 is not None else history.time_range[1]
    if t1 <= t0:
        raise ArgumentError(f"`t1` {format_time(t1)} is not after `t0` {format_time(t0)}")
    if trained and t0 < max(trained) and not config.allow_overlap:
        raise ArgumentError(f"`t0` {format_time(t0)} is before the end of the models' training data ({format_time(max(trained))}): "
                            "pass `allow_overlap=True` to forecast from there anyway")
    starts = list(range(t0, t1 - horizon + 1, horizon))[: config.max_steps]
    if not starts:
        raise ArgumentError(f"from `t0` {format_time(t0)} to `t1` {format_time(t1)} there is no whole `horizon` of {config.horizon}")
    region = config.region or history.event_bounds()
    x0, y0, x1, y1 = region
    if not (0 <= x0 < x1 <= history.canvas_width and 0 <= y0 < y1 <= history.canvas_height):
        raise ArgumentError(f"`region` {','.join(map(str, region))}: expected 0 ≤ x0 < x1 ≤ {history.canvas_width} and "
                            f"0 ≤ y0 < y1 ≤ {history.canvas_height}")
    pad = max(color_model.config.window, time_model.config.window)
    names = [name for name in FORECASTERS if config.changes == "auto" or name != "model-auto"]

    calibration = None
    if "model-auto" in names:
        before = t0 - horizon
        state = state_at(history, before, region, pad, [color_model, time_model], device)
        scores = change_ranks(time_model, state, pad, (y1 - y0, x1 - x0), before)
        changed = history.canvas_at(before, region) != history.canvas_at(t0, region)
        calibration = Calibration.fit(scores.ravel(), changed.ravel())

    totals = {name: dict.fromkeys(COUNTS, 0) for name in names}
    per_step, pictures = [], []
    began = time.perf_counter()
    with outputs.staged_folder(out, "forecast", config.force) as staging:
        for index, s in enumerate(progress_bar("forecast", "step", config.progress, iterable=starts)):
            e = s + horizon
            start, real = history.canvas_at(s, region), history.canvas_at(e, region)
            open_cells = open_at(history, s, region) & open_at(history, e, region)
            n = len(history.select(x0=x0, y0=y0, x1=x1, y1=y1, t0=s + 1, t1=e + 1))
            made = forecasts(config, history, color_model, time_model, region, s, n, horizon, start, open_cells, pad, calibration,
                             names, device)
            step = {"start": format_time(s), "end": format_time(e), "events": n, "forecasters": {}}
            for name, canvas in made.items():
                counts = score(start, canvas, real, open_cells)
                for key in COUNTS:
                    totals[name][key] += counts[key]
                step["forecasters"][name] = {**metrics(counts), **counts}
            per_step.append(step)
            if index < PICTURE_STEPS:
                path = staging / f"step_{index:03d}.png"
                shown = {name: made[name] for name in ("model", "model-auto", "recency-neighbourhood") if name in made}
                draw_step(path, start, real, shown, open_cells, history.palette_rgb, f"{format_time(s)} + {config.horizon}")
                pictures.append(path.name)
        report = {
            "dataset": os.fspath(config.dataset),
            "color_model": os.fspath(config.color_model),
            "time_model": os.fspath(config.time_model),
            "region": list(region),
            "from": format_time(t0),
            "to": format_time(t1),
            "horizon_ms": horizon,
            "steps": len(starts),
            "seed": config.seed,
            "refresh": config.refresh,
            "seconds": time.perf_counter() - began,
            "forecasters": {name: {**metrics(totals[name]), **totals[name]} for name in names},
            "per_step": per_step,
            "pictures": pictures,
        }
        (staging / "report.json").write_text(json.dumps(without_nan(report), indent=2, allow_nan=False) + "\n")
        (staging / "report.md").write_text(markdown(report))
    return report


def model_painting(dataset: _Path, at: int, region: tuple[int, int, int, int], n: int, horizon: int, refresh: int | None = None,
                   **run) -> InferConfig:
    """How the ``model`` forecaster paints one step (and the viewer's forecast): the map painter
    from the real canvas of ``region`` at ``at``, ``n`` placements spread evenly over ``horizon``
    ms on the models' clock, without noise, one map for the step unless ``refresh`` says; ``run``:
    the other :class:`rplacevit.infer.InferConfig` fields (seed, device, threads…)."""
    return InferConfig(steps=n, dataset=os.fspath(dataset), at=at, region=region, pixel_choice="map", refresh=refresh or max(n, 1),
                       time_noise=0.0, interval_ms=max(1, horizon // max(n, 1)), progress=False, **run)


def forecasts(config: ForecastConfig, history: History, color_model: WindowModel, time_model: WindowModel,
              region: tuple[int, int, int, int], s: int, n: int, horizon: int, start: np.ndarray, open_cells: np.ndarray, pad: int,
              calibration: Calibration | None, names: list[str], device: torch.device) -> dict[str, np.ndarray]:
    """Every forecaster's canvas of ``region`` at the end of the step that starts at ``s``."""
    made: dict[str, np.ndarray] = {}
    painting = model_painting(config.dataset, s, region, n, horizon, config.refresh, seed=config.seed, device=config.device,
                              threads=config.threads, allow_other_palette=config.allow_other_palette)
    for name in names:
        if name == "model":
            made[name] = np.where(open_cells, infer(color_model, time_model, painting).canvas, start)
        elif name == "seed-painter":
            # The original's loop with infer's own settings, on the same start, clock and seed.
            original = dataclasses.replace(painting, pixel_choice="views", time_noise=InferConfig.time_noise)
            made[name] = np.where(open_cells, infer(color_model, time_model, original).canvas, start)
        elif name == "model-auto":
            state = state_at(history, s, region, pad, [color_model, time_model], device)
            made[name] = auto_forecast(color_model, time_model, state, pad, start, s, calibration, open_cells)
        elif name == "persistence":
            made[name] = start.copy()
        else:
            times = history.placement_times_at(s, region)
            colors = history.previous_colors_at(s, region) if name == "recency-previous" else neighbourhood_majority(start)
            made[name] = rule_forecast(start, times, colors, n, open_cells)
    return made


def draw_step(path: Path, start: np.ndarray, real: np.ndarray, made: dict[str, np.ndarray], open_cells: np.ndarray,
              palette_rgb, title: str) -> None:
    """One row per forecaster of ``made``: start | real | forecast | hits and misses (green:
    changed to the real color; red: changed wrongly; blue: a real change missed; grey:
    unchanged), each panel at least 256 pixels wide, under a line naming the row."""
    import imageio.v3 as iio
    from PIL import Image, ImageDraw

    scale = max(1, 256 // max(start.shape))
    height, width = start.shape[0] * scale, start.shape[1] * scale
    gap, label = 6, 14
    rows = []
    for name, forecast_ in made.items():
        changed, real_changed = (forecast_ != start) & open_cells, (real != start) & open_cells
        marks = np.full((*start.shape, 3), 235, dtype=np.uint8)
        marks[real_changed & ~changed] = (60, 110, 230)
        marks[changed & (forecast_ != real)] = (220, 50, 50)
        marks[changed & (forecast_ == real)] = (40, 170, 70)
        panels = [to_rgb(canvas, None, scale, palette_rgb) for canvas in (start, real, forecast_)]
        panels.append(marks.repeat(scale, 0).repeat(scale, 1))
        row = np.full((height + label, 4 * width + 3 * gap, 3), 255, dtype=np.uint8)
        for k, panel in enumerate(panels):
            row[label:, k * (width + gap): k * (width + gap) + width] = panel
        picture = Image.fromarray(row)
        ImageDraw.Draw(picture).text((2, 1), f"{title}: start | real | {name} | hits (green), wrong (red), missed (blue)",
                                     fill=(0, 0, 0))
        rows.append(np.asarray(picture))
    iio.imwrite(path, np.concatenate(rows, axis=0))


def without_nan(value):
    """``value`` with every NaN (a ratio with nothing to divide) as None: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nan(item) for item in value]
    return value


def markdown(report: dict) -> str:
    """The report as Markdown tables: the totals, then each step's F1 and skill."""

    def cell(value: float) -> str:
        return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

    lines = [f"# Forecast of {report['dataset']}, region {','.join(map(str, report['region']))}", "",
             f"{report['steps']} steps of {report['horizon_ms'] / 60_000:g} minutes from {report['from']}; models "
             f"{report['color_model']} and {report['time_model']}.", "",
             "| forecaster | precision | recall | F1 | position F1 | color accuracy | skill |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in report["forecasters"].items():
        lines.append(f"| {name} | " + " | ".join(cell(row[m]) for m in METRICS) + " |")
    lines += ["", "| step start | events | " + " | ".join(f"{name} F1 / skill" for name in report["forecasters"]) + " |",
              "|---|---:|" + "---:|" * len(report["forecasters"])]
    for step in report["per_step"]:
        lines.append(f"| {step['start']} | {step['events']:,} | " + " | ".join(
            f"{cell(row['f1'])} / {cell(row['skill'])}" for row in step["forecasters"].values()) + " |")
    return "\n".join(lines) + "\n"
