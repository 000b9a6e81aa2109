"""The demo, the README's main job: the whole pipeline on the shipped sample, run as a user
runs it (``rplacevit demo -o DIR``), writes every promised file, and never deletes a folder it
did not write."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
import pytest
import torch

import rplacevit
from rplacevit.cli import build_parser
from rplacevit.demo import PAINT_STEPS, demo, prepare
from rplacevit.outputs import MARKER
from rplacevit.models import load_model


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run([sys.executable, "-m", "rplacevit", "demo", "-o", str(out), "--device", "cpu"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_demo_ingests_and_renders_the_sample(demo_run):
    out, stdout = demo_run
    assert "ingested 102,670 events" in stdout
    assert iio.imread(out / "final.png").shape[:2] == (512, 512)
    history = rplacevit.open(out / "dataset")
    np.testing.assert_array_equal(iio.imread(out / "final.png")[::4, ::4, :3],
                                  np.array(rplacevit.PALETTE_RGB, np.uint8)[history.canvas_at(history.time_range[1])[375:503, 250:378]])
    assert len(iio2.mimread(out / "timelapse.gif")) == 49


def test_demo_trains_two_models_that_load_alone(demo_run):
    out, stdout = demo_run
    for kind in ("color", "time"):
        model = load_model(out / f"{kind}-model" / "model.pt", expect_kind=kind)
        assert model.config.window == 16
        assert (out / f"{kind}-model" / "loss.png").stat().st_size > 0
        assert f"trained the {kind} model" in stdout
        assert str(out / f"{kind}-model" / "model.pt") in stdout


def test_demo_paints_from_the_real_canvas_where_training_ended(demo_run):
    out, stdout = demo_run
    history = rplacevit.open(out / "dataset")
    until = torch.load(out / "color-model" / "model.pt", weights_only=True)["training"]["until"]
    start = iio.imread(out / "paint-start.png")[::2, ::2, :3]
    palette = np.array(rplacevit.PALETTE_RGB, np.uint8)
    np.testing.assert_array_equal(start, palette[history.canvas_at(until)[375:503, 250:378]])
    final = iio.imread(out / "paint.png")[::2, ::2, :3]
    changed = np.count_nonzero((final != start).any(axis=2))
    assert 1 <= changed <= PAINT_STEPS
    frames = iio2.mimread(out / "paint.gif")
    assert len(frames) == 1 + PAINT_STEPS // 25 and frames[0].shape[:2] == (256, 256)
    assert iio2.get_reader(out / "paint.mp4").count_frames() == len(frames)
    assert f"painted {PAINT_STEPS:,} pixels" in stdout and str(out / "paint.mp4") in stdout


def test_demo_without_the_asked_device_touches_nothing(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is there")
    with pytest.raises(ValueError, match="no CUDA device"):
        demo(tmp_path / "out", device="cuda")
    assert not (tmp_path / "out").exists()


def test_demo_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="not empty and was not written by rplacevit"):
        prepare(tmp_path)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
    # Its own folder is emptied for the next run.
    own = tmp_path / "own"
    prepare(own)
    (own / "dataset").mkdir()
    (own / "final.png").write_bytes(b"old")
    prepare(own)
    assert sorted(p.name for p in own.iterdir()) == [MARKER]
    assert json.loads((own / MARKER).read_text())["kind"] == "demo"


def test_demo_evaluates_its_models_on_later_events(demo_run):
    out, stdout = demo_run
    report = json.loads((out / "evaluation" / "report.json").read_text())
    history = rplacevit.open(out / "dataset")
    until = torch.load(out / "color-model" / "model.pt", weights_only=True)["training"]["until"]
    later = history.select(t0=until)
    np.testing.assert_array_equal(np.load(out / "evaluation" / "events.npy"), later)  # fewer than 20,000: all of them
    assert report["color"]["n"] == report["time"]["n"] + report["time"]["censored"] == len(later)
    assert report["time"]["censored"] > 0  # the sample ends less than an hour after some of them
    assert "| model |" in stdout and "| neighbourhood |" in stdout and "| recency |" in stdout
    assert f"{report['color']['model']['top1']:.3f}" in stdout


def test_demo_ends_with_the_view_command_for_its_dataset_and_models(demo_run):
    out, stdout = demo_run
    line = stdout.rstrip().splitlines()[-1].strip()
    words = shlex.split(line)
    assert words[:2] == ["rplacevit", "view"]
    args = build_parser("view")[0].parse_args(words[1:])
    assert (Path(args.dataset), Path(args.color_model), Path(args.time_model)) == (
        out / "dataset", out / "color-model" / "model.pt", out / "time-model" / "model.pt")
