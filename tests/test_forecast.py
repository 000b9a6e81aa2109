"""rplacevit forecast: the scores against a plain numpy computation on crafted canvases, the map
painter (a function of its seed, only open cells, its map equal to the viewer's), the model
forecaster against random painting on a crafted history, and bad input refused before anything
is written."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import rplacevit
from rplacevit.forecast import METRICS, ForecastConfig, forecast, metrics, neighbourhood_majority, score
from test_guarantees import in_process, names, one_line_error


def plain_metrics(start, forecast_, real) -> dict[str, float]:
    """The metrics, pixel by pixel."""
    changed = hits = real_changed = both = errors = 0
    for s, f, r in zip(start.ravel(), forecast_.ravel(), real.ravel()):
        changed += f != s
        real_changed += r != s
        hits += f != s and f == r
        both += f != s and r != s
        errors += f != r
    precision = hits / changed if changed else 0.0
    recall = hits / real_changed
    position_p, position_r = (both / changed if changed else 0.0), both / real_changed
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "position_f1": 2 * position_p * position_r / (position_p + position_r) if position_p + position_r else 0.0,
            "color_accuracy": hits / both if both else math.nan, "skill": 1 - errors / real_changed}


def check(start, forecast_, real, **expected) -> None:
    got = metrics(score(start, forecast_, real))
    plain = plain_metrics(start, forecast_, real)
    for name in METRICS:
        assert got[name] == pytest.approx(plain[name], nan_ok=True), name
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, nan_ok=True), name


def test_scores_of_crafted_forecasts_equal_a_plain_computation():
    rng = np.random.default_rng(0)
    start = rng.integers(0, 32, (20, 30)).astype(np.uint8)
    real = start.copy()
    moved = rng.random(start.shape) < 0.2
    real[moved] = (start[moved] + 1 + rng.integers(0, 31, moved.sum())) % 32
    check(start, real, real, precision=1, recall=1, f1=1, position_f1=1, color_accuracy=1, skill=1)  # perfect
    check(start, start, real, f1=0, skill=0)  # persistence
    wrong_pixels = start.copy()
    wrong_pixels[~moved] = (start[~moved] + 1) % 32
    check(start, wrong_pixels, real, f1=0, position_f1=0)
    assert metrics(score(start, wrong_pixels, real))["skill"] < 0
    wrong_colors = real.copy()
    wrong_colors[moved] = np.where((real[moved] + 1) % 32 == start[moved], (real[moved] + 2) % 32, (real[moved] + 1) % 32)
    check(start, wrong_colors, real, position_f1=1, f1=0, color_accuracy=0, skill=0)
    for _ in range(20):  # and at random
        guess = np.where(rng.random(start.shape) < 0.3, rng.integers(0, 32, start.shape), start).astype(np.uint8)
        check(start, guess, real)
    # Only the open cells count.
    cells = np.zeros(start.shape, dtype=bool)
    cells[:, :10] = True
    assert score(start, real, real, cells)["real_changed"] == moved[:, :10].sum()


def test_ranks_by_position_rank_each_place_of_the_squares_alone():
    from rplacevit.infer import ranks_by_position

    rng = np.random.default_rng(2)
    score = rng.random((12, 10))
    ranks = ranks_by_position(score, 4)
    for dy in range(4):
        for dx in range(4):
            values = score[dy::4, dx::4].ravel()
            expected = np.argsort(np.argsort(values)) / (len(values) - 1)
            np.testing.assert_allclose(ranks[dy::4, dx::4].ravel(), expected)


def test_neighbourhood_majority_is_the_most_common_of_the_eight_neighbours():
    rng = np.random.default_rng(1)
    canvas = rng.integers(0, 4, (9, 11)).astype(np.uint8)
    canvas[0, 0] = rplacevit.OUTSIDE
    got = neighbourhood_majority(canvas)
    for y in range(9):
        for x in range(11):
            around = [canvas[j, i] for j in range(y - 1, y + 2) for i in range(x - 1, x + 2)
                      if (j, i) != (y, x) and 0 <= j < 9 and 0 <= i < 11 and canvas[j, i] != rplacevit.OUTSIDE]
            counts = np.bincount(around, minlength=33)
            assert got[y, x] == counts.argmax(), (y, x)


# --- the map painter ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def untrained():
    """Two tiny untrained models that see ages and previous colors (the painter's mechanics do
    not need trained ones)."""
    from rplacevit.models import ModelConfig, build_model

    torch.manual_seed(0)
    color = build_model(ModelConfig.preset("tiny", "color", window=16, centre=4, inputs=("color", "age", "previous"))).eval()
    time_ = build_model(ModelConfig.preset("tiny", "time", window=16, centre=8, inputs=("color", "age", "previous"))).eval()
    return color, time_


def paint(untrained, dataset, **options):
    from rplacevit.infer import InferConfig, infer

    config = dict(steps=300, dataset=str(dataset), at="2022-04-02T06:00:00Z", region=(248, 376, 376, 504), pixel_choice="map",
                  refresh=50, device="cpu", progress=False)
    return infer(*untrained, InferConfig(**{**config, **options}))


def test_the_map_painter_is_a_function_of_its_seed(untrained, sample_dataset):
    a, b = paint(untrained, sample_dataset, seed=3, time_noise=0.2), paint(untrained, sample_dataset, seed=3, time_noise=0.2)
    np.testing.assert_array_equal(a.placements, b.placements)
    np.testing.assert_array_equal(a.canvas, b.canvas)
    other = paint(untrained, sample_dataset, seed=4, time_noise=0.2)
    assert not np.array_equal(a.placements, other.placements)
    # Each pixel once while there are pixels left, in refreshes of 50.
    assert len({(x, y) for x, y, _ in a.placements}) == 300 and list(a.groups) == [50] * 6


def test_the_map_painter_places_only_on_cells_open_at_the_time(untrained, sample_dataset):
    # At 06:00 on 2022-04-02 the canvas was 1000×1000: the region's right half is not open yet.
    result = paint(untrained, sample_dataset, region=(968, 0, 1032, 64), steps=3000)
    x = result.placements[:, 0] + 968
    assert (x < 1000).all() and len(result.placements) == 3000
    assert (result.canvas[:, 32:] == result.start[:, 32:]).all()


def test_the_map_painter_ranks_by_the_viewers_map(untrained, sample_dataset):
    """The painter's first map is the viewer's "changes soon" map, on the pixels whose windows
    lie inside the painted region (the painter sees OUTSIDE beyond it, the viewer the canvas)."""
    from rplacevit.forecast import state_at
    from rplacevit.infer import time_map
    from rplacevit.view import Viewer

    color, time_ = untrained
    history = rplacevit.open(sample_dataset)
    t = rplacevit.times.parse_time("2022-04-02T06:00:00Z")
    region = (248, 376, 376, 504)  # multiples of the centre (8): the squares line up with the viewer's
    state = state_at(history, t, region, 16, [color, time_], torch.device("cpu"))
    with torch.inference_mode():
        painter = time_map(time_, state, 16, 16, 128, 128, t).numpy()
    viewer = Viewer(history, color, time_, device="cpu").predict_map(t, region)
    inner = np.s_[16:-16, 16:-16]
    np.testing.assert_allclose(painter[inner], viewer[inner], rtol=1e-5, atol=1e-6)
    # And the painter places first the pixels its map ranks soonest, each place of a square on its own.
    from rplacevit.infer import ranks_by_position

    result = paint(untrained, sample_dataset, region=region, steps=20, refresh=20, time_noise=0.0)
    order = np.argsort(ranks_by_position(painter, time_.config.centre), axis=None, kind="stable")[:20]
    assert sorted(map(tuple, result.placements[:, 1::-1].tolist())) == sorted(zip(*np.unravel_index(order, (128, 128))))


# --- the forecast ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def restored(tmp_path_factory):
    """A crafted history where recently damaged pixels change back to their previous color
    (tests/test_inputs.py), and two tiny models trained on it for a few steps."""
    from rplacevit.train import TrainConfig, train
    from test_inputs import SMALL, write_restored_history

    folder = tmp_path_factory.mktemp("restored")
    write_restored_history(folder / "restored.csv", minutes=30)
    rplacevit.ingest(folder / "restored.csv", folder / "dataset")
    runs = {}
    # The time model needs previous colors to tell a damaged pixel (soon restored) from a restored one.
    for task, model, steps in (("color", {"inputs": ("color", "previous")}, 300),
                               ("time", {"inputs": ("color", "age", "previous"), "time_objective": "bce"}, 300)):
        extra = {"horizon_ms": 30_000} if task == "time" else {}
        train(TrainConfig(task=task, dataset=str(folder / "dataset"), out=str(folder / task), steps=steps, batch_size=64, lr=3e-3,
                          warmup=10, val_every=steps, val_samples=256, device="cpu", seed=0, model={**SMALL, **model}, **extra),
              progress=False)
        runs[task] = folder / task / "model.pt"
    return folder / "dataset", runs["color"], runs["time"]


def test_the_model_forecaster_beats_random_painting_where_damage_is_repaired(restored, tmp_path):
    from rplacevit.forecast import open_at
    from rplacevit.infer import InferConfig, infer

    dataset, color, time_ = restored
    report = forecast(ForecastConfig(dataset=str(dataset), color_model=str(color), time_model=str(time_), out=str(tmp_path / "f"),
                                     horizon="15s", max_steps=12, device="cpu", progress=False))
    model = report["forecasters"]["model"]
    # Random painting: the same number of placements on uniformly random pixels, colored by the model.
    history = rplacevit.open(dataset)
    counts = dict.fromkeys(("changed", "real_changed", "hits", "both_changed", "errors", "persistence_errors"), 0)
    region = tuple(report["region"])
    for step in report["per_step"]:
        s, e = rplacevit.times.parse_time(step["start"]), rplacevit.times.parse_time(step["end"])
        painted = infer(color, None, InferConfig(steps=step["events"], dataset=str(dataset), at=s, region=region, seed=0,
                                                 device="cpu", progress=False))
        for key, value in score(painted.start, painted.canvas, history.canvas_at(e, region), open_at(history, s, region)).items():
            counts[key] += value
    random_painting = metrics(counts)
    assert model["f1"] > 0.2 and model["f1"] > 5 * random_painting["f1"], (model, random_painting)
    assert model["f1"] > 5 * report["forecasters"]["seed-painter"]["f1"]  # random views spend it where nothing happens
    assert report["forecasters"]["model-auto"]["skill"] >= 0, report["forecasters"]["model-auto"]  # it changes only the likely
    saved = json.loads((tmp_path / "f" / "report.json").read_text())
    assert saved["forecasters"]["model"]["f1"] == pytest.approx(model["f1"]) and len(saved["per_step"]) == 12
    assert names(tmp_path / "f") == sorted([".rplacevit.json", "report.json", "report.md", *saved["pictures"]])


def test_bad_input_is_one_line_naming_the_argument_and_writes_nothing(restored, tmp_path, capsys):
    dataset, color, time_ = restored
    common = ["forecast", dataset, "--color-model", color, "--time-model", time_, "-o", tmp_path / "f"]
    cases = [
        (["--horizon", "0"], "--horizon"),
        (["--horizon=-5m"], "--horizon"),
        (["--from", "2022-04-01T14:00:00Z", "--to", "2022-04-01T13:00:00Z", "--allow-overlap"], "--to"),
        (["--region", "0,0,5000,10", "--horizon", "15s"], "--region"),
        (["--from", "2022-04-01T12:00:00Z"], "--allow-overlap"),
    ]
    for extra, says in cases:
        one_line_error(in_process(capsys, *common, *extra), 2, says)
    # Models of another palette: a 2017 dataset has 16 colors.
    from conftest import DATA

    rplacevit.ingest(DATA / "tile_placements_2017.csv", tmp_path / "y2017", progress=False)
    one_line_error(in_process(capsys, "forecast", tmp_path / "y2017", "--color-model", color, "--time-model", time_, "-o", tmp_path / "f",
                              "--from", "0", "--allow-overlap"), 2, "--color-model", "palette")
    assert names(tmp_path) == ["y2017"]


def test_a_map_refresh_of_any_size_reads_windows_in_bounded_passes(untrained, sample_dataset):
    from rplacevit.infer import MAP_BATCH

    color, time_ = untrained
    sizes = {"color": [], "time": []}
    for name, model in (("color", color), ("time", time_)):
        forward = model.forward

        def counted(inputs, name=name, forward=forward):
            sizes[name].append(len(inputs["color"]))
            return forward(inputs)

        model.forward = counted
    try:
        result = paint(untrained, sample_dataset, steps=3000, refresh=3000)  # one map, 3,000 pixels to color
    finally:
        del color.forward, time_.forward
    assert len(result.placements) == 3000
    assert max(sizes["color"]) <= MAP_BATCH and sum(sizes["color"]) == 3000
    assert max(sizes["time"]) <= MAP_BATCH


def test_a_forecast_killed_midway_leaves_no_report_and_the_next_run_cleans_up(restored, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    dataset, color, time_ = restored
    out = tmp_path / "f"
    command = [sys.executable, "-m", "rplacevit", "forecast", str(dataset), "--color-model", str(color), "--time-model", str(time_),
               "-o", str(out), "--horizon", "5s", "--device", "cpu", "--quiet"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".f.partial-") for p in tmp_path.iterdir()):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()  # only the hidden partial folder, which no reader takes for a report
    assert subprocess.run(command + ["--max-steps", "2"], capture_output=True).returncode == 0
    assert names(tmp_path) == ["f"] and (out / "report.json").exists()
