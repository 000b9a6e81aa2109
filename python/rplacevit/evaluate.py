"""Can the canvas be predicted? The models against simple rules on events later than anything
they trained on (:func:`evaluate`, the ``rplacevit evaluate`` command).

**Events.** Those with ``t0 ≤ timestamp < t1`` (and in the region), all of them or a uniform
sample of ``samples`` drawn without replacement by ``numpy.random.default_rng(seed)``, in id
order; their ids are saved as ``events.npy`` so that any number can be recomputed.

**Color.** The target is the color model's own (``placed`` unless it was trained on
``next_minute_majority``, with its horizon). Each predictor ranks colors; top-1 is right when
its first color is the target, top-3 when one of its first three is; a predictor with fewer
than three candidates for an event simply offers fewer. NLL is the mean of −ln p(target) in
nats, for the predictors that give probabilities: the model (softmax of its logits) and
``prior``. The baselines, all read off the canvas strictly before each event:

- ``prior``: the frequencies of the colors placed by all events before ``t0`` (the whole
  canvas, whatever the region), add-one smoothed over the 32 colors so that no color has
  probability 0; the same ranking for every event (ties: lower palette index);
- ``current``: the pixel's present color, then the two most frequent colors among its 8
  neighbours that differ from it (ties: lower palette index);
- ``neighbourhood``: the most frequent colors among the 8 neighbours (ties: lower palette index;
  cells off the canvas never count);
- ``recent``: the colors placed most often by earlier events inside the event's 64×64 window
  during the 10 minutes before it (ties: the color placed most recently); nothing when none was.

**Time.** With a time model: its predictions on the events' c×c grids (c its centre, targets
as in training: time to the next event at each pixel over its horizon, capped at 1). Cells off
the canvas are left out, and so are the events whose horizon runs past the last event of the
data (``censored`` in the report): their targets of 1 would only say that the data ends. MSE against the targets; ROC-AUC of "this pixel changes within the
horizon" (target < 1) scored by 1 − prediction, ties counted one half. Baselines: ``constant``,
the mean target over all events before ``t0`` (a uniform sample of at most ``samples`` of
them, censored ones left out), MSE only; ``recency``, scored by the time of the pixel's last change before the event
(later is higher; never changed is lowest), AUC only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from tqdm import tqdm

from . import ArgumentError
from .baselines import (
    PER_EVENT_BASELINES,
    RECENT_MS,
    RECENT_SIZE,
    color_metrics,
    current_ranking,
    neighbourhood_ranking,
    prior_ranking,
    recent_ranking,
    roc_auc,
    top_k,
)
from .data import select_events
from .devices import resolve_device
from .history import COLOR_HORIZON_MS, COLOR_TARGET, TIME_HORIZON_MS, History
from .history import open as open_history
from .models import PALETTE_SIZE, WindowModel, model_on
from .report import EXAMPLES, is_report, write_report
from .times import format_time, parse_time

_Path = Union[str, os.PathLike]


# --- the evaluation ------------------------------------------------------------------------


def check_no_overlap(name: str, training: dict, t0: int, allow_overlap: bool) -> None:
    if t0 < training["until"] and not allow_overlap:
        raise ValueError(
            f"`t0` {format_time(t0)} is before the end of the training data of {name} "
            f"({format_time(training['until'])}): its scores would count events it trained on; "
            "choose a later `t0`, or pass `allow_overlap=True` to evaluate on training data anyway"
        )


def choose_events(history: History, region, t0: int, t1: int | None, samples: int | None, seed: int) -> tuple[np.ndarray, int]:
    """(sorted int64 ids of the evaluated events, how many the selection held)."""
    ids = select_events(history, region, t0=t0, t1=t1)
    where = f" in region {','.join(map(str, region))}" if region is not None else ""
    until = "the end" if t1 is None else format_time(t1)
    if len(ids) == 0:
        raise ValueError(f"no events from {format_time(t0)} to {until}{where}: nothing to evaluate")
    if samples is not None and len(ids) > samples:
        chosen = np.random.default_rng(seed).choice(len(ids), samples, replace=False)
        return np.sort(ids[chosen]).astype(np.int64), len(ids)
    return ids.astype(np.int64), len(ids)


def inside_cells(history: History, ids: np.ndarray, size: int) -> np.ndarray:
    """(n, size, size) bool: which cells of each event's size×size grid lie on the canvas."""
    columns = history.events()
    offsets = np.arange(size) - size // 2
    xs = columns["x"][ids].astype(np.int64)[:, None] + offsets
    ys = columns["y"][ids].astype(np.int64)[:, None] + offsets
    x_in = (xs >= 0) & (xs < history.canvas_width)
    y_in = (ys >= 0) & (ys < history.canvas_height)
    return y_in[:, :, None] & x_in[:, None, :]


def evaluate(
    dataset: _Path,
    color_model: _Path | WindowModel,
    time_model: _Path | WindowModel | None = None,
    *,
    t0: str | int | None = None,
    t1: str | int | None = None,
    region: tuple[int, int, int, int] | None = None,
    samples: int | None = 20_000,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    out: _Path | None = None,
    allow_overlap: bool = False,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Evaluates the models on ``dataset`` (see the module docstring for the events, the metrics
    and the baselines) and returns the report as a dict.

    t0, t1: ISO 8601 or ms; the events have ``t0 ≤ timestamp < t1`` (to the end without t1);
    without t0, the latest end of the models' training data (as recorded in their checkpoints). region: (x0, y0, x1, y1), x1 and y1 exclusive. samples: a uniform sample of
    at most this many events (None: all). out: a report folder to write (``report.json``,
    ``report.md``, ``events.npy``, ``confusion.png``, ``examples.png``); built beside and
    renamed into place when complete; an existing report folder is replaced only with
    ``force``, and never a folder without a ``report.json``. The time AUC keeps every cell's
    score in memory, about 13 bytes per cell (3.3 kB per event with 16×16 grids).

    Raises ValueError for an empty selection, a ``t0`` before the end of a model's
    training data (unless ``allow_overlap``), a checkpoint of the wrong kind, or a bad argument.
    """
    if samples is not None and not (isinstance(samples, int) and samples >= 1):
        raise ArgumentError(f"`samples` = {samples!r}: expected a positive integer, or None for all events")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ArgumentError(f"`batch_size` = {batch_size!r}: expected a positive integer")
    if out is not None:
        out = Path(out)
        if out.exists() and any(out.iterdir()):
            if not is_report(out):
                raise ArgumentError(f"{out} is not empty and holds no report: choose another folder")
            if not force:
                raise ArgumentError(f"{out} already holds a report: pass `force=True` to replace it")
    device = resolve_device(device)
    color, color_training, color_name = model_on(color_model, "color", device)
    timer, time_training, time_name = (None, None, None) if time_model is None else model_on(time_model, "time", device)
    trained = [(name, t) for name, t in ((color_name, color_training), (time_name, time_training)) if t and t.get("until") is not None]
    if t0 is None:
        if not trained:
            raise ArgumentError("no `t0` given and no training record in the models to take it from: give `t0`")
        t0 = max(t["until"] for _, t in trained)  # the first moment no model has seen
    t0 = parse_time(t0)
    t1 = None if t1 is None else parse_time(t1)
    if t1 is not None and t1 <= t0:
        raise ArgumentError(f"`t1` {format_time(t1)} is not after `t0` {format_time(t0)}")
    for name, training in trained:
        check_no_overlap(name, training, t0, allow_overlap)

    history = open_history(dataset)
    ids, selected = choose_events(history, region, t0, t1, samples, seed)
    target_mode = (color_training or {}).get("target", COLOR_TARGET)
    color_horizon = (color_training or {}).get("horizon_ms", COLOR_HORIZON_MS)
    time_horizon = (time_training or {}).get("horizon_ms", TIME_HORIZON_MS)
    before = int(np.searchsorted(history.events()["timestamp"], t0))  # events 0..before−1

    began = time.perf_counter()
    scores = score_events(history, ids, color, timer, target_mode, color_horizon, time_horizon, batch_size, device, progress)
    prior_counts = color_counts(history, before)
    scores.ranks["prior"], prior_probabilities = prior_ranking(prior_counts, len(ids))
    report = {"color": color_section(scores, target_mode, -np.log(prior_probabilities[scores.targets]))}
    if timer is not None:
        constant = constant_time_target(history, before, timer.config.centre, time_horizon, samples, seed)
        report["time"] = time_section(history, ids, scores, time_horizon, constant)
    seconds = time.perf_counter() - began
    report["setup"] = {
        "dataset": os.fspath(dataset),
        "from": format_time(t0),
        "to": None if t1 is None else format_time(t1),
        "region": None if region is None else list(region),
        "selected": selected,
        "samples": samples,
        "seed": seed,
        "color_model": color_name,
        "time_model": time_name,
        "training_until": {name: format_time(t["until"]) for name, t in trained},
        "events_before_from": before,
        "seconds": seconds,
        "events_per_s": len(ids) / seconds if seconds > 0 else None,
    }
    if out is not None:
        examples = np.sort(np.random.default_rng([seed, 1]).permutation(len(ids))[:EXAMPLES])
        with torch.inference_mode():
            windows = torch.from_numpy(history.windows(ids[examples], color.config.window)).to(device)
            probabilities = torch.softmax(color(windows).float(), dim=1).cpu().numpy()
        write_report(out, report, ids, scores, history, examples, probabilities, force)
    return report



@dataclass
class Scores:
    """What the models and the per-event baselines say of each evaluated event, in id order.
    targets: (n,) int64 colors. ranks: name → (n, 3) int64 colors ranked (−1: no more), for
    "model", "current", "neighbourhood", "recent" (and "prior", added by the caller).
    model_nll: (n,) float64 −ln p(target) in nats. With a time model, (n, c, c) arrays:
    time_targets and predicted (fractions of the horizon), last_changes (ms, int64 min: never)."""

    targets: np.ndarray
    ranks: dict[str, np.ndarray]
    model_nll: np.ndarray
    time_targets: np.ndarray | None = None
    predicted: np.ndarray | None = None
    last_changes: np.ndarray | None = None


def score_events(history: History, ids: np.ndarray, color: WindowModel, timer: WindowModel | None, target_mode: str,
                 color_horizon: int, time_horizon: int, batch_size: int, device: torch.device, progress: bool) -> Scores:
    """Runs the models and the baselines over ``ids`` in batches, one Rust call per read."""
    n = len(ids)
    scores = Scores(np.empty(n, np.int64), {name: np.empty((n, 3), np.int64) for name in ("model", *PER_EVENT_BASELINES)},
                    np.empty(n, np.float64))
    if timer is not None:
        c = timer.config.centre
        scores.time_targets, scores.predicted = np.empty((n, c, c), np.float32), np.empty((n, c, c), np.float32)
        scores.last_changes = np.empty((n, c, c), np.int64)
    with torch.inference_mode(), tqdm(total=n, unit="event", desc="evaluate", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            batch = ids[start : start + batch_size]
            part = slice(start, start + len(batch))
            targets = scores.targets[part] = history.color_targets(batch, target_mode, color_horizon)
            windows = torch.from_numpy(history.windows(batch, color.config.window)).to(device)
            log_p = torch.log_softmax(color(windows).float(), dim=1).cpu().numpy().astype(np.float64)
            scores.ranks["model"][part] = top_k(log_p)
            scores.model_nll[part] = -log_p[np.arange(len(batch)), targets]
            windows3 = history.windows(batch, 3)
            scores.ranks["current"][part] = current_ranking(windows3)
            scores.ranks["neighbourhood"][part] = neighbourhood_ranking(windows3)
            scores.ranks["recent"][part] = recent_ranking(*history.recent_colors(batch, RECENT_SIZE, RECENT_MS))
            if timer is not None:
                scores.time_targets[part] = history.time_targets(batch, c, time_horizon)
                windows = torch.from_numpy(history.windows(batch, timer.config.window)).to(device)
                scores.predicted[part] = timer(windows).float().cpu().numpy()
                scores.last_changes[part] = history.last_change_times(batch, c)
            bar.update(len(batch))
    return scores


def color_section(scores: Scores, target_mode: str, prior_nll: np.ndarray) -> dict:
    targets, ranks = scores.targets, scores.ranks
    baselines = {"prior": color_metrics(targets, ranks["prior"], prior_nll)}
    baselines.update({name: color_metrics(targets, ranks[name]) for name in PER_EVENT_BASELINES})
    return {"n": len(targets), "target": target_mode, "model": color_metrics(targets, ranks["model"], scores.model_nll),
            "baselines": baselines}


def time_section(history: History, ids: np.ndarray, scores: Scores, horizon_ms: int, constant: float | None) -> dict:
    # An event whose horizon runs past the last event of the data has targets of 1.0 that only
    # say "the data ended here": it is left out of the time metrics, and counted as censored.
    complete = ids < uncensored(history, horizon_ms)
    cells = inside_cells(history, ids, scores.time_targets.shape[1]) & complete[:, None, None]
    truth, guess = scores.time_targets[cells].astype(np.float64), scores.predicted[cells].astype(np.float64)
    changes = truth < 1.0
    return {
        "n": int(complete.sum()),
        "censored": int((~complete).sum()),
        "cells": int(cells.sum()),
        "horizon_ms": horizon_ms,
        "model": {"mse": mean_or_none((guess - truth) ** 2), "auc": roc_auc(changes, 1.0 - guess)},
        "baselines": {
            "constant": {"mse": None if constant is None else mean_or_none((constant - truth) ** 2), "value": constant},
            "recency": {"auc": roc_auc(changes, scores.last_changes[cells])},
        },
    }


def uncensored(history: History, horizon_ms: int) -> int:
    """How many events have a horizon that ends within the data (t + horizon ≤ the last
    timestamp): events are in time order, so they are the first ones."""
    return int(np.searchsorted(history.events()["timestamp"], history.time_range[1] - horizon_ms, side="right"))


def mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def color_counts(history: History, count: int) -> np.ndarray:
    """(32,) int64: how many of events 0..count−1 placed each color, read in slices so that a
    long history never stands in memory at once."""
    colors, counts = history.events()["color"], np.zeros(PALETTE_SIZE, dtype=np.int64)
    for start in range(0, count, 1 << 24):
        counts += np.bincount(colors[start : min(count, start + (1 << 24))], minlength=PALETTE_SIZE)[:PALETTE_SIZE]
    return counts


def constant_time_target(history: History, before: int, size: int, horizon_ms: int, samples: int | None, seed: int) -> float | None:
    """The mean time target (cells on the canvas) over events 0..before−1 whose horizon ends
    within the data (at most ``samples`` of them, drawn uniformly with ``[seed, 2]``); None
    without such events."""
    complete = min(before, uncensored(history, horizon_ms))
    if complete == 0:
        return None
    if samples is not None and complete > samples:
        ids = np.sort(np.random.default_rng([seed, 2]).choice(complete, samples, replace=False))
    else:
        ids = np.arange(complete)
    total, count = 0.0, 0
    for start in range(0, len(ids), 4096):
        batch = ids[start : start + 4096]
        cells = inside_cells(history, batch, size)
        total += float(history.time_targets(batch, size, horizon_ms)[cells].astype(np.float64).sum())
        count += int(cells.sum())
    return total / count
