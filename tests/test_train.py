"""Training: a tiny model learns a learnable rule, runs resume exactly after Ctrl-C, two gloo
processes stay in step, checkpoints load without retyped hyperparameters, errors are clear."""

from __future__ import annotations

import csv
import math
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import rplacevit
from rplacevit.models import load_model
from rplacevit.train import TrainConfig, split, train

RUNNER = Path(__file__).parent / "train_runner.py"
# A small window keeps CPU steps fast: 1 cls + 16 pixel + 16 patch tokens.
SMALL_WINDOW = {"window": 16, "centre": 4, "patch": 4}
BASE_TIME = 1_648_817_050_000


def write_neighbour_majority_history(path: Path, seed: int = 0, events: int = 12_000) -> None:
    """A learnable history on a 96×96 region: blobs of 4 colors, then events whose color is the
    majority color of the pixel's 4 neighbours (ties: the lowest palette index among them)."""
    rng = np.random.default_rng(seed)
    colors = np.array([2, 12, 27, 31])
    size = 96
    canvas = np.full((size + 2, size + 2), 31, np.int64)
    rows = []
    t = BASE_TIME
    for by in range(0, size, 8):
        for bx in range(0, size, 8):
            color = int(rng.choice(colors))
            for y in range(by, by + 8):
                for x in range(bx, bx + 8):
                    canvas[y + 1, x + 1] = color
                    t += 7
                    rows.append((t, x, y, color))
    for _ in range(events):
        x, y = rng.integers(0, size, 2)
        neighbours = [canvas[y, x + 1], canvas[y + 2, x + 1], canvas[y + 1, x], canvas[y + 1, x + 2]]
        values, counts = np.unique(neighbours, return_counts=True)
        color = int(values[np.argmax(counts)])
        canvas[y + 1, x + 1] = color
        t += 311
        rows.append((t, x, y, color))
    with open(path, "w") as f:
        f.write("timestamp,user_id,pixel_color,coordinate\n")
        for i, (t, x, y, color) in enumerate(rows):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t // 1000)) + f".{t % 1000:03d} UTC"
            f.write(f'{stamp},user{i % 997},{rplacevit.PALETTE_HEX[color]},"{x + 500},{y + 500}"\n')


@pytest.fixture(scope="module")
def rule_dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rule")
    write_neighbour_majority_history(folder / "rule.csv")
    rplacevit.ingest(folder / "rule.csv", folder / "d")
    return folder / "d"


def base_config(data: Path, out: Path, **overrides) -> dict:
    config = dict(task="color", dataset=str(data), out=str(out), preset="tiny", steps=300, batch_size=64, lr=3e-3,
                  warmup=20, val_every=100, val_samples=1024, log_every=10, device="cpu", seed=3,
                  model=dict(SMALL_WINDOW))
    config.update(overrides)
    return config


def read_metrics(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_color_model_learns_the_neighbour_majority(rule_dataset, tmp_path):
    config = TrainConfig(**base_config(rule_dataset, tmp_path / "run"))
    model = train(config, progress=False)
    history = rplacevit.open(rule_dataset)
    last = read_metrics(tmp_path / "run")[-1]
    assert int(last["step"]) == 300
    _, val_ids, _ = split(history, config)
    colors = history.color_targets(val_ids)
    constant = np.bincount(colors).max() / len(colors)
    accuracy = float(last["val_accuracy"])
    assert accuracy >= max(0.6, 2 * constant), (accuracy, constant)
    for name in ("model.pt", "loss.png", "metrics.csv"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    # The checkpoint alone rebuilds the model: same outputs, no hyperparameters retyped.
    loaded = load_model(tmp_path / "run" / "model.pt", expect_kind="color")
    windows = torch.from_numpy(history.windows(val_ids[:32], 16))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(windows), model(windows))
    with pytest.raises(ValueError, match="color model checkpoint, a time model is expected"):
        load_model(tmp_path / "run" / "model.pt", expect_kind="time")
    # It also records the split it computed: evaluation refuses events the model trained on.
    training = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["training"]
    _, _, until = split(history, config)
    assert (training["until"], training["val_from"], training["steps"], training["task"]) == (until, until, 300, "color")


def test_tiny_time_model_loss_falls(sample_dataset, tmp_path):
    config = TrainConfig(**base_config(sample_dataset, tmp_path / "run", task="time", steps=120, val_every=60,
                                       model={"window": 16, "centre": 8, "patch": 4}))
    train(config, progress=False)
    rows = read_metrics(tmp_path / "run")
    assert float(rows[-1]["train_loss"]) < 0.9 * float(rows[0]["train_loss"])
    assert float(rows[-1]["val_loss"]) < float(rows[0]["train_loss"])


def run_runner(config: dict, *extra: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUNNER), json.dumps(config), *extra], capture_output=True, text=True, env=env)


def test_interrupted_run_resumes_exactly(rule_dataset, tmp_path):
    steps = dict(steps=160, checkpoint_every=10_000, val_every=40)
    whole = base_config(rule_dataset, tmp_path / "whole", **steps)
    assert run_runner(whole).returncode == 0

    cut = base_config(rule_dataset, tmp_path / "cut", **steps)
    process = subprocess.Popen([sys.executable, str(RUNNER), json.dumps(cut)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "cut" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 4):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.poll() is not None else "timeout"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode != 0
    saved = sorted((tmp_path / "cut" / "checkpoints").glob("step_*.pt"))
    assert len(saved) == 1 and not (tmp_path / "cut" / "model.pt").exists()
    interrupted_at = int(saved[0].stem.split("_")[1])
    assert 0 < interrupted_at < 160

    # Only the same settings resume (where it runs may change), and a finished run never does.
    with pytest.raises(ValueError, match=r"other settings \(`lr`, `seed`\)"):
        train(TrainConfig(**{**cut, "lr": 0.5, "seed": 9}), resume=True, progress=False)
    resumed = run_runner({**cut, "num_workers": 1}, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    with pytest.raises(ValueError, match="has finished"):
        train(TrainConfig(**cut), resume=True, progress=False)
    expected, got = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "cut")
    assert [r["step"] for r in got] == [r["step"] for r in expected]
    for a, b in zip(expected, got):
        for column in ("train_loss", "val_loss", "val_accuracy"):
            if a[column]:
                assert abs(float(a[column]) - float(b[column])) <= 1e-5, (a, b)
    assert (tmp_path / "whole" / "weights-rank0.txt").read_text() == (tmp_path / "cut" / "weights-rank0.txt").read_text()


def test_two_gloo_processes_hold_the_same_weights(rule_dataset, tmp_path):
    config = base_config(rule_dataset, tmp_path / "ddp", steps=12, val_every=12, batch_size=16)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(RUNNER), json.dumps(config)]
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [(tmp_path / "ddp" / f"weights-rank{r}.txt").read_text() for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert len(read_metrics(tmp_path / "ddp")) == 2  # only rank 0 logs


def test_clear_errors(rule_dataset, tmp_path):
    with pytest.raises(rplacevit.DatasetError):
        train(TrainConfig(**base_config(tmp_path / "missing", tmp_path / "r")), progress=False)
    with pytest.raises(ValueError, match="no events in region"):
        train(TrainConfig(**base_config(rule_dataset, tmp_path / "r", region=(0, 0, 10, 10))), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            train(TrainConfig(**base_config(rule_dataset, tmp_path / "r", device="cuda")), progress=False)
    with pytest.raises(ValueError, match="no checkpoint to resume"):
        train(TrainConfig(**base_config(rule_dataset, tmp_path / "r")), resume=True, progress=False)
    for bad in (dict(steps=0), dict(batch_size=0), dict(val_every=0), dict(checkpoint_every=-1), dict(lr=0.0),
                dict(warmup=-1), dict(steps=None, epochs=-1.0)):
        with pytest.raises(ValueError, match=[name for name, value in bad.items() if value is not None][0]):
            TrainConfig(**base_config(rule_dataset, tmp_path / "r", **bad))
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty and was not written by rplacevit"):
        train(TrainConfig(**base_config(rule_dataset, foreign)), progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["todo.txt"]
    with pytest.raises(ValueError, match="exactly one of `steps` and `epochs`"):
        TrainConfig(**base_config(rule_dataset, tmp_path / "r", epochs=1.0))
    cli = subprocess.run([sys.executable, "-m", "rplacevit", "train", "color", str(tmp_path / "missing"),
                          "-o", str(tmp_path / "r"), "--steps", "5"], capture_output=True, text=True)
    assert cli.returncode == 1 and "no such dataset" in cli.stderr


def test_split_puts_validation_after_training(sample_dataset):
    history = rplacevit.open(sample_dataset)
    until = history.time_range[0] + 12 * 3_600_000
    config = TrainConfig(**base_config(sample_dataset, "unused", until=until, val_from=until + 3_600_000, region=(250, 375, 300, 420)))
    train_ids, val_ids, cut = split(history, config)
    columns = history.events()
    assert cut == until
    assert columns["timestamp"][train_ids].max() < until <= until + 3_600_000 <= columns["timestamp"][val_ids].min()
    for ids in (train_ids, val_ids):
        assert ((columns["x"][ids] >= 250) & (columns["x"][ids] < 300) & (columns["y"][ids] >= 375) & (columns["y"][ids] < 420)).all()
    default = split(history, TrainConfig(**base_config(sample_dataset, "unused")))
    assert len(default[0]) == pytest.approx(0.9 * len(history), rel=0.01)
    with pytest.raises(ValueError, match="must not be earlier"):
        split(history, TrainConfig(**base_config(sample_dataset, "unused", until=until, val_from=until - 1)))


def test_loader_workers_give_the_same_batches(sample_dataset):
    from torch.utils.data import DataLoader

    from rplacevit.data import ColorDataset, EpochBatchSampler, TimeDataset, UserVectors, keep_batch
    from rplacevit.models import ModelConfig

    history = rplacevit.open(sample_dataset)
    until = history.time_range[0] + 3_600_000
    ids = history.select(t1=until)
    users = UserVectors.of(history, until)
    color_config = ModelConfig.preset("tiny", "color", window=16, centre=4, inputs=("color", "age", "placer", "users"))
    time_config = ModelConfig.preset("tiny", "time", window=16, centre=4, inputs=("color", "age"))
    for dataset in (ColorDataset(history, ids, color_config, users=users), TimeDataset(history, ids, time_config)):
        dataset.__getitems__([0, 1])  # the parent's thread pool exists before the fork
        batches = []
        for workers in (0, 2):
            sampler = EpochBatchSampler(len(dataset), 32, seed=5, start=3, stop=7)
            # Forked workers (Linux's default) inherit a history already used by this process.
            loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=keep_batch, num_workers=workers)
            batches.append([({k: v.clone() for k, v in inputs.items()}, t.clone()) for inputs, t in loader])
        assert len(batches[0]) == 4
        for (inputs0, t0), (inputs1, t1) in zip(*batches):
            assert inputs0["color"].dtype == torch.uint8 and inputs0["color"].shape == (32, 16, 16)
            assert inputs0.keys() == inputs1.keys() == {"color", "age", *(
                ("placer_colors", "placer_ages", "placer_count", "users", "user_vectors") if dataset.config.kind == "color" else ())}
            assert all(torch.equal(inputs0[k], inputs1[k]) for k in inputs0) and torch.equal(t0, t1)
        inputs, target = dataset[0]
        assert torch.equal(inputs["color"], torch.from_numpy(history.windows(ids[:1], 16))[0])
        assert torch.equal(inputs["age"], torch.from_numpy(history.age_buckets(ids[:1], 16))[0])


def test_checkpoints_are_periodic_and_only_the_last_few_kept(rule_dataset, tmp_path):
    config = TrainConfig(**base_config(rule_dataset, tmp_path / "run", steps=30, checkpoint_every=5, val_every=30, keep_checkpoints=3))
    train(config, progress=False)
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step_00000015.pt", "step_00000020.pt", "step_00000025.pt"]
    state = torch.load(tmp_path / "run" / "checkpoints" / kept[-1], weights_only=False)
    assert state["step"] == 25 and {"model", "optimizer", "scheduler", "rng", "train_config"} <= state.keys()
    with pytest.raises(rplacevit.OutputExistsError, match="already holds a run: pass `resume=True` to continue it"):
        train(config, progress=False)


def test_command_line_sets_the_window_and_the_width(sample_dataset, tmp_path):
    result = subprocess.run([sys.executable, "-m", "rplacevit", "train", "time", str(sample_dataset), "-o", str(tmp_path / "r"),
                             "--steps", "3", "--window", "16", "--centre", "8", "--patch", "2", "--region", "250,375,378,503",
                             "--device", "cpu"], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr
    model = load_model(tmp_path / "r" / "model.pt", expect_kind="time")
    assert (model.config.window, model.config.centre, model.config.patch, model.config.d_model) == (16, 8, 2, 32)
    wide = subprocess.run([sys.executable, "-m", "rplacevit", "train", "color", str(sample_dataset), "-o", str(tmp_path / "w"),
                           "--steps", "3", "--window", "16", "--centre", "4", "--d-model", "48", "--heads", "3", "--blocks", "3",
                           "--d-ff", "80", "--pixel-head", "no", "--region", "250,375,378,503", "--device", "cpu"], capture_output=True,
                          text=True)
    assert wide.returncode == 0, wide.stderr
    config = load_model(tmp_path / "w" / "model.pt", expect_kind="color").config
    assert (config.d_model, config.heads, config.blocks, config.d_ff, config.pixel_head) == (48, 3, 3, 80, False)
    assert load_model(tmp_path / "r" / "model.pt").config.pixel_head  # the default
    for flags, message in [(["--window", "16", "--centre", "7"], "differ in parity"), (["--d-model", "48", "--heads", "5"], "not a multiple of heads"),
                           (["--d-model", "400000"], "out of memory: the weights of a time model with --d-model 400000")]:
        bad = subprocess.run([sys.executable, "-m", "rplacevit", "train", "time", str(sample_dataset), "-o", str(tmp_path / "o"),
                              "--steps", "3", *flags], capture_output=True, text=True)
        assert bad.returncode == 1 and message in bad.stderr and len(bad.stderr.splitlines()) == 1 and not (tmp_path / "o").exists(), bad.stderr
    bad = subprocess.run([sys.executable, "-m", "rplacevit", "train", "color", str(sample_dataset), "-o", str(tmp_path / "o"),
                          "--pixel-head", "maybe"], capture_output=True, text=True)
    assert bad.returncode == 2 and "argument --pixel-head: 'maybe': expected yes or no" in bad.stderr and not (tmp_path / "o").exists()


def test_epochs_set_the_number_of_steps(rule_dataset, tmp_path):
    config = TrainConfig(**{**base_config(rule_dataset, tmp_path / "run", val_every=1000, log_every=1), "steps": None, "epochs": 0.05})
    train(config, progress=False)
    train_ids, _, _ = split(rplacevit.open(rule_dataset), config)
    steps = math.ceil(0.05 * len(train_ids) / 64)
    assert int(read_metrics(tmp_path / "run")[-1]["step"]) == steps == torch.load(tmp_path / "run" / "model.pt", weights_only=True)["training"]["steps"]


def test_progress_bar_reports_samples_per_second(rule_dataset, tmp_path, capsys):
    train(TrainConfig(**base_config(rule_dataset, tmp_path / "run", steps=20, val_every=10, log_every=10)), progress=True)
    drawn = capsys.readouterr().err
    assert "train color" in drawn and "20/20" in drawn and "samples_per_s" in drawn


def test_each_rank_takes_its_own_slice_of_the_global_batch():
    from rplacevit.data import EpochBatchSampler

    whole = EpochBatchSampler(1000, 64, seed=5)
    ranks = [EpochBatchSampler(1000, 32, seed=5, rank=r, world_size=2) for r in (0, 1)]
    for step in (0, 1, 14, 15, 16, 40):  # 15 global batches an epoch: across epochs too
        a, b = ranks[0].batch(step), ranks[1].batch(step)
        assert len(a) == len(b) == 32 and not set(a) & set(b)
        assert sorted([*a, *b]) == sorted(whole.batch(step))
