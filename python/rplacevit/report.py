"""The evaluation's report folder: ``report.json``, ``report.md``, ``events.npy``,
``confusion.png`` (the model's colors against the true ones) and ``examples.png`` (a few events
with every predictor's guess), and the table printed on a terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .baselines import COLOR_BASELINES, RECENT_SIZE
from .outputs import staged_folder
from .history import History
from .models import PALETTE_SIZE
from .render import padded_hex, to_rgb

if TYPE_CHECKING:
    from .evaluate import Scores

#: Events drawn in ``examples.png``.
EXAMPLES = 8


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
        f"- dataset: `{setup['dataset']}`; events from {setup['from']} to {setup['to'] or 'the end'}{where}: "
        f"{drawn} of {setup['selected']:,} (ids in `events.npy`)",
    ]
    lines += model_lines(setup, "color", f", target `{color['target']}`")
    if "time" in report:
        lines += model_lines(setup, "time", f", horizon {report['time']['horizon_ms'] / 60_000:g} min")
    for name, until in setup["training_until"].items():
        lines.append(f"- `{name}` trained on events before {until}")
    lines += [f"- {setup['events_per_s']:,.0f} events/s", "", f"## Color ({color['n']:,} events)", "",
              "| predictor | top-1 | top-3 | NLL (nats) |", "|---|---:|---:|---:|"]
    for name, metrics in [*model_rows(color), *color["baselines"].items()]:
        lines.append(f"| {name} | {_number(metrics['top1'])} | {_number(metrics['top3'])} | {_number(metrics.get('nll'))} |")
    if "time" in report:
        t = report["time"]
        censored = f"; {t['censored']:,} left out: their horizon runs past the end of the data" if t["censored"] else ""
        lines += ["", f"## Time ({t['n']:,} events, {t['cells']:,} pixels on the canvas{censored})", "",
                  "| predictor | MSE | ROC-AUC |", "|---|---:|---:|"]
        lines += [f"| {name} | {_number(metrics['mse'], 4)} | {_number(metrics['auc'])} |" for name, metrics in model_rows(t)]
        lines += [f"| constant ({_number(t['baselines']['constant']['value'])}) | {_number(t['baselines']['constant']['mse'], 4)} | – |",
                  f"| recency | – | {_number(t['baselines']['recency']['auc'])} |"]
    return "\n".join(lines) + "\n"


def model_lines(setup: dict, kind: str, detail: str) -> list[str]:
    """The setup's lines naming the ``kind`` models and what they see."""
    if f"{kind}_models" not in setup:
        inputs = ", ".join(setup[f"{kind}_inputs"])
        return [f"- {kind} model: `{setup[f'{kind}_model']}` seeing {inputs}{detail}"]
    return [f"- {kind} model `{label}`: `{name}` seeing {', '.join(setup[f'{kind}_inputs'][label])}{detail}"
            for label, name in setup[f"{kind}_models"].items()]


def model_rows(section: dict) -> list[tuple[str, dict]]:
    """(row name, metrics) of a section's models: ``model`` for one, ``model label`` for several."""
    if "model" in section:
        return [("model", section["model"])]
    return [(f"model `{label}`", metrics) for label, metrics in section["models"].items()]


def write_report(out: Path, report: dict, ids: np.ndarray, scores: Scores, shown: str, history: History, examples: np.ndarray,
                 probabilities: np.ndarray, force: bool) -> None:
    """Writes the report folder ``out`` (built beside, renamed into place when complete; what is
    there already is replaced as :mod:`rplacevit.outputs` says: a report, with ``force``). The pictures show
    the color model labelled ``shown``: ``examples`` are positions in ``ids`` and
    ``probabilities`` that model's (EXAMPLES, 32) for them."""
    with staged_folder(out, "report", force) as staging:
        np.save(staging / "events.npy", ids.astype(np.int64))
        plot_confusion(staging / "confusion.png", scores.targets, scores.models[shown][:, 0], history.palette)
        ranks = {"model": scores.models[shown], **scores.ranks}
        plot_examples(staging / "examples.png", history, ids[examples], scores.targets[examples],
                      {name: r[examples] for name, r in ranks.items()}, probabilities)
        (staging / "report.md").write_text(markdown(report))
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(path: Path, targets: np.ndarray, predicted: np.ndarray, palette: list[str] | None = None) -> None:
    """The model's top-1 colors against the true ones, each row normalised, for the colors that
    occur as either; labels in the colors of ``palette`` (None: 2022's)."""
    plt = _pyplot()
    hexes = padded_hex(palette)
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
            label.set_bbox(dict(facecolor=hexes[color], edgecolor="black", linewidth=0.5, pad=1.5))
            label.set_color("white" if sum(int(hexes[color][i:i + 2], 16) for i in (1, 3, 5)) < 300 else "black")
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
    hexes = padded_hex(history.palette)
    windows = history.windows(ids, RECENT_SIZE)
    figure, all_axes = plt.subplots(len(ids), 2, figsize=(9, 1.5 * len(ids)), gridspec_kw={"width_ratios": [1, 5]}, squeeze=False)
    for row, axes in enumerate(all_axes):
        picture, strip = axes
        picture.imshow(to_rgb(windows[row], palette=history.palette_rgb), interpolation="nearest")
        middle = RECENT_SIZE // 2
        picture.add_patch(Rectangle((middle - 1.5, middle - 1.5), 3, 3, fill=False, edgecolor="magenta", linewidth=1.2))
        picture.set_axis_off()
        picture.set_title(f"event {ids[row]:,}", fontsize=7)
        guesses = [targets[row], *ranks["model"][row], *(ranks[name][row, 0] for name in COLOR_BASELINES)]
        for k, (name, color) in enumerate(zip(columns, guesses)):
            face = "none" if color < 0 else hexes[color]
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
    figure.suptitle(f"Each row: the {RECENT_SIZE}×{RECENT_SIZE} window before the event, the magenta square around the pixel "
                    "placed; the color placed (true), the model's top 3 with probabilities, each rule's first guess; ✓ right, "
                    "hatched: no guess", fontsize=7, wrap=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def format_table(report: dict) -> str:
    """The tables of ``report.md``, for a terminal."""
    text = markdown(report)
    return text[text.index("## Color"):]

