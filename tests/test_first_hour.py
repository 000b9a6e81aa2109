"""The first hour as a user: one command-line grammar, progress without a terminal, the thread
choice, pictures of where the events are, and errors that name the flag."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import imageio.v3 as iio
import pytest

import rplacevit
from rplacevit import progress
from rplacevit.cli import main
from rplacevit.devices import DEFAULT_THREADS

SMALL = ["--window", "16", "--centre", "4", "--val-every", "10", "--val-samples", "64", "--batch-size", "16"]


@pytest.fixture(scope="module")
def color_run(sample_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("first-hour") / "color"
    assert main(["train", "color", str(sample_dataset), "-o", str(out), "--steps", "10", "--quiet", *SMALL]) == 0
    return out


def test_the_dataset_is_the_first_argument_and_a_flag_for_it_is_a_clear_error(sample_dataset, tmp_path, capsys):
    for argv in (["render", "--data", str(sample_dataset), "--at", "0", "-o", str(tmp_path / "a.png")],
                 ["evaluate", "--dataset", str(sample_dataset), "--color-model", "x.pt", "-o", str(tmp_path / "r")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"rplacevit {argv[0]} DATASET" in err and "first argument" in err, err
    assert list(tmp_path.iterdir()) == []


def test_ingest_of_the_shipped_sample_and_what_info_says(tmp_path, capsys):
    assert main(["ingest", "--sample", "-o", str(tmp_path / "s"), "--quiet"]) == 0
    assert main(["info", str(tmp_path / "s")]) == 0
    assert "events in          x 250..377, y 375..502" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "s"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["event_bounds"] == [250, 375, 378, 503]
    hours = summary["events_per_hour"]
    assert len(hours) == 24 and hours[0]["hour"] == "2022-04-01T13:00:00.000Z" and sum(h["events"] for h in hours) == 102_670
    assert main(["ingest", "-o", str(tmp_path / "t")]) == 2
    assert "--sample" in capsys.readouterr().err


def test_render_draws_the_events_by_default_all_on_asking_and_says_when_it_is_empty(sample_dataset, tmp_path, capsys):
    assert main(["render", str(sample_dataset), "--at", "2022-04-02T00:00:00", "-o", str(tmp_path / "new" / "a.png")]) == 0
    assert iio.imread(tmp_path / "new" / "a.png").shape == (128, 128, 3)  # the folder was created
    assert "empty" not in capsys.readouterr().out
    assert main(["render", str(sample_dataset), "--at", "2022-04-01T00:00:00Z", "-o", str(tmp_path / "b.png"), "--region", "all"]) == 0
    assert "before the first event: the canvas is still empty" in capsys.readouterr().out
    picture = iio.imread(tmp_path / "b.png")
    assert picture.shape == (2000, 2000, 3) and (picture == 255).all()


def test_a_timelapse_with_a_clock_and_progress_lines_without_a_terminal(sample_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "LINE_INTERVAL_S", 0.0)
    assert main(["timelapse", str(sample_dataset), "-o", str(tmp_path / "t.mp4"), "--gif", str(tmp_path / "t.gif"),
                 "--every", "6h", "--clock"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^timelapse: 5/5 frame \(100%\)", err, re.M), err
    frames = iio.imread(tmp_path / "t.gif", index=None)
    assert frames.shape[1:3] == (128 + rplacevit.render.CLOCK_HEIGHT, 128)
    assert main(["timelapse", str(sample_dataset), "-o", str(tmp_path / "q.mp4"), "--every", "6h", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_progress_lines_come_at_most_once_an_interval(capsys, monkeypatch):
    clock = iter(range(0, 1000, 4))
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar = progress.bar("work", "step", True, total=30)
    for _ in range(30):
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert 1 <= len(lines) <= 30 * 4 // progress.LINE_INTERVAL_S + 1
    assert all(line.startswith("work: ") and "\r" not in line for line in lines)
    assert progress.bar("work", "step", False, total=3).disable


def test_train_runs_with_the_threads_asked_and_prints_times_in_iso(sample_dataset, tmp_path):
    command = [sys.executable, "-m", "rplacevit", "train", "color", str(sample_dataset), "-o", str(tmp_path / "r"), "--steps", "2",
               "--device", "cpu", *SMALL]
    for threads in (None, 2):
        out = tmp_path / f"r{threads}"
        argv = command[:7] + [str(out)] + command[8:] + ([] if threads is None else ["--threads", str(threads)])
        done = subprocess.run(argv, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert f"({threads or DEFAULT_THREADS} CPU threads)" in done.stdout
        assert re.search(r"training events before 2022-04-02T\d\d:\d\d:\d\d\.\d{3}Z", done.stdout), done.stdout
    assert DEFAULT_THREADS == 1
    assert main([*command[3:7], str(tmp_path / "r0"), *command[8:], "--threads", "0"]) == 2


def test_infer_with_only_a_png_and_errors_that_name_flags(color_run, sample_dataset, tmp_path, capsys):
    model = str(color_run / "model.pt")
    assert main(["infer", "--color-model", model, "--random-pixel", "--steps", "20", "--png", str(tmp_path / "p.png"),
                 "--canvas-size", "32", "32"]) == 0
    assert iio.imread(tmp_path / "p.png").shape == (32, 32, 3)
    capsys.readouterr()
    cases = [(["--dataset", str(sample_dataset)], "--dataset needs --at"),
             (["--at", "2022-04-02T00:00:00Z"], "--at is the moment of a dataset start: give --dataset too"),
             (["--init", str(tmp_path / "missing.png")], f"{tmp_path / 'missing.png'}: no such image file")]
    for extra, message in cases:
        code = main(["infer", "--color-model", model, "--random-pixel", "--steps", "3", "--png", str(tmp_path / "q.png"), *extra])
        err = capsys.readouterr().err
        assert code in (1, 2) and message in err and "Errno" not in err, err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "q.png").exists()


def test_infer_groups_views_by_default(color_run):
    from rplacevit.infer import InferConfig, infer

    # That a group places what its views placed one by one would is tests/test_infer.py's.
    assert InferConfig(steps=1).batch_views == 64
    model = rplacevit.load_model(color_run / "model.pt")
    grouped = infer(model, None, InferConfig(steps=300, canvas_size=(96, 96), seed=3, progress=False))
    assert grouped.groups.max() > 1 and grouped.groups.sum() == 300


def saved_figures(monkeypatch) -> list:
    """The matplotlib figures saved from now on, kept open for the test to read."""
    import matplotlib.figure

    figures = []
    original = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: (figures.append(self), original(self, *a, **k)))
    return figures


def test_loss_plots_are_titled_and_may_use_a_log_axis(color_run, sample_dataset, tmp_path, monkeypatch):
    from rplacevit.train import plot_losses

    figures = saved_figures(monkeypatch)
    plot_losses(color_run / "metrics.csv", tmp_path / "loss.png", "color: tiny", "cross-entropy (nats)", log_scale=True)
    axes = figures[-1].axes[0]
    assert (axes.get_title(), axes.get_ylabel(), axes.get_yscale()) == ("color: tiny", "cross-entropy (nats)", "log")
    assert iio.imread(tmp_path / "loss.png").ndim == 3
    assert rplacevit.load_model(color_run / "model.pt").config.loss_name == "cross-entropy (nats)"

    # What train itself draws: the run, the model and what it sees, and the named loss, linear.
    figures.clear()
    assert main(["train", "color", str(sample_dataset), "-o", str(tmp_path / "run"), "--steps", "2", "--quiet", *SMALL]) == 0
    axes = figures[-1].axes[0]
    assert axes.get_title() == "run: color model 'tiny' seeing color"
    assert (axes.get_ylabel(), axes.get_yscale()) == ("cross-entropy (nats)", "linear")


def test_examples_png_says_what_its_marks_mean(color_run, sample_dataset, tmp_path, monkeypatch):
    from rplacevit.evaluate import evaluate

    figures = saved_figures(monkeypatch)
    history = rplacevit.open(sample_dataset)
    evaluate(sample_dataset, color_run / "model.pt", t0=history.time_range[1] - 600_000, samples=50, device="cpu",
             out=tmp_path / "report", progress=False, allow_overlap=True)
    captions = [figure._suptitle.get_text() for figure in figures if figure._suptitle is not None]
    assert any("magenta square around the pixel placed" in caption and "✓ right" in caption for caption in captions), captions


def test_nothing_needs_cuda_to_import():
    modules = ["cli", "data", "demo", "evaluate", "infer", "models", "report", "train", "users", "progress", "render"]
    script = ("import importlib, torch\n"
              f"for name in {modules!r}:\n"
              "    importlib.import_module('rplacevit.' + name)\n"
              "assert not torch.cuda.is_initialized(), 'CUDA initialised on import'\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ,
                                                                                           "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr
