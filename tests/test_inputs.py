"""The models' inputs beyond colors (age, previous, placer, users): every combination trains,
saves, loads, paints and is evaluated; a model from before inputs existed loads and answers as it
did; an age time model finds the pixels that changed lately where a color-only one cannot, and a
previous-color model the color a damaged pixel is restored to; unknown placers and users run;
malformed inputs are clear errors."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import rplacevit
from conftest import DATA
from rplacevit.data import UserVectors, model_inputs
from rplacevit.evaluate import evaluate
from rplacevit.infer import InferConfig, infer
from rplacevit.models import (PLACER_UNKNOWN, ModelConfig, build_model, check_inputs, drop_inputs, load_model, read_checkpoint,
                               to_checkpoint, unknown_placer)
from rplacevit.train import TrainConfig, train

SAMPLE_REGION = (250, 375, 378, 503)
SMALL = {"window": 16, "centre": 4, "patch": 4}
COMBINATIONS = [("color", "age"), ("color", "previous"), ("color", "placer"), ("color", "users"),
                ("color", "age", "previous", "placer", "users")]


def first_and_last_loss(run: Path) -> tuple[float, float]:
    with open(run / "metrics.csv", newline="") as f:
        losses = [float(row["train_loss"]) for row in csv.DictReader(f)]
    return losses[0], losses[-1]


@pytest.fixture(scope="module")
def trained(sample_dataset, tmp_path_factory):
    """(task, inputs) → model.pt of a tiny model trained briefly on the sample."""
    folder = tmp_path_factory.mktemp("inputs")
    until = rplacevit.open(sample_dataset).time_range[0] + 18 * 3_600_000
    runs = {}
    for task in ("color", "time"):
        for inputs in COMBINATIONS:
            out = folder / f"{task}-{'-'.join(inputs)}"
            train(TrainConfig(task=task, dataset=str(sample_dataset), out=str(out), steps=60, batch_size=32, lr=3e-3, warmup=5,
                              val_every=60, val_samples=128, log_every=10, region=SAMPLE_REGION, until=until, device="cpu",
                              seed=1, model={**SMALL, "inputs": inputs}), progress=False)
            runs[task, inputs] = out / "model.pt"
    return runs


@pytest.mark.parametrize("task", ["color", "time"])
def test_each_combination_of_inputs_trains_saves_loads_and_paints(trained, task, sample_dataset):
    for inputs in COMBINATIONS:
        path = trained[task, inputs]
        first, last = first_and_last_loss(path.parent)
        assert last < first, f"{task} {inputs}: the loss did not fall ({first} → {last})"
        model = load_model(path)
        assert model.config.inputs == inputs
        history = rplacevit.open(sample_dataset)
        ids = history.select(x0=300, y0=400, x1=330, y1=430)[-16:]
        users = UserVectors.of(history, read_checkpoint(path)["training"]["until"])
        with torch.no_grad():
            output = model(model_inputs(history, ids, model.config, users))
        assert torch.isfinite(output).all()
    color = trained["color", COMBINATIONS[-1]]
    timer = trained["time", ("color", "age")]
    result = infer(color, timer, InferConfig(steps=40, dataset=sample_dataset, at=history.time_range[0] + 18 * 3_600_000,
                                             region=SAMPLE_REGION, batch_views=4, device="cpu", progress=False))
    assert len(result.placements) == 40 and result.interval_ms > 0


def test_models_with_every_input_are_evaluated_side_by_side(trained, sample_dataset, tmp_path):
    colors = {"+".join(inputs[1:]): trained["color", inputs] for inputs in COMBINATIONS}
    timers = {"+".join(inputs[1:]): trained["time", inputs] for inputs in COMBINATIONS}
    report = evaluate(sample_dataset, colors, timers, region=SAMPLE_REGION, samples=300, device="cpu", progress=False,
                      out=tmp_path / "report")
    assert set(report["color"]["models"]) == set(colors) and set(report["time"]["models"]) == set(timers)
    assert "model" not in report["color"] and "model" not in report["time"]
    assert report["setup"]["color_inputs"]["age+previous+placer+users"] == ["color", "age", "previous", "placer", "users"]
    for metrics in report["color"]["models"].values():
        assert 0 <= metrics["top1"] <= metrics["top3"] <= 1 and metrics["nll"] > 0
    for metrics in report["time"]["models"].values():
        assert 0 <= metrics["auc"] <= 1 and metrics["mse"] >= 0
    text = (tmp_path / "report" / "report.md").read_text()
    for label in colors:
        assert f"| model `{label}` |" in text
    # One model of a kind keeps the report's shape from before; the scores are the same.
    alone = evaluate(sample_dataset, colors["age"], timers["placer"], region=SAMPLE_REGION, samples=300, device="cpu", progress=False)
    assert alone["color"]["model"] == report["color"]["models"]["age"]
    assert alone["time"]["model"] == report["time"]["models"]["placer"]
    assert alone["setup"]["color_model"] == str(colors["age"])


def test_the_command_line_takes_several_labelled_models(trained, sample_dataset, tmp_path, capsys):
    from rplacevit.cli import main

    age, plain = trained["color", ("color", "age")], trained["color", ("color", "users")]
    assert main(["evaluate", str(sample_dataset), "--color-model", f"with-age={age}", "--color-model", str(plain),
                 "--time-model", str(trained["time", ("color", "age")]), "--region", ",".join(map(str, SAMPLE_REGION)),
                 "--samples", "200", "--device", "cpu", "-o", str(tmp_path / "r")]) == 0
    printed = capsys.readouterr().out
    assert "| model `with-age` |" in printed and f"| model `{plain.parent.name}` |" in printed
    assert main(["evaluate", str(sample_dataset), "--color-model", f"a={age}", "--color-model", f"a={plain}", "-o", str(tmp_path / "s")]) == 2
    assert "two models are labelled 'a'" in capsys.readouterr().err


def test_a_model_from_before_inputs_loads_and_answers_as_it_did():
    """tests/data/color_model_before_inputs.pt was saved by the code of the commit before models
    had inputs, with the logits it gave for three windows."""
    model = load_model(DATA / "color_model_before_inputs.pt")
    assert model.config.inputs == ("color",) and model.config.time_objective == "mse"
    assert not model.config.pixel_head  # its head read the cls token only
    expected = np.load(DATA / "color_model_before_inputs_outputs.npz")
    with torch.no_grad():
        logits = model(torch.from_numpy(expected["windows"]))
        as_dict = model({"color": torch.from_numpy(expected["windows"])})
    np.testing.assert_allclose(logits.numpy(), expected["logits"], rtol=1e-5, atol=1e-6)
    assert torch.equal(logits, as_dict)


def write_hot_pixels_history(path: Path, seed: int = 0, minutes: int = 40, side: int = 32) -> None:
    """A history where "the pixel that changed most recently changes next": pixels turn hot at
    random moments, are placed on every 15 s (± 2 s) for 3 minutes, then stay still; every color
    is random, so the colors say nothing about which pixels are hot."""
    rng = np.random.default_rng(seed)
    seconds = minutes * 60
    runs = int(seconds * 100 / 180)  # about 100 pixels hot at any time, of 1,024
    rows = []
    for start in rng.uniform(0, seconds, runs):
        x, y = rng.integers(0, side, 2)
        for k in range(12):
            rows.append((int((start + 15 * k + rng.uniform(-2, 2)) * 1000), x, y))
    rows.sort()
    base = 1_648_817_050_000
    with open(path, "w") as f:
        f.write("timestamp,user_id,pixel_color,coordinate\n")
        for i, (t, x, y) in enumerate(rows):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime((base + t) // 1000)) + f".{(base + t) % 1000:03d} UTC"
            color = rplacevit.PALETTE_HEX[int(rng.integers(0, 32))]
            f.write(f'{stamp},user{i % 311},{color},"{x + 100},{y + 100}"\n')


def test_an_age_time_model_finds_the_pixels_that_changed_lately(tmp_path):
    write_hot_pixels_history(tmp_path / "hot.csv")
    rplacevit.ingest(tmp_path / "hot.csv", tmp_path / "hot")
    runs = {}
    for label, inputs in (("age", ("color", "age")), ("color", ("color",))):
        out = tmp_path / label
        train(TrainConfig(task="time", dataset=str(tmp_path / "hot"), out=str(out), steps=150, batch_size=64, lr=3e-3, warmup=10,
                          val_every=150, val_samples=256, horizon_ms=60_000, device="cpu", seed=0,
                          model={**SMALL, "inputs": inputs}), progress=False)
        runs[label] = out / "model.pt"
    torch.manual_seed(0)
    any_color_model = build_model(ModelConfig.preset("tiny", "color", **SMALL))  # the test is about time
    report = evaluate(tmp_path / "hot", any_color_model, runs, samples=1500, device="cpu", progress=False)
    auc = {label: metrics["auc"] for label, metrics in report["time"]["models"].items()}
    assert auc["age"] > 0.85, auc
    assert auc["age"] > auc["color"] + 0.15, auc


def write_restored_history(path: Path, seed: int = 0, minutes: int = 40, side: int = 32) -> None:
    """A history where "a damaged pixel is restored to what it showed before": every pixel gets
    a random color, then pixels are damaged with a random color and restored 5 to 20 s later.
    Colors are random and independent, so the canvas around a restore does not tell its color."""
    rng = np.random.default_rng(seed)
    rows = [(int(rng.uniform(0, 60_000)), x, y, int(rng.integers(0, 32))) for y in range(side) for x in range(side)]
    shown = {(x, y): color for _, x, y, color in sorted(rows)}
    t = 60_000
    while t < minutes * 60_000:
        x, y = (int(v) for v in rng.integers(0, side, 2))
        t += int(rng.integers(200, 800))
        damage = int(rng.integers(0, 32))
        rows.append((t, x, y, damage))
        # Restored later, unless the pixel is damaged again first: rare on 1,024 pixels.
        rows.append((t + int(rng.integers(5_000, 20_000)), x, y, shown[x, y]))
    rows.sort()
    base = 1_648_817_050_000
    with open(path, "w") as f:
        f.write("timestamp,user_id,pixel_color,coordinate\n")
        for i, (t, x, y, color) in enumerate(rows):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime((base + t) // 1000)) + f".{(base + t) % 1000:03d} UTC"
            f.write(f'{stamp},user{i % 311},{rplacevit.PALETTE_HEX[color]},"{x + 100},{y + 100}"\n')


def test_a_previous_color_model_finds_what_a_damaged_pixel_is_restored_to(tmp_path):
    """Half the later events are restorations: a model that reads the previous colors gets most
    of them; the damage itself is a random color (1/32), and so is a restoration to the eyes of a
    model that sees the canvas only. The color head's direct path to the event's pixel token
    (``pixel_head``) is what lets a tiny model learn it in 300 steps: the cls token alone still
    has to learn to find that pixel among the others, and has not yet."""
    write_restored_history(tmp_path / "restored.csv")
    rplacevit.ingest(tmp_path / "restored.csv", tmp_path / "restored")
    runs = {}
    for label, model in (("previous", {"inputs": ("color", "previous")}), ("color", {"inputs": ("color",)}),
                         ("previous, cls head", {"inputs": ("color", "previous"), "pixel_head": False})):
        out = tmp_path / label.replace(", ", "-").replace(" ", "-")
        train(TrainConfig(task="color", dataset=str(tmp_path / "restored"), out=str(out), steps=300, batch_size=64, lr=3e-3,
                          warmup=10, val_every=300, val_samples=256, device="cpu", seed=0, model={**SMALL, **model}), progress=False)
        runs[label] = out / "model.pt"
    report = evaluate(tmp_path / "restored", runs, None, samples=1500, device="cpu", progress=False)
    top1 = {label: metrics["top1"] for label, metrics in report["color"]["models"].items()}
    assert top1["previous"] > 0.4, top1
    assert top1["previous"] > top1["color"] + 0.3, top1
    assert top1["previous"] > top1["previous, cls head"] + 0.2, top1
    assert report["color"]["baselines"]["previous"]["top1"] > 0.4  # the rule that reads the same


def test_unknown_placer_and_users_run_and_dropout_hides_them(sample_dataset):
    torch.manual_seed(0)
    config = ModelConfig.preset("tiny", "color", **SMALL, inputs=("color", "placer", "users"))
    model = build_model(config).eval()
    history = rplacevit.open(sample_dataset)
    ids = history.select(x0=300, y0=400, x1=330, y1=430)[-8:]
    inputs = model_inputs(history, ids, config, UserVectors.of(history, None))
    assert (inputs["users"] > 0).any() and (inputs["placer_count"] > 0).any()
    with torch.no_grad():
        known = model(inputs)
        unknown = model({"color": inputs["color"]})  # placer and users left out: unknown
        explicit = model({**inputs, **unknown_placer(len(ids), config.placer_k, "cpu"), "users": torch.zeros_like(inputs["users"])})
    assert torch.isfinite(unknown).all()
    torch.testing.assert_close(unknown, explicit)
    assert not torch.allclose(known, unknown)  # the model does read them
    # Dropout with p = 1 hides both from every event; p = 0 from none.
    hidden = drop_inputs(check_inputs(inputs, config), 1.0)
    assert (hidden["placer_count"] == PLACER_UNKNOWN).all() and (hidden["users"] == 0).all()
    kept = drop_inputs(check_inputs(inputs, config), 0.0)
    assert torch.equal(kept["users"], inputs["users"]) and torch.equal(kept["placer_count"], inputs["placer_count"])
    # A placer model paints (placer and users unknown there) and its outputs are finite.
    result = infer(model, None, InferConfig(steps=20, canvas_size=(24, 24), device="cpu", progress=False))
    assert len(result.placements) == 20


def test_malformed_inputs_are_clear_errors():
    config = ModelConfig.preset("tiny", "time", **SMALL, inputs=("color", "age"))
    model = build_model(config)
    windows = torch.zeros((2, 16, 16), dtype=torch.uint8)
    with pytest.raises(ValueError, match="sees ages"):
        model(windows)
    with pytest.raises(ValueError, match=r"age of shape \(2, 8, 8\)"):
        model({"color": windows, "age": torch.zeros((2, 8, 8), dtype=torch.uint8)})
    with pytest.raises(ValueError, match=r"age values 40\.\.40: expected 0\.\.31"):
        model({"color": windows, "age": torch.full((2, 16, 16), 40)})
    with pytest.raises(TypeError, match="age must hold integers"):
        model({"color": windows, "age": torch.zeros((2, 16, 16))})
    with pytest.raises(ValueError, match="inputs"):
        ModelConfig.preset("tiny", "color", inputs=("age",))
    with pytest.raises(ValueError, match="inputs"):
        ModelConfig.preset("tiny", "color", inputs=("color", "weather"))
    with pytest.raises(ValueError, match="time_objective"):
        ModelConfig.preset("tiny", "time", time_objective="mae")
    assert ModelConfig.preset("tiny", "color", inputs=["users", "color", "age"]).inputs == ("color", "age", "users")
    with pytest.raises(ValueError, match="pixel_head"):
        ModelConfig.preset("tiny", "color", pixel_head="yes")
    with pytest.raises(ValueError, match=r"previous values 40\.\.40: expected 0\.\.32"):
        build_model(ModelConfig.preset("tiny", "color", **SMALL, inputs=("color", "previous")))(
            {"color": windows, "previous": torch.full((2, 16, 16), 40)})
    with pytest.raises(ValueError, match="sees previous colors"):
        build_model(ModelConfig.preset("tiny", "color", **SMALL, inputs=("color", "previous")))(windows)
    # A crafted checkpoint whose head flag is no boolean is refused, naming it.
    crafted = to_checkpoint(build_model(ModelConfig.preset("tiny", "color", **SMALL)))
    crafted["config"]["pixel_head"] = "__import__('os')"
    with pytest.raises(ValueError, match="crafted.pt is not an rplacevit checkpoint: bad config"):
        load_model(crafted, name="crafted.pt")
