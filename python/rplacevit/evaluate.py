"""Can the canvas be predicted? The models against simple rules on events later than anything
they trained on (:func:`evaluate`, the ``rplacevit evaluate`` command).

**Events.** Those with ``from ≤ timestamp < to`` (and in the region), all of them or a uniform
sample of ``samples`` drawn without replacement by ``numpy.random.default_rng(seed)``, in id
order; their ids are saved as ``events.npy`` so that any number can be recomputed.

**Color.** The target is the color model's own (``placed`` unless it was trained on
``next_minute_majority``, with its horizon). Each predictor ranks colors; top-1 is right when
its first color is the target, top-3 when one of its first three is; a predictor with fewer
than three candidates for an event simply offers fewer. NLL is the mean of −ln p(target) in
nats, for the predictors that give probabilities: the model (softmax of its logits) and
``prior``. The baselines, all read off the canvas strictly before each event:

- ``prior``: the frequencies of the colors placed by all events before ``from`` (the whole
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
the mean target over all events before ``from`` (a uniform sample of at most ``samples`` of
them, censored ones left out), MSE only; ``recency``, scored by the time of the pixel's last change before the event
(later is higher; never changed is lowest), AUC only.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from tqdm import tqdm

from . import PALETTE_HEX, PALETTE_RGB, ArgumentError
from .data import select_events
from .devices import resolve_device
from .history import History
from .history import open as open_history
from .infer import model_on
from .models import PALETTE_SIZE, WindowModel, load_model, read_checkpoint
from .render import to_rgb
from .times import format_time, parse_time

_Path = Union[str, os.PathLike]

#: Side of the window and length of the period the ``recent`` baseline looks at.
RECENT_SIZE, RECENT_MS = 64, 600_000
#: Events drawn in ``examples.png``.
EXAMPLES = 8
COLOR_BASELINES = ("prior", "current", "neighbourhood", "recent")
#: The baselines that rank colors event by event (the prior ranks them once for all).
PER_EVENT_BASELINES = COLOR_BASELINES[1:]


# --- metrics -------------------------------------------------------------------------------


def top_k(scores: np.ndarray, k: int = 3) -> np.ndarray:
    """(n, k) int64: the k colors of highest score per row, ties to the lower index; −1 where a
    row has fewer than k colors of score above −inf."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    ranked = np.take_along_axis(scores, order, axis=1)
    return np.where(ranked > -np.inf, order, -1)


def color_metrics(targets: np.ndarray, ranked: np.ndarray, nll: np.ndarray | None = None) -> dict:
    """top1, top3 (fractions) of (n, 3) rankings against (n,) targets; nll: the mean of the (n,)
    per-event negative log-likelihoods, when given."""
    hits = ranked == targets[:, None]
    metrics = {"top1": float(hits[:, 0].mean()), "top3": float(hits.any(axis=1).mean())}
    if nll is not None:
        metrics["nll"] = float(nll.mean())
    return metrics


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """The probability that a random positive scores above a random negative, ties counted one
    half (the Mann–Whitney U over average ranks); None without positives or negatives."""
    labels, scores = labels.ravel().astype(bool), scores.ravel()
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Average 1-based rank of each distinct score: the ranks its tied group spans, averaged.
    average_rank = np.cumsum(counts) - (counts - 1) / 2
    rank_sum = average_rank[inverse.ravel()][labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


# --- baselines -----------------------------------------------------------------------------


def neighbour_counts(windows3: np.ndarray) -> np.ndarray:
    """(n, 32) int64: how many of the 8 neighbours have each color, from (n, 3, 3) windows
    centred on the events (OUTSIDE never counts)."""
    neighbours = np.delete(windows3.reshape(len(windows3), 9), 4, axis=1)
    return (neighbours[:, :, None] == np.arange(PALETTE_SIZE)).sum(axis=1)


def prior_ranking(prior_counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) ranking and (32,) add-one smoothed probabilities of the prior."""
    probabilities = (prior_counts + 1) / (prior_counts.sum() + PALETTE_SIZE)
    ranked = top_k(probabilities[None, :].astype(np.float64))
    return np.repeat(ranked, n, axis=0), probabilities


def current_ranking(windows3: np.ndarray) -> np.ndarray:
    """(n, 3): the pixel's color, then the two most frequent other colors around it."""
    centre = windows3[:, 1, 1].astype(np.int64)
    counts = neighbour_counts(windows3).astype(np.float64)
    counts[np.arange(len(centre)), centre] = 0
    others = top_k(np.where(counts > 0, counts, -np.inf), 2)
    return np.concatenate([centre[:, None], others], axis=1)


def neighbourhood_ranking(windows3: np.ndarray) -> np.ndarray:
    """(n, 3): the most frequent colors among the 8 neighbours."""
    counts = neighbour_counts(windows3).astype(np.float64)
    return top_k(np.where(counts > 0, counts, -np.inf))


def recent_ranking(counts: np.ndarray, latest: np.ndarray) -> np.ndarray:
    """(n, 3): the colors placed most often lately, ties to the latest placed (ids < 2³²)."""
    keys = counts.astype(np.float64) * 2.0**32 + latest  # exact: both terms are integers < 2⁵³
    return top_k(np.where(counts > 0, keys, -np.inf))


# --- the evaluation ------------------------------------------------------------------------


def load(source: _Path | WindowModel, kind: str, device: torch.device) -> tuple[WindowModel, dict | None, str]:
    """(model on device, its training record or None, a name for the report)."""
    if isinstance(source, torch.nn.Module):
        return model_on(source, kind, device), None, f"{type(source).__name__} object"
    name = os.fspath(source)
    checkpoint = read_checkpoint(source, device)
    return load_model(checkpoint, device, expect_kind=kind, name=name), checkpoint.get("training"), name


def check_no_overlap(name: str, training: dict, t_from: int, allow_overlap: bool) -> None:
    if t_from < training["until"] and not allow_overlap:
        raise ValueError(
            f"--from {format_time(t_from)} is before the end of the training data of {name} "
            f"({format_time(training['until'])}): its scores would count events it trained on; "
            "choose a later --from, or pass --allow-overlap to evaluate on training data anyway"
        )


def choose_events(history: History, region, t_from: int, t_to: int | None, samples: int | None, seed: int) -> tuple[np.ndarray, int]:
    """(sorted int64 ids of the evaluated events, how many the selection held)."""
    ids = select_events(history, region, t0=t_from, t1=t_to)
    where = f" in region {','.join(map(str, region))}" if region is not None else ""
    until = "the end" if t_to is None else format_time(t_to)
    if len(ids) == 0:
        raise ValueError(f"no events from {format_time(t_from)} to {until}{where}: nothing to evaluate")
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
    data: _Path,
    color_model: _Path | WindowModel,
    time_model: _Path | WindowModel | None = None,
    *,
    t_from: str | int | None = None,
    t_to: str | int | None = None,
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
    """Evaluates the models on dataset ``data`` (see the module docstring for the events, the
    metrics and the baselines) and returns the report as a dict.

    t_from, t_to: ISO 8601 or ms; the events have ``t_from ≤ timestamp < t_to`` (to the end
    without t_to); without t_from, the latest end of the models' training data (as recorded in
    their checkpoints). region: (x0, y0, x1, y1), x1 and y1 exclusive. samples: a uniform sample of
    at most this many events (None: all). out: a report folder to write (``report.json``,
    ``report.md``, ``events.npy``, ``confusion.png``, ``examples.png``); built beside and
    renamed into place when complete; an existing report folder is replaced only with
    ``force``, and never a folder without a ``report.json``. The time AUC keeps every cell's
    score in memory, about 13 bytes per cell (3.3 kB per event with 16×16 grids).

    Raises ValueError for an empty selection, a ``t_from`` before the end of a model's
    training data (unless ``allow_overlap``), a checkpoint of the wrong kind, or a bad argument.
    """
    if samples is not None and not (isinstance(samples, int) and samples >= 1):
        raise ArgumentError(f"samples = {samples!r}: expected a positive integer, or None for all events")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ArgumentError(f"batch_size = {batch_size!r}: expected a positive integer")
    if out is not None:
        out = Path(out)
        if out.exists() and any(out.iterdir()):
            if not (out / "report.json").exists():
                raise ArgumentError(f"{out} is not empty and holds no report: choose another folder")
            if not force:
                raise ArgumentError(f"{out} already holds a report: pass --force to replace it")
    device = resolve_device(device)
    color, color_training, color_name = load(color_model, "color", device)
    timer, time_training, time_name = (None, None, None) if time_model is None else load(time_model, "time", device)
    trained = [(name, t) for name, t in ((color_name, color_training), (time_name, time_training)) if t and t.get("until") is not None]
    if t_from is None:
        if not trained:
            raise ArgumentError("no --from given and no training record in the models to take it from: give --from TIME")
        t_from = max(t["until"] for _, t in trained)  # the first moment no model has seen
    t_from = parse_time(t_from)
    t_to = None if t_to is None else parse_time(t_to)
    if t_to is not None and t_to <= t_from:
        raise ArgumentError(f"--to {format_time(t_to)} is not after --from {format_time(t_from)}")
    for name, training in trained:
        check_no_overlap(name, training, t_from, allow_overlap)

    history = open_history(data)
    ids, selected = choose_events(history, region, t_from, t_to, samples, seed)
    target_mode = (color_training or {}).get("target", "placed")
    color_horizon = (color_training or {}).get("horizon_ms", 60_000)
    time_horizon = (time_training or {}).get("horizon_ms", 3_600_000)
    before = int(np.searchsorted(history.events()["timestamp"], t_from))  # events 0..before−1

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
        "data": os.fspath(data),
        "from": format_time(t_from),
        "to": None if t_to is None else format_time(t_to),
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
        write_report(out, report, ids, scores, history, examples, probabilities)
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


# --- the report ----------------------------------------------------------------------------


def _number(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(report: dict) -> str:
    """``report.md``: the setup, then one table per task."""
    setup, color = report["setup"], report["color"]
    where = "" if setup["region"] is None else f" in region {','.join(map(str, setup['region']))}"
    drawn = f"a uniform sample of {color['n']:,} (seed {setup['seed']})" if color["n"] < setup["selected"] else f"all {color['n']:,}"
    lines = [
        "# rplacevit evaluation",
        "",
        f"- data: `{setup['data']}`; events from {setup['from']} to {setup['to'] or 'the end'}{where}: "
        f"{drawn} of {setup['selected']:,} (ids in `events.npy`)",
        f"- color model: `{setup['color_model']}`, target `{color['target']}`",
    ]
    if setup["time_model"]:
        lines.append(f"- time model: `{setup['time_model']}`, horizon {report['time']['horizon_ms'] / 60_000:g} min")
    for name, until in setup["training_until"].items():
        lines.append(f"- `{name}` trained on events before {until}")
    lines += [f"- {setup['events_per_s']:,.0f} events/s", "", f"## Color ({color['n']:,} events)", "",
              "| predictor | top-1 | top-3 | NLL (nats) |", "|---|---:|---:|---:|"]
    for name, metrics in [("model", color["model"]), *color["baselines"].items()]:
        lines.append(f"| {name} | {_number(metrics['top1'])} | {_number(metrics['top3'])} | {_number(metrics.get('nll'))} |")
    if "time" in report:
        t = report["time"]
        censored = f"; {t['censored']:,} left out: their horizon runs past the end of the data" if t["censored"] else ""
        lines += ["", f"## Time ({t['n']:,} events, {t['cells']:,} pixels on the canvas{censored})", "",
                  "| predictor | MSE | ROC-AUC |", "|---|---:|---:|",
                  f"| model | {_number(t['model']['mse'], 4)} | {_number(t['model']['auc'])} |",
                  f"| constant ({_number(t['baselines']['constant']['value'])}) | {_number(t['baselines']['constant']['mse'], 4)} | – |",
                  f"| recency | – | {_number(t['baselines']['recency']['auc'])} |"]
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: dict, ids: np.ndarray, scores: Scores, history: History, examples: np.ndarray,
                 probabilities: np.ndarray) -> None:
    """Builds the report folder beside ``out`` and renames it into place; ``examples`` are
    positions in ``ids`` and ``probabilities`` the model's (EXAMPLES, 32) for them."""
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        np.save(staging / "events.npy", ids.astype(np.int64))
        plot_confusion(staging / "confusion.png", scores.targets, scores.ranks["model"][:, 0])
        plot_examples(staging / "examples.png", history, ids[examples], scores.targets[examples],
                      {name: r[examples] for name, r in scores.ranks.items()}, probabilities)
        (staging / "report.md").write_text(markdown(report))
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        if out.exists():  # evaluate() checked it: empty, or a report that force lets us replace
            if (out / "report.json").exists() or not any(out.iterdir()):
                shutil.rmtree(out)
            else:
                raise ValueError(f"{out} appeared while the report was computed and holds no report: nothing replaced")
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(path: Path, targets: np.ndarray, predicted: np.ndarray) -> None:
    """The model's top-1 colors against the true ones, each row normalised, for the colors that
    occur as either."""
    plt = _pyplot()
    matrix = np.zeros((PALETTE_SIZE, PALETTE_SIZE), dtype=np.int64)
    np.add.at(matrix, (targets, predicted), 1)
    used = np.flatnonzero(matrix.sum(axis=0) + matrix.sum(axis=1))
    shown = matrix[np.ix_(used, used)].astype(np.float64)
    shown /= np.maximum(shown.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(1.6 + 0.32 * len(used), 1.2 + 0.32 * len(used)))
    image = axes.imshow(shown, cmap="viridis", vmin=0, vmax=1)
    axes.set_xticks(range(len(used)), [str(c) for c in used], fontsize=7)
    axes.set_yticks(range(len(used)), [str(c) for c in used], fontsize=7)
    for labels in (axes.get_xticklabels(), axes.get_yticklabels()):
        for label, color in zip(labels, used):
            label.set_bbox(dict(facecolor=PALETTE_HEX[color], edgecolor="black", linewidth=0.5, pad=1.5))
            label.set_color("white" if sum(PALETTE_RGB[color]) < 300 else "black")
    axes.set_xlabel("model's color (top-1)")
    axes.set_ylabel("true color")
    axes.set_title(f"confusion of {len(targets):,} events (rows sum to 1)", fontsize=9)
    figure.colorbar(image, fraction=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_examples(path: Path, history: History, ids, targets, ranks: dict, probabilities) -> None:
    """One row per event: its 64×64 window with the pixel outlined, the true color, the model's
    top-3 with probabilities, and each baseline's first guess."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    columns = ["true", "model 1", "model 2", "model 3", *COLOR_BASELINES]
    windows = history.windows(ids, RECENT_SIZE)
    figure, all_axes = plt.subplots(len(ids), 2, figsize=(9, 1.5 * len(ids)), gridspec_kw={"width_ratios": [1, 5]}, squeeze=False)
    for row, axes in enumerate(all_axes):
        picture, strip = axes
        picture.imshow(to_rgb(windows[row]), interpolation="nearest")
        middle = RECENT_SIZE // 2
        picture.add_patch(Rectangle((middle - 1.5, middle - 1.5), 3, 3, fill=False, edgecolor="magenta", linewidth=1.2))
        picture.set_axis_off()
        picture.set_title(f"event {ids[row]:,}", fontsize=7)
        guesses = [targets[row], *ranks["model"][row], *(ranks[name][row, 0] for name in COLOR_BASELINES)]
        for k, (name, color) in enumerate(zip(columns, guesses)):
            face = "none" if color < 0 else PALETTE_HEX[color]
            strip.add_patch(Rectangle((k + 0.1, 0.25), 0.8, 0.6, facecolor=face, edgecolor="black", hatch=None if color >= 0 else "//"))
            caption = name if color < 0 else f"{name}\n{color}"
            if name.startswith("model") and color >= 0:
                caption += f" ({probabilities[row, color]:.2f})"
            if k > 0 and color == targets[row]:
                caption += " ✓"
            strip.text(k + 0.5, 0.12, caption, ha="center", va="top", fontsize=6.5)
        strip.set_xlim(0, len(columns))
        strip.set_ylim(-0.35, 1)
        strip.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def format_table(report: dict) -> str:
    """The tables of ``report.md``, for a terminal."""
    text = markdown(report)
    return text[text.index("## Color"):]

