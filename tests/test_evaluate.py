"""Evaluation: each metric against values computed by hand on a crafted history, each baseline
against a plain re-implementation on random events of the real-derived sample, events.npy
reproducing the numbers, and the refusals (empty selection, training data, foreign folders)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import rplacevit
from rplacevit.baselines import color_metrics, current_ranking, neighbourhood_ranking, previous_ranking, roc_auc, top_k
from rplacevit.evaluate import evaluate
from rplacevit.report import EXAMPLES, markdown
from rplacevit.models import ColorModel, ModelConfig, TimeModel, build_model, to_checkpoint
from rplacevit.times import format_time

from conftest import replay

T0 = 1_648_818_000_000  # 2022-04-01T13:00:00Z
HOUR = 3_600_000
OUTSIDE, WHITE = rplacevit.OUTSIDE, rplacevit.WHITE
NEVER = np.iinfo(np.int64).min


def write_csv(path: Path, rows: list[tuple[int, int, int, int]]) -> None:
    """rows of (timestamp ms, x, y, palette index) in the official format."""
    with open(path, "w") as f:
        f.write("timestamp,user_id,pixel_color,coordinate\n")
        for i, (t, x, y, color) in enumerate(rows):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t // 1000)) + f".{t % 1000:03d} UTC"
            f.write(f'{stamp},user{i},{rplacevit.PALETTE_HEX[color]},"{x},{y}"\n')


def constant_color_model(probabilities: np.ndarray) -> ColorModel:
    """A color model whose softmax is ``probabilities`` whatever it sees."""
    model = build_model(ModelConfig.preset("tiny", "color", window=16, centre=4, patch=4))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.from_numpy(np.log(probabilities)))
    return model


def constant_time_model(value: float) -> TimeModel:
    model = build_model(ModelConfig.preset("tiny", "time", window=16, centre=8, patch=4))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(math.log(value / (1 - value)))
    return model


def random_model(kind: str, seed: int):
    torch.manual_seed(seed)
    overrides = dict(window=16, centre=4 if kind == "color" else 8, patch=4)
    return build_model(ModelConfig.preset("tiny", kind, **overrides)).eval()


# --- metrics by hand ---------------------------------------------------------------------


def test_metrics_by_hand():
    scores = np.array([[0.1, 0.5, 0.5, 0.2], [1.0, -np.inf, -np.inf, -np.inf], [0, 0, 0, 0]])
    np.testing.assert_array_equal(top_k(scores), [[1, 2, 3], [0, -1, -1], [0, 1, 2]])
    ranked = np.array([[1, 2, 3], [0, -1, -1], [0, 1, 2], [3, 2, 1]])
    targets = np.array([2, 0, 3, 3])
    nll = np.array([1.0, 2.0, 3.0, 6.0])
    assert color_metrics(targets, ranked, nll) == {"top1": 0.5, "top3": 0.75, "nll": 3.0}
    # AUC: 2 positives, 3 negatives; pairs (0.9 > 0.5, 0.9 > 0.1, 0.9 = 0.9: ½; 0.5 = 0.5: ½,
    # 0.5 > 0.1, 0.5 < 0.9) → (1 + 1 + ½ + ½ + 1 + 0) / 6.
    labels = np.array([1, 1, 0, 0, 0], bool)
    assert roc_auc(labels, np.array([0.9, 0.5, 0.5, 0.1, 0.9])) == pytest.approx(4 / 6)
    assert roc_auc(labels, np.array([5, 4, 3, 2, 1])) == 1.0
    assert roc_auc(labels, np.array([1, 2, 3, 4, 5])) == 0.0
    assert roc_auc(labels, np.zeros(5)) == 0.5
    assert roc_auc(np.zeros(4, bool), np.arange(4)) is None
    assert roc_auc(np.array([1, 0, 1], bool), np.array([NEVER, NEVER, 7])) == 0.75


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    """Four events before ``from`` (T0 + 2 h), far apart; five evaluated ones in [from, from + 10 s), 100
    pixels apart, colors 2, 2, 27, 31, 13; and two later changes inside their 8×8 grids: event
    1's own pixel after 30 min (target 0.5) and the pixel right of event 2 after 15 min (0.25).
    The pixel right of event 2 last changed at T0 + 3 s; no other evaluated cell ever did. A
    last event 3 h after ``from``, far away, so that no horizon runs past the data."""
    folder = tmp_path_factory.mktemp("crafted")
    t_from = T0 + 2 * HOUR
    rows = [(T0, 500, 500, 2), (T0 + 1000, 600, 500, 2), (T0 + 2000, 700, 500, 27), (T0 + 3000, 201, 100, 5)]
    rows += [(t_from + 1000 * k, 100 * k, 100, color) for k, color in zip(range(1, 6), [2, 2, 27, 31, 13])]
    rows += [(t_from + 1000 + HOUR // 2, 100, 100, 6), (t_from + 2000 + HOUR // 4, 201, 100, 6)]
    rows += [(t_from + 3 * HOUR, 1500, 1500, 6)]  # the data goes on: no horizon above is censored
    write_csv(folder / "crafted.csv", rows)
    rplacevit.ingest(folder / "crafted.csv", folder / "d")
    return folder / "d", t_from


def test_model_metrics_on_a_crafted_history(crafted, tmp_path):
    data, t_from = crafted
    p = np.full(32, 0.0625 / 28)
    p[[2, 27, 31, 13]] = [0.5, 0.25, 0.125, 0.0625]
    report = evaluate(data, constant_color_model(p), constant_time_model(0.25), t0=t_from, t1=t_from + 10_000,
                      device="cpu", progress=False, out=tmp_path / "report")
    color = report["color"]
    assert color["n"] == 5 and color["target"] == "placed"
    # Targets 2, 2, 27, 31, 13: the model ranks 2, 27, 31 first.
    assert color["model"]["top1"] == pytest.approx(2 / 5)
    assert color["model"]["top3"] == pytest.approx(4 / 5)
    assert color["model"]["nll"] == pytest.approx(math.log(2) * (1 + 1 + 2 + 3 + 4) / 5, rel=1e-6)
    # Prior: 2, 2, 27, 5 before from, add-one smoothed: 3/36, 2/36 (5 and 27), 1/36 for the rest.
    prior = color["baselines"]["prior"]
    assert (prior["top1"], prior["top3"]) == (pytest.approx(2 / 5), pytest.approx(3 / 5))
    assert prior["nll"] == pytest.approx(-(2 * math.log(3 / 36) + math.log(2 / 36) + 2 * math.log(1 / 36)) / 5)
    # Time: 5 grids of 64 cells, all 1.0 but one 0.5 and one 0.25; the model says 0.25 everywhere.
    t = report["time"]
    assert (t["n"], t["censored"], t["cells"], t["horizon_ms"]) == (5, 0, 320, HOUR)
    assert t["model"]["mse"] == pytest.approx((318 * 0.75**2 + 0.25**2) / 320, rel=1e-6)
    assert t["model"]["auc"] == 0.5  # all tied
    assert t["baselines"]["constant"]["value"] == 1.0  # nothing followed the early events within the hour
    assert t["baselines"]["constant"]["mse"] == pytest.approx((0.5**2 + 0.75**2) / 320)
    # Recency: one positive changed at T0 + 3 s, everything else never: it beats all 318
    # negatives, the other positive ties them.
    assert t["baselines"]["recency"]["auc"] == pytest.approx((318 + 0.5 * 318) / (2 * 318))
    np.testing.assert_array_equal(np.load(tmp_path / "report" / "events.npy"), [4, 5, 6, 7, 8])



def test_events_whose_horizon_runs_past_the_data_are_left_out_of_the_time_metrics(crafted):
    data, t_from = crafted
    # From t_from + 2 h 30 min on, only the last event (t_from + 3 h) is left, 30 minutes before
    # the data ends: its hour is cut short. Before it, the early events are the constant's.
    report = evaluate(data, random_model("color", 0), constant_time_model(0.25), t0=t_from + 150 * 60_000,
                      device="cpu", progress=False)
    t = report["time"]
    assert (report["color"]["n"], t["n"], t["censored"], t["cells"]) == (1, 0, 1, 0)
    assert t["model"] == {"mse": None, "auc": None} and t["baselines"]["recency"]["auc"] is None
    assert "1 left out: their horizon runs past the end of the data" in markdown(report)


# --- baselines against plain re-implementations ----------------------------------------------


def plain_rank(counts: dict[int, tuple]) -> list[int]:
    """Colors by descending key; keys are tuples compared as such."""
    return [color for color, _ in sorted(counts.items(), key=lambda item: item[1], reverse=True)]


def plain_baselines(events: np.ndarray, ids: np.ndarray, t_from: int) -> dict[str, list[list[int]]]:
    """Rankings of each baseline for each evaluated id, read off a plainly replayed canvas. The
    prior counts every event before ``t_from``, wherever it is."""
    prior = {}
    for _, t, _, color, _, _ in events:
        if t < t_from:
            prior[color] = prior.get(color, 0) + 1
    prior_order = [c for c in sorted(range(32), key=lambda c: (-prior.get(c, 0), c))][:3]
    out = {"prior": [], "current": [], "previous": [], "neighbourhood": [], "recent": []}
    canvas, replayed = replay(events, 0), 0
    for e in ids:
        canvas = replay(events, e, canvas, replayed)
        replayed = e
        _, t, _, _, x, y = events[e]
        around = {}
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dx or dy) and 0 <= x + dx < 2000 and 0 <= y + dy < 2000:
                    color = int(canvas[y + dy, x + dx])
                    around[color] = around.get(color, 0) + 1
        by_count = [c for c in sorted(around, key=lambda c: (-around[c], c))]
        here = int(canvas[y, x])
        out["current"].append([here] + [c for c in by_count if c != here][:2])
        out["neighbourhood"].append(by_count[:3])
        placed_here = [int(events[j, 3]) for j in range(e) if events[j, 4] == x and events[j, 5] == y]
        before = placed_here[-2] if len(placed_here) > 1 else rplacevit.WHITE
        out["previous"].append(list(dict.fromkeys([before, here, *by_count]))[:3])
        recent = {}
        for j in range(e - 1, -1, -1):
            tj, xj, yj, cj = events[j, 1], events[j, 4], events[j, 5], int(events[j, 3])
            if tj < t - 600_000:
                break
            if x - 32 <= xj < x + 32 and y - 32 <= yj < y + 32:
                count, latest = recent.get(cj, (0, -1))
                recent[cj] = (count + 1, max(latest, j))
        out["recent"].append(plain_rank(recent)[:3])
        out["prior"].append(prior_order)
    return out


def metrics_of(rankings: list[list[int]], targets: np.ndarray) -> tuple[float, float]:
    top1 = np.mean([bool(r) and r[0] == target for r, target in zip(rankings, targets)])
    top3 = np.mean([target in r[:3] for r, target in zip(rankings, targets)])
    return float(top1), float(top3)


def test_color_baselines_equal_plain_reimplementations(sample_dataset, sample_events, tmp_path):
    history = rplacevit.open(sample_dataset)
    first, last = history.time_range
    t_from, region = first + (last - first) * 6 // 10, (250, 375, 330, 460)
    model = random_model("color", 1)
    report = evaluate(sample_dataset, model, t0=t_from, region=region, samples=250, seed=5, device="cpu",
                      progress=False, out=tmp_path / "r")
    ids = np.load(tmp_path / "r" / "events.npy")
    assert ids.dtype == np.int64 and len(ids) == 250 and (np.diff(ids) > 0).all()
    assert (sample_events[ids, 1] >= t_from).all()
    assert ((sample_events[ids, 4] >= 250) & (sample_events[ids, 4] < 330) & (sample_events[ids, 5] >= 375) & (sample_events[ids, 5] < 460)).all()
    targets = sample_events[ids, 3]
    plain = plain_baselines(sample_events, ids, t_from)
    for name, rankings in plain.items():
        top1, top3 = metrics_of(rankings, targets)
        got = report["color"]["baselines"][name]
        assert (got["top1"], got["top3"]) == (pytest.approx(top1, abs=1e-12), pytest.approx(top3, abs=1e-12)), name
    # The prior's NLL from the same counts (all events before t_from, not only the region's), add-one smoothed.
    before = sample_events[sample_events[:, 1] < t_from]
    p = (np.bincount(before[:, 3], minlength=32) + 1) / (len(before) + 32)
    assert report["color"]["baselines"]["prior"]["nll"] == pytest.approx(-np.log(p[targets]).mean())
    assert report["setup"]["events_before_from"] == len(before)
    # events.npy reproduces the model's numbers.
    with torch.no_grad():
        log_p = torch.log_softmax(model(torch.from_numpy(history.windows(ids, 16))), dim=1).double().numpy()
    assert report["color"]["model"]["top1"] == pytest.approx(np.mean(log_p.argmax(1) == targets))
    assert report["color"]["model"]["nll"] == pytest.approx(-log_p[np.arange(len(ids)), targets].mean(), rel=1e-5)
    # Same seed, same events; another seed, others.
    again = evaluate(sample_dataset, model, t0=t_from, region=region, samples=250, seed=5, device="cpu", progress=False)
    assert again["color"] == report["color"]
    other = evaluate(sample_dataset, model, t0=t_from, region=region, samples=250, seed=6, device="cpu", progress=False)
    assert other["color"]["baselines"] != report["color"]["baselines"]


def pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    positives, negatives = scores[labels].astype(np.float64), scores[~labels].astype(np.float64)
    wins = (positives[:, None] > negatives[None, :]).sum() + 0.5 * (positives[:, None] == negatives[None, :]).sum()
    return wins / (len(positives) * len(negatives))


def test_time_metrics_and_baselines_equal_plain_reimplementations(sample_dataset, sample_events):
    history = rplacevit.open(sample_dataset)
    first, last = history.time_range
    t_from = first + (last - first) // 2
    t_to = int(sample_events[np.searchsorted(sample_events[:, 1], t_from) + 40, 1])
    color, timer = random_model("color", 2), random_model("time", 3)
    report = evaluate(sample_dataset, color, timer, t0=t_from, t1=t_to, samples=None, device="cpu", progress=False)
    ids = np.flatnonzero((sample_events[:, 1] >= t_from) & (sample_events[:, 1] < t_to))
    assert report["time"]["n"] == len(ids) >= 40
    # Plainly: for each cell of each 8×8 grid, the last change before the event and the first after.
    last_change, target, inside = [], [], []
    for e in ids:
        t, x, y = sample_events[e, 1], sample_events[e, 4], sample_events[e, 5]
        for r in range(8):
            for c in range(8):
                px, py = x - 4 + c, y - 4 + r
                inside.append(0 <= px < 2000 and 0 <= py < 2000)
                here = (sample_events[:, 4] == px) & (sample_events[:, 5] == py)
                earlier = np.flatnonzero(here[:e])
                later = np.flatnonzero(here[e + 1 :]) + e + 1
                last_change.append(sample_events[earlier[-1], 1] if len(earlier) else NEVER)
                target.append(min(1.0, (sample_events[later[0], 1] - t) / HOUR) if len(later) else 1.0)
    inside, target, last_change = np.array(inside), np.array(target), np.array(last_change)
    target, last_change = target[inside], last_change[inside]
    with torch.no_grad():
        predicted = timer(torch.from_numpy(history.windows(ids, 16))).numpy().ravel()[inside]
    assert report["time"]["cells"] == inside.sum()
    assert report["time"]["model"]["mse"] == pytest.approx(np.mean((predicted - target) ** 2), rel=1e-5)
    assert report["time"]["model"]["auc"] == pytest.approx(pairwise_auc(target < 1, 1 - predicted))
    assert report["time"]["baselines"]["recency"]["auc"] == pytest.approx(pairwise_auc(target < 1, last_change))
    before = history.select(t1=t_from)
    grids = history.time_targets(before, 8, HOUR).astype(np.float64)
    mask = np.ones(grids.shape, bool)  # the sample lies far from the canvas edge
    constant = grids[mask].mean()
    assert report["time"]["baselines"]["constant"]["value"] == pytest.approx(constant)
    assert report["time"]["baselines"]["constant"]["mse"] == pytest.approx(np.mean((constant - target) ** 2))


# --- refusals, outputs, command line ---------------------------------------------------------


def checkpoint_with_training(path: Path, model, until: int) -> Path:
    state = to_checkpoint(model)
    state["training"] = {"until": until, "target": "placed", "horizon_ms": 60_000}
    torch.save(state, path)
    return path


def test_refusals(crafted, tmp_path):
    data, t_from = crafted
    color = checkpoint_with_training(tmp_path / "color.pt", random_model("color", 0), until=t_from + 5_000)
    with pytest.raises(ValueError, match="before the end of the training data of .*color.pt.*`allow_overlap=True`"):
        evaluate(data, color, t0=t_from, device="cpu", progress=False)
    assert evaluate(data, color, t0=t_from, allow_overlap=True, device="cpu", progress=False)["color"]["n"] == 8
    assert evaluate(data, color, t0=t_from + 5_000, device="cpu", progress=False)["color"]["n"] == 4
    # Without --from: where the training data ends.
    default = evaluate(data, color, device="cpu", progress=False)
    assert default["setup"]["from"] == format_time(t_from + 5_000) and default["color"]["n"] == 4
    with pytest.raises(ValueError, match="no `t0` given and no training record"):
        evaluate(data, random_model("color", 0), device="cpu", progress=False)
    with pytest.raises(ValueError, match="no events from .* to the end: nothing to evaluate"):
        evaluate(data, color, t0=T0 + 100 * HOUR, device="cpu", progress=False)
    with pytest.raises(ValueError, match="no events .* in region 0,0,10,10"):
        evaluate(data, color, t0=t_from + 5_000, region=(0, 0, 10, 10), device="cpu", progress=False)
    timer = tmp_path / "time.pt"
    torch.save(to_checkpoint(random_model("time", 0)), timer)
    with pytest.raises(ValueError, match="time.pt is a time model checkpoint, a color model is expected"):
        evaluate(data, timer, t0=t_from + 5_000, device="cpu", progress=False)
    with pytest.raises(ValueError, match="is not after"):
        evaluate(data, color, t0=t_from + 5_000, t1=t_from, device="cpu", progress=False)
    with pytest.raises(ValueError, match="samples"):
        evaluate(data, color, t0=t_from + 5_000, samples=0, device="cpu", progress=False)
    # Report folders: never a foreign one; a previous report only with force.
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty and was not written by rplacevit"):
        evaluate(data, color, t0=t_from + 5_000, device="cpu", progress=False, out=foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["todo.txt"]
    report = tmp_path / "report"
    evaluate(data, color, t0=t_from + 5_000, device="cpu", progress=False, out=report)
    with pytest.raises(ValueError, match="already holds a report: pass `force=True`"):
        evaluate(data, color, t0=t_from + 5_000, device="cpu", progress=False, out=report)
    evaluate(data, color, t0=t_from + 5_000, samples=2, device="cpu", progress=False, out=report, force=True)
    assert len(np.load(report / "events.npy")) == 2
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_command_line_writes_the_report(crafted, tmp_path):
    data, t_from = crafted
    color = checkpoint_with_training(tmp_path / "color.pt", random_model("color", 0), until=t_from)
    timer = tmp_path / "time.pt"
    torch.save(to_checkpoint(random_model("time", 0)), timer)
    out = tmp_path / "report"
    command = [sys.executable, "-m", "rplacevit", "evaluate", str(data), "--color-model", str(color),
               "--time-model", str(timer), "--from", format_time(t_from), "--to", format_time(t_from + 10_000),
               "--samples", "all", "--device", "cpu", "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "| model |" in result.stdout and "| recency |" in result.stdout and str(out) in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert set(report["color"]) == {"n", "target", "model", "baselines"}
    assert set(report["color"]["model"]) == {"top1", "top3", "nll"}
    assert set(report["color"]["baselines"]) == {"prior", "current", "previous", "neighbourhood", "recent"}
    assert set(report["color"]["baselines"]["current"]) == {"top1", "top3"}
    assert set(report["time"]["model"]) == {"mse", "auc"}
    assert set(report["time"]["baselines"]) == {"constant", "recency"}
    assert report["color"]["n"] == 5 and report["setup"]["samples"] is None
    assert "| prior |" in (out / "report.md").read_text()
    for picture in ("confusion.png", "examples.png"):
        assert (out / picture).stat().st_size > 0
    # Training data refused by the command too, with a clear message and nothing written.
    refused = subprocess.run(command[:-1] + [str(tmp_path / "other")] + ["--from", format_time(t_from - 1)], capture_output=True, text=True)
    assert refused.returncode == 1 and "--allow-overlap" in refused.stderr
    assert not (tmp_path / "other").exists()
    bad = subprocess.run(command[:-2] + ["--samples", "none", "-o", str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode == 2 and "positive integer or 'all'" in bad.stderr


def test_the_color_target_is_the_models_own(sample_dataset, tmp_path):
    history = rplacevit.open(sample_dataset)
    first, last = history.time_range
    t_from = first + (last - first) // 2
    model = random_model("color", 4)
    state = to_checkpoint(model)
    state["training"] = {"until": t_from, "target": "next_minute_majority", "horizon_ms": 3 * HOUR}
    torch.save(state, tmp_path / "majority.pt")
    report = evaluate(sample_dataset, tmp_path / "majority.pt", t0=t_from, samples=300, seed=1, device="cpu",
                      progress=False, out=tmp_path / "r")
    assert report["color"]["target"] == "next_minute_majority"
    ids = np.load(tmp_path / "r" / "events.npy")
    targets = history.color_targets(ids, "next_minute_majority", 3 * HOUR)
    assert (targets != history.color_targets(ids)).any()  # a different question from "placed" (the sample changes a pixel at most every half hour)
    with torch.no_grad():
        predicted = model(torch.from_numpy(history.windows(ids, 16))).argmax(1).numpy()
    assert report["color"]["model"]["top1"] == pytest.approx(np.mean(predicted == targets))
    windows3 = history.windows(ids, 3)
    assert report["color"]["baselines"]["current"]["top1"] == pytest.approx(np.mean(windows3[:, 1, 1] == targets))


def test_progress_bar_counts_events(crafted, capsys):
    data, t_from = crafted
    evaluate(data, random_model("color", 0), t0=t_from, device="cpu", progress=True)
    drawn = capsys.readouterr().err
    assert "evaluate" in drawn and "8/8" in drawn and "event/s" in drawn


def test_off_canvas_cells_never_count_for_the_neighbour_baselines():
    """Windows of 3×3 around events at a corner and an edge, OUTSIDE where the canvas ends."""
    windows3 = np.array([
        [[OUTSIDE, OUTSIDE, OUTSIDE], [OUTSIDE, 5, 7], [OUTSIDE, 7, 9]],  # top-left corner: 7, 7, 9
        [[OUTSIDE, 4, 4], [OUTSIDE, 4, 2], [OUTSIDE, 2, 2]],  # left edge: 4 ×2, 2 ×3
    ], dtype=np.uint8)
    np.testing.assert_array_equal(neighbourhood_ranking(windows3), [[7, 9, -1], [2, 4, -1]])
    np.testing.assert_array_equal(current_ranking(windows3), [[5, 7, 9], [4, 2, -1]])
    # An event on a pixel not open yet (only a file that places there has one): its own cell is
    # OUTSIDE, so `current` ranks what is around it.
    not_open = np.array([[[OUTSIDE, OUTSIDE, 3], [OUTSIDE, OUTSIDE, 3], [OUTSIDE, OUTSIDE, 8]]], dtype=np.uint8)
    np.testing.assert_array_equal(current_ranking(not_open), [[3, 8, -1]])
    # `previous` puts the color before the last placement first, then the present one (once).
    np.testing.assert_array_equal(previous_ranking(windows3, np.array([9, 4])), [[9, 5, 7], [4, 2, -1]])
    np.testing.assert_array_equal(previous_ranking(not_open, np.array([OUTSIDE])), [[3, 8, -1]])


def test_default_sample_and_what_the_report_says(sample_dataset, tmp_path):
    history = rplacevit.open(sample_dataset)
    color = checkpoint_with_training(tmp_path / "color.pt", random_model("color", 0), until=history.time_range[0])
    report = evaluate(sample_dataset, color, device="cpu", progress=False, out=tmp_path / "r")
    ids = np.load(tmp_path / "r" / "events.npy")
    assert len(ids) == report["color"]["n"] == 20_000 and report["setup"]["selected"] == len(history)
    text = (tmp_path / "r" / "report.md").read_text()
    for said in (str(sample_dataset), report["setup"]["from"], "the end", str(color), "a uniform sample of 20,000 (seed 0) of 102,670",
                 f"| model | {report['color']['model']['top1']:.3f} |"):
        assert said in text, said
    examples = iio.imread(tmp_path / "r" / "examples.png")
    assert examples.shape[:2] == (round(1.5 * EXAMPLES * 110), 990)  # one 1.5-inch row per example at 110 dpi
    confusion = iio.imread(tmp_path / "r" / "confusion.png")
    assert confusion.shape[0] > 300 and confusion.shape[1] > confusion.shape[0]  # wider than tall: the colour bar beside the matrix


def test_cells_off_the_canvas_are_left_out_of_the_time_metrics(tmp_path):
    """Events at the top-left corner and near the right edge: of their 8×8 grids, 4×4 and 5×8
    cells lie on the canvas; the others count for neither the model nor the baselines."""
    t_from = T0 + 2 * HOUR
    write_csv(tmp_path / "edge.csv", [(T0, 1000, 1000, 2), (t_from, 0, 0, 3), (t_from + 1000, 1999, 5, 4),
                                      (t_from + 60_000, 1, 1, 5), (t_from + 3 * HOUR, 1000, 1000, 6)])
    rplacevit.ingest(tmp_path / "edge.csv", tmp_path / "d")
    report = evaluate(tmp_path / "d", random_model("color", 0), constant_time_model(0.25), t0=t_from, t1=t_from + 10_000,
                      device="cpu", progress=False)
    t = report["time"]
    assert (t["n"], t["cells"]) == (2, 16 + 40)
    # One of the 56 changes within the hour: (1, 1) after a minute, in the corner event's grid.
    assert t["model"]["mse"] == pytest.approx((55 * 0.75**2 + (0.25 - 1 / 60) ** 2) / 56, rel=1e-6)
    # The early event far away: its 64 cells all on the canvas, none changing within the hour.
    assert t["baselines"]["constant"]["value"] == 1.0
