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
- ``previous``: the color the pixel showed before its last placement (white if it had fewer
  than two: :meth:`rplacevit.History.previous_colors`), what a damaged pixel is restored to;
  then its present color, then the most frequent colors among its 8 neighbours;
- ``neighbourhood``: the most frequent colors among the 8 neighbours (ties: lower palette index;
  cells off the canvas never count);
- ``recent``: the colors placed most often by earlier events inside the event's 64×64 window
  during the 10 minutes before it (ties: the color placed most recently); nothing when none was.

**Time.** With a time model: its predictions on the events' c×c grids (c its centre, targets
as in training: time to the next event at each pixel over its horizon, capped at 1). Cells off
the canvas are left out, and so are the events whose horizon runs past the last event of the
data (``censored`` in the report): their targets of 1 would only say that the data ends. MSE
against the targets (for a model of ``time_objective`` "mse"; a "bce" model predicts no time);
ROC-AUC of "this pixel changes within the horizon" (target < 1) scored by 1 − the model's
time-like score (:meth:`rplacevit.models.TimeModel.time_fraction`), ties counted one half.
Baselines: ``constant``, the mean target over all events before ``t0`` (a uniform sample of at
most ``samples`` of them, censored ones left out), MSE only; ``recency``, scored by the time of
the pixel's last change before the event (later is higher; never changed is lowest), AUC only.

**Several models** of a kind are scored on the same events and reported side by side (see
:func:`evaluate`): an ablation is one call.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, Union

import numpy as np
import torch

from . import ArgumentError, outputs
from .baselines import (
    PER_EVENT_BASELINES,
    RECENT_MS,
    RECENT_SIZE,
    color_metrics,
    current_ranking,
    previous_ranking,
    neighbourhood_ranking,
    prior_ranking,
    recent_ranking,
    roc_auc,
    top_k,
)
from .data import UserVectors, model_inputs, select_events, to_device
from .devices import DEFAULT_THREADS, resolve_device, use_threads
from .history import COLOR_HORIZON_MS, COLOR_TARGET, TIME_HORIZON_MS, History
from .history import open as open_history
from .models import PALETTE_SIZE, WindowModel, check_palette, model_on
from .progress import bar as progress_bar
from .report import EXAMPLES, write_report
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


#: What ``color_model`` and ``time_model`` of :func:`evaluate` take: a checkpoint file or a model
#: object, a list of them, or a dict label → either.
Models = Union[_Path, WindowModel, Sequence[Union[_Path, WindowModel]], Mapping[str, Union[_Path, WindowModel]]]


def model_label(source: _Path | WindowModel) -> str:
    """How a report names a model: its run folder (``runs/age/model.pt`` → ``age``), the file's
    stem for another file name, the class name of a model object."""
    if isinstance(source, torch.nn.Module):
        return type(source).__name__
    path = Path(source)
    return path.parent.name if path.name == "model.pt" and path.parent.name else path.stem


def labelled(models: Models | None) -> dict[str, _Path | WindowModel]:
    """``models`` as label → source: a dict as given, anything else labelled by
    :func:`model_label` (``#2``, ``#3``… after a label taken already)."""
    if models is None:
        return {}
    if isinstance(models, Mapping):
        return dict(models)
    sources = list(models) if isinstance(models, (list, tuple)) else [models]
    found: dict[str, _Path | WindowModel] = {}
    for source in sources:
        label, k = model_label(source), 1
        while (label if k == 1 else f"{label}#{k}") in found:
            k += 1
        found[label if k == 1 else f"{label}#{k}"] = source
    return found


@dataclass
class Loaded:
    """One model of an evaluation: the model on its device, its checkpoint's name and training
    record (None for an object), and the users its ``users`` input sees (None without)."""

    model: WindowModel
    name: str
    training: dict | None
    users: UserVectors | None = None


def load_models(models: Models | None, kind: str, device) -> dict[str, Loaded]:
    loaded = {}
    for label, source in labelled(models).items():
        model, training, name = model_on(source, kind, device)
        loaded[label] = Loaded(model, name, training)
    return loaded


def agreed(loaded: dict[str, Loaded], what: str, value_of) -> object:
    """The one value of ``value_of(loaded model)`` all models share: ValueError naming ``what``
    when they differ (the baselines score one target for all)."""
    values = {label: value_of(one) for label, one in loaded.items()}
    if len(set(map(str, values.values()))) > 1:
        raise ValueError(f"the models have different {what} ({', '.join(f'{label}: {v}' for label, v in values.items())}): "
                         "evaluate them separately")
    return next(iter(values.values()))


def evaluate(
    dataset: _Path,
    color_model: Models,
    time_model: Models | None = None,
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
    allow_other_palette: bool = False,
    force: bool = False,
    progress: bool = True,
    threads: int = DEFAULT_THREADS,
) -> dict:
    """Evaluates the models on ``dataset`` (see the module docstring for the events, the metrics
    and the baselines) and returns the report as a dict.

    color_model, time_model: a checkpoint file or a model object each, or several (a list,
    labelled by their run folders, or a dict label → model), scored side by side on the same
    events; each model is fed the inputs it was trained with. The color models must share their
    target and the time models their horizon and centre. t0, t1: ISO 8601 or ms; the events have
    ``t0 ≤ timestamp < t1`` (to the end without t1); without t0, the latest end of the models'
    training data (as recorded in their checkpoints). region: (x0, y0, x1, y1), x1 and y1
    exclusive. samples: a uniform sample of at most this many events (None: all). threads:
    torch's CPU threads (:data:`rplacevit.devices.DEFAULT_THREADS`). out: a report
    folder to write (``report.json``, ``report.md``, ``events.npy``, ``confusion.png`` and
    ``examples.png`` of the first color model); built beside and renamed into place when
    complete; an existing report folder is replaced only with ``force``, and never a folder
    without a ``report.json``. The time AUC keeps every cell's score in memory, about 13 bytes
    per cell and time model (3.3 kB per event with 16×16 grids).

    The report: ``"color"`` (and ``"time"`` with a time model) hold ``"model"``, the metrics of
    the model, when one model of that kind is given, and ``"models"``, label → metrics, when
    several are; ``"baselines"`` beside them.

    Raises ValueError for an empty selection, a ``t0`` before the end of a model's
    training data (unless ``allow_overlap``), a dataset whose palette is not the models' (unless
    ``allow_other_palette``), a checkpoint of the wrong kind, or a bad argument.
    """
    if samples is not None and not (isinstance(samples, int) and samples >= 1):
        raise ArgumentError(f"`samples` = {samples!r}: expected a positive integer, or None for all events")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ArgumentError(f"`batch_size` = {batch_size!r}: expected a positive integer")
    if out is not None:
        out = Path(out)
        outputs.check(out, "report", force)
    device = resolve_device(device)
    use_threads(threads)
    colors, timers = load_models(color_model, "color", device), load_models(time_model, "time", device)
    if not colors:
        raise ArgumentError("`color_model`: give at least one color model")
    everything = {**{f"color {k}": v for k, v in colors.items()}, **{f"time {k}": v for k, v in timers.items()}}
    trained = {one.name: one.training for one in everything.values() if one.training and one.training.get("until") is not None}
    if t0 is None:
        if not trained:
            raise ArgumentError("no `t0` given and no training record in the models to take it from: give `t0`")
        t0 = max(t["until"] for t in trained.values())  # the first moment no model has seen
    t0 = parse_time(t0)
    t1 = None if t1 is None else parse_time(t1)
    if t1 is not None and t1 <= t0:
        raise ArgumentError(f"`t1` {format_time(t1)} is not after `t0` {format_time(t0)}")
    for name, training in trained.items():
        check_no_overlap(name, training, t0, allow_overlap)
    target_mode = agreed(colors, "color targets", lambda one: (one.training or {}).get("target", COLOR_TARGET))
    color_horizon = agreed(colors, "color horizons", lambda one: (one.training or {}).get("horizon_ms", COLOR_HORIZON_MS))
    time_horizon = centre = None
    if timers:
        time_horizon = agreed(timers, "time horizons", lambda one: (one.training or {}).get("horizon_ms", TIME_HORIZON_MS))
        centre = agreed(timers, "centres", lambda one: one.model.config.centre)

    history = open_history(dataset)
    for one in everything.values():
        check_palette(one.model.config, history.palette, allow_other_palette, f"the dataset {os.fspath(dataset)}")
    # The users input sees the users as its training data showed them (as of t0 for an object).
    users_at: dict[int | None, UserVectors] = {}
    for one in everything.values():
        if "users" in one.model.config.inputs:
            until = (one.training or {}).get("until", t0)
            one.users = users_at[until] = users_at.get(until) or UserVectors.of(history, until)
    ids, selected = choose_events(history, region, t0, t1, samples, seed)
    before = int(np.searchsorted(history.events()["timestamp"], t0))  # events 0..before−1

    began = time.perf_counter()
    scores = score_events(history, ids, colors, timers, target_mode, color_horizon, time_horizon, batch_size, device, progress)
    prior_counts = color_counts(history, before)
    scores.ranks["prior"], prior_probabilities = prior_ranking(prior_counts, len(ids))
    report = {"color": color_section(scores, target_mode, -np.log(prior_probabilities[scores.targets]))}
    if timers:
        constant = constant_time_target(history, before, centre, time_horizon, samples, seed)
        report["time"] = time_section(history, ids, scores, {label: one.model for label, one in timers.items()}, time_horizon, constant)
    seconds = time.perf_counter() - began
    report["setup"] = {
        "dataset": os.fspath(dataset),
        "from": format_time(t0),
        "to": None if t1 is None else format_time(t1),
        "region": None if region is None else list(region),
        "selected": selected,
        "samples": samples,
        "seed": seed,
        **model_names("color", colors),
        **model_names("time", timers),
        "training_until": {name: format_time(t["until"]) for name, t in trained.items()},
        "events_before_from": before,
        "seconds": seconds,
        "events_per_s": len(ids) / seconds if seconds > 0 else None,
    }
    if out is not None:
        shown, first = next(iter(colors.items()))
        examples = np.sort(np.random.default_rng([seed, 1]).permutation(len(ids))[:EXAMPLES])
        with torch.inference_mode():
            inputs = to_device(model_inputs(history, ids[examples], first.model.config, first.users), device)
            probabilities = torch.softmax(first.model(inputs).float(), dim=1).cpu().numpy()
        write_report(out, report, ids, scores, shown, history, examples, probabilities, force)
    return report


def model_names(kind: str, loaded: dict[str, Loaded]) -> dict:
    """The setup's names of the ``kind`` models: ``{kind}_model`` (None without) for one or none,
    ``{kind}_models`` (label → name) for several; and what they see, ``{kind}_inputs`` (a
    list, or label → list)."""
    inputs = {label: list(one.model.config.inputs) for label, one in loaded.items()}
    if len(loaded) <= 1:
        return {f"{kind}_model": next((one.name for one in loaded.values()), None), f"{kind}_inputs": next(iter(inputs.values()), None)}
    return {f"{kind}_models": {label: one.name for label, one in loaded.items()}, f"{kind}_inputs": inputs}


@dataclass
class Scores:
    """What the models and the per-event baselines say of each evaluated event, in id order.
    targets: (n,) int64 colors. ranks: name → (n, 3) int64 colors ranked (−1: no more), for
    each of PER_EVENT_BASELINES (and "prior", added by the caller). models: label →
    (n, 3) ranks of each color model; model_nll: label → (n,) float64 −ln p(target) in nats.
    With time models, (n, c, c) arrays: time_targets; predicted, label → each model's time-like
    scores (fractions of the horizon, lower = sooner: :meth:`TimeModel.time_fraction`);
    last_changes (ms, int64 min: never)."""

    targets: np.ndarray
    ranks: dict[str, np.ndarray]
    models: dict[str, np.ndarray]
    model_nll: dict[str, np.ndarray]
    time_targets: np.ndarray | None = None
    predicted: dict[str, np.ndarray] | None = None
    last_changes: np.ndarray | None = None


def score_events(history: History, ids: np.ndarray, colors: dict[str, Loaded], timers: dict[str, Loaded], target_mode: str,
                 color_horizon: int, time_horizon: int | None, batch_size: int, device: torch.device, progress: bool) -> Scores:
    """Runs the models and the baselines over ``ids`` in batches, one Rust call per read (the
    inputs of models that see the same are read once)."""
    n = len(ids)
    scores = Scores(np.empty(n, np.int64), {name: np.empty((n, 3), np.int64) for name in PER_EVENT_BASELINES},
                    {label: np.empty((n, 3), np.int64) for label in colors}, {label: np.empty(n, np.float64) for label in colors})
    if timers:
        c = next(iter(timers.values())).model.config.centre
        scores.time_targets, scores.last_changes = np.empty((n, c, c), np.float32), np.empty((n, c, c), np.int64)
        scores.predicted = {label: np.empty((n, c, c), np.float32) for label in timers}
    with torch.inference_mode(), progress_bar("evaluate", "event", progress, total=n) as bar:
        for start in range(0, n, batch_size):
            batch = ids[start : start + batch_size]
            part = slice(start, start + len(batch))
            read: dict[tuple, dict[str, torch.Tensor]] = {}

            def inputs_of(one: Loaded) -> dict[str, torch.Tensor]:
                config = one.model.config
                key = (config.window, config.inputs, config.placer_k, id(one.users))
                if key not in read:
                    read[key] = to_device(model_inputs(history, batch, config, one.users), device)
                return read[key]

            targets = scores.targets[part] = history.color_targets(batch, target_mode, color_horizon)
            for label, one in colors.items():
                log_p = torch.log_softmax(one.model(inputs_of(one)).float(), dim=1).cpu().numpy().astype(np.float64)
                scores.models[label][part] = top_k(log_p)
                scores.model_nll[label][part] = -log_p[np.arange(len(batch)), targets]
            windows3 = history.windows(batch, 3)
            scores.ranks["current"][part] = current_ranking(windows3)
            scores.ranks["previous"][part] = previous_ranking(windows3, history.previous_colors(batch, 1)[:, 0, 0])
            scores.ranks["neighbourhood"][part] = neighbourhood_ranking(windows3)
            scores.ranks["recent"][part] = recent_ranking(*history.recent_colors(batch, RECENT_SIZE, RECENT_MS))
            if timers:
                scores.time_targets[part] = history.time_targets(batch, c, time_horizon)
                scores.last_changes[part] = history.last_change_times(batch, c)
                for label, one in timers.items():
                    scores.predicted[label][part] = one.model.time_fraction(one.model(inputs_of(one))).float().cpu().numpy()
            bar.update(len(batch))
    return scores


def color_section(scores: Scores, target_mode: str, prior_nll: np.ndarray) -> dict:
    targets, ranks = scores.targets, scores.ranks
    baselines = {"prior": color_metrics(targets, ranks["prior"], prior_nll)}
    baselines.update({name: color_metrics(targets, ranks[name]) for name in PER_EVENT_BASELINES})
    models = {label: color_metrics(targets, scores.models[label], scores.model_nll[label]) for label in scores.models}
    return {"n": len(targets), "target": target_mode, **one_or_several(models), "baselines": baselines}


def one_or_several(models: dict[str, dict]) -> dict:
    """``{"model": metrics}`` for one model, ``{"models": {label: metrics}}`` for several."""
    return {"model": next(iter(models.values()))} if len(models) == 1 else {"models": models}


def time_section(history: History, ids: np.ndarray, scores: Scores, timers: dict[str, WindowModel], horizon_ms: int,
                 constant: float | None) -> dict:
    # An event whose horizon runs past the last event of the data has targets of 1.0 that only
    # say "the data ended here": it is left out of the time metrics, and counted as censored.
    complete = ids < uncensored(history, horizon_ms)
    cells = inside_cells(history, ids, scores.time_targets.shape[1]) & complete[:, None, None]
    truth = scores.time_targets[cells].astype(np.float64)
    changes = truth < 1.0
    models = {}
    for label, model in timers.items():
        guess = scores.predicted[label][cells].astype(np.float64)
        # A "bce" model gives no time, so no MSE: its score ranks pixels, for the AUC.
        mse = mean_or_none((guess - truth) ** 2) if model.config.time_objective == "mse" else None
        models[label] = {"mse": mse, "auc": roc_auc(changes, 1.0 - guess)}
    return {
        "n": int(complete.sum()),
        "censored": int((~complete).sum()),
        "cells": int(cells.sum()),
        "horizon_ms": horizon_ms,
        **one_or_several(models),
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
