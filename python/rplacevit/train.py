"""Training a color or time model on a dataset folder, readable top to bottom.

One process per device; under ``torchrun`` the processes form a DistributedDataParallel group
(NCCL on CUDA, gloo on CPU), each takes its slice of every global batch, and only rank 0 logs
and saves. The data order is a function of the seed and the step (see
:class:`rplacevit.data.EpochBatchSampler`), and checkpoints carry the model, optimizer,
schedule, step and RNG states, so ``resume=True`` ends exactly where an uninterrupted run ends.
"""

from __future__ import annotations

import csv
import math
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Queue
from threading import Thread

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from . import history as history_module
from .history import COLOR_HORIZON_MS, COLOR_TARGET, COLOR_TARGETS, TIME_HORIZON_MS
from .data import ColorDataset, EpochBatchSampler, TimeDataset, UserVectors, keep_batch, select_events, to_device
from ._core import ArgumentError
from .devices import DEFAULT_THREADS, DEVICES, resolve_device, use_threads
from . import outputs
from .files import atomic_path
from .models import KINDS as TASKS
from .models import BEFORE_FIELDS, PRESETS, ModelConfig, build_model, parameter_groups, check_checkpoint, check_weights, load_file, parameter_count, to_checkpoint
from .options import option, parse_region
from .signals import Terminated
from .times import format_time, parse_duration, parse_time


@dataclass
class TrainConfig:
    """Everything a run depends on; stored in its checkpoints. Times are ms since the epoch. Each
    field is also an option of ``rplacevit train`` (see :mod:`rplacevit.options`)."""

    task: str = option(help="which model to train", choices=TASKS, positional=True)
    dataset: str = option(help="the dataset folder", metavar="DATASET", positional=True)
    out: str = option(help="the run folder: metrics.csv, loss.png, checkpoints/, model.pt", flag="--output", short="-o",
                      metavar="RUN_DIR")
    preset: str = option("tiny", "model size", choices=tuple(PRESETS))
    steps: int | None = option(None, "optimizer steps", exclusive="length")
    epochs: float | None = option(None, "passes over the training events", exclusive="length")
    batch_size: int = option(64, "events per step and process")
    lr: float = option(1e-3, "AdamW learning rate")
    weight_decay: float = option(0.01, "AdamW weight decay (not on biases, norms, embeddings of type and position)")
    warmup: int = option(100, "warmup steps before the cosine decay")
    region: tuple[int, int, int, int] | None = option(None, "train and validate on this region only (x1, y1 exclusive)",
                                                      parse=parse_region, metavar="x0,y0,x1,y1")
    until: int | None = option(None, "train on events before TIME (default: at 90%% of the events)", parse=parse_time, metavar="TIME")
    val_from: int | None = option(None, "validate on events from TIME (default: until)", parse=parse_time, metavar="TIME")
    val_every: int = option(200, "validate every N steps", metavar="N")
    val_samples: int = option(2048, "validation events (a fixed sample of the later events)", metavar="N")
    log_every: int = option(20, "a metrics.csv row every N steps", metavar="N")
    checkpoint_every: int = option(1000, "a checkpoint every N steps", metavar="N")
    keep_checkpoints: int = option(3, "checkpoints kept (the newest)", metavar="N")
    device: str = option("auto", "auto: cuda when there is one", choices=DEVICES)
    amp: bool = option(False, "bf16 autocast on CUDA")
    compile: bool = option(False, "torch.compile the model")
    seed: int = option(0, "seed of the weights and of the data order")
    target: str = option(COLOR_TARGET, "color target", choices=COLOR_TARGETS)
    horizon_ms: int | None = option(None, "horizon of the targets: 30s, 1m, 1h… (default: 1 minute for color, 1 hour for time)",
                                    flag="--horizon", parse=parse_duration, metavar="DURATION")
    num_workers: int = option(0, "loader worker processes (0: batches come from Rust on a thread)")
    threads: int = option(DEFAULT_THREADS, "torch CPU threads per process; the count changes the floating-point result")
    log_loss: bool = option(False, "draw loss.png with a logarithmic loss axis")
    model: dict = field(default_factory=dict)  # overrides of the preset's ModelConfig fields

    def __post_init__(self):
        if self.task not in TASKS:
            raise ArgumentError(f"`task` must be one of {TASKS}, not {self.task!r}")
        if (self.steps is None) == (self.epochs is None):
            raise ArgumentError("give exactly one of `steps` and `epochs`")
        if self.target not in COLOR_TARGETS:
            raise ArgumentError(f"`target` must be one of {COLOR_TARGETS}, not {self.target!r}")
        if self.horizon_ms is None:
            self.horizon_ms = COLOR_HORIZON_MS if self.task == "color" else TIME_HORIZON_MS
        if self.region is not None:
            self.region = tuple(self.region)
        counts = dict(batch_size=self.batch_size, val_every=self.val_every, val_samples=self.val_samples, log_every=self.log_every,
                      checkpoint_every=self.checkpoint_every, keep_checkpoints=self.keep_checkpoints, horizon_ms=self.horizon_ms)
        if self.steps is not None:
            counts["steps"] = self.steps
        for name, value in counts.items():
            if not (isinstance(value, int) and value >= 1):
                raise ArgumentError(f"`{name}` = {value!r}: expected a positive integer")
        if self.epochs is not None and not (math.isfinite(self.epochs) and self.epochs > 0):
            raise ArgumentError(f"`epochs` = {self.epochs!r}: expected a positive number")
        for name in ("warmup", "num_workers"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ArgumentError(f"`{name}` = {getattr(self, name)!r}: expected an integer >= 0")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ArgumentError(f"`lr` = {self.lr!r}: expected a number > 0")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ArgumentError(f"`weight_decay` = {self.weight_decay!r}: expected a number >= 0")


#: Settings a resumed run may change: where it runs, not what it computes.
RESUMABLE_CHANGES = ("device", "num_workers", "compile", "amp", "threads", "log_loss")


#: Settings that are paths: compared by the folder they name, however spelled (`./run`, `run`).
PATH_SETTINGS = ("dataset", "out")


def changed_settings(saved: dict, config: TrainConfig) -> list[str]:
    """Names of the settings of ``config`` that differ from a checkpoint's; the dataset and the
    run folder are compared by their real paths."""
    now = asdict(config)
    changed = [name for name in now if name not in (*RESUMABLE_CHANGES, *PATH_SETTINGS) and saved.get(name) != now[name]
               and not (name == "region" and saved.get(name) is not None and tuple(saved[name]) == now[name])]
    changed += [name for name in PATH_SETTINGS if not isinstance(saved.get(name), str)
                or os.path.realpath(saved[name]) != os.path.realpath(now[name])]
    return changed


def schedule(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warmup, then cosine decay to 10% at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def split(history, config: TrainConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """(training ids, validation ids, until): training events have timestamp < until, validation
    events timestamp ≥ val_from (default: until), so validation is always later. Without
    ``until``, the split falls at the timestamp of the event at 90% of the selection."""
    region_ids = select_events(history, config.region)
    if len(region_ids) == 0:
        raise ValueError(f"no events in region {config.region} of {config.dataset}")
    until = config.until
    if until is None:
        until = int(history.events()["timestamp"][region_ids[int(len(region_ids) * 0.9)]])
    val_from = until if config.val_from is None else config.val_from
    if val_from < until:
        raise ArgumentError("`val_from` must not be earlier than `until`: validation must come after training")
    train_ids = select_events(history, config.region, t1=until)
    val_ids = select_events(history, config.region, t0=val_from)
    if len(train_ids) == 0:
        raise ValueError(f"no training events in region {config.region} before {format_time(until)}")
    if len(val_ids) == 0:
        raise ValueError(f"no validation events in region {config.region} from {format_time(val_from)}")
    return train_ids, val_ids, until


def make_dataset(history, ids: np.ndarray, config: TrainConfig, model_config: ModelConfig, users: UserVectors | None):
    if config.task == "color":
        return ColorDataset(history, ids, model_config, config.target, config.horizon_ms, users)
    return TimeDataset(history, ids, model_config, config.horizon_ms, users)


def rng_states() -> dict:
    """The random generators' states as tensors and plain types, so a checkpoint loads with
    ``weights_only=True``."""
    version, python_state, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(python_state), gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng(states: dict) -> None:
    version, python_state, gauss = states["python"]
    random.setstate((version, tuple(python_state), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


#: What a periodic checkpoint holds (see ``state_at`` in :func:`_train`), with the types.
TRAINING_STATE = {"step": int, "running": list, "train_config": dict, "model": dict, "optimizer": dict, "scheduler": dict, "rng": dict}


def read_training_state(path: Path, device) -> dict:
    """A periodic checkpoint ``checkpoints/step_*.pt``, loaded with ``weights_only=True``;
    ValueError naming the file when it is anything else (a model.pt, a truncated file…)."""
    state = load_file(path, device)
    if not isinstance(state, dict) or any(not isinstance(state.get(key), kind) for key, kind in TRAINING_STATE.items()):
        what = "a finished model (model.pt), not a training state" if isinstance(state, dict) and "kind" in state else "no training state"
        raise ValueError(f"{path} holds {what}; a run cannot be resumed from it")
    check_checkpoint(state["model"], os.fspath(path))
    return state


def prefetched(batches, depth: int = 2):
    """Yields ``batches``, built by a background thread ``depth`` batches ahead: the Rust batch
    calls release the GIL, so the next batch is made while the model trains on this one."""
    queue: Queue = Queue(depth)
    done = object()

    def produce():
        try:
            for batch in batches:
                queue.put(batch)
        except BaseException as error:  # handed to the consumer, which raises it
            queue.put(error)
        queue.put(done)

    Thread(target=produce, daemon=True).start()
    while (item := queue.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def checkpoint_files(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("step_*.pt"))


def save_checkpoint(out: Path, state: dict, keep: int) -> Path:
    """Writes ``checkpoints/step_NNNNNNNN.pt`` atomically and keeps the last ``keep``."""
    path = out / "checkpoints" / f"step_{state['step']:08d}.pt"
    with atomic_path(path) as temporary:
        torch.save(state, temporary)
    for old in checkpoint_files(out)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def validate(net, model, loader, device, amp: bool) -> dict:
    """Mean loss (and accuracy for color) of ``net`` (``model``, maybe wrapped) over the
    validation batches."""
    net.eval()
    total, count, correct = 0.0, 0, 0
    task = model.kind
    with torch.no_grad():
        for inputs, targets in loader:
            inputs, targets = to_device(inputs, device), targets.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                output = net(inputs)
            total += model.loss(output, targets).item() * len(targets)
            count += len(targets)
            if task == "color":
                correct += (output.argmax(dim=1) == targets).sum().item()
    net.train()
    metrics = {"val_loss": total / count}
    if task == "color":
        metrics["val_accuracy"] = correct / count
    return metrics


class Interrupt:
    """Turns SIGINT and SIGTERM (what ``kill``, ``timeout`` and Slurm send) into a flag the loop
    checks after each step (then saves and stops)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.raised = None
        self.previous = {number: signal.signal(number, self.handle) for number in self.SIGNALS}

    def handle(self, signum, frame):
        self.raised = signum

    def stop(self):
        """What the loop raises once it has saved: Terminated for SIGTERM, else KeyboardInterrupt."""
        return Terminated() if self.raised == signal.SIGTERM else KeyboardInterrupt()

    def restore(self):
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def plot_losses(metrics_path: Path, out: Path, title: str, loss_name: str, log_scale: bool = False) -> None:
    """``loss.png``: training and validation loss against the step, titled ``title``, the loss
    axis named ``loss_name`` (logarithmic with ``log_scale``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_path, newline="") as f:
        rows = list(csv.DictReader(f))
    figure, axes = plt.subplots(figsize=(7, 4))
    for column, label in (("train_loss", "training"), ("val_loss", "validation")):
        points = [(int(r["step"]), float(r[column])) for r in rows if r[column]]
        if points:
            axes.plot(*zip(*points), label=label, marker="." if column == "val_loss" else None)
    axes.set_xlabel("step")
    axes.set_ylabel(loss_name)
    axes.set_title(title, fontsize=10)
    if log_scale:
        axes.set_yscale("log")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(out) as temporary:
        figure.savefig(temporary)
    plt.close(figure)


METRICS_COLUMNS = ["step", "train_loss", "val_loss", "val_accuracy"]


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> torch.nn.Module:
    """Trains as ``config`` says and returns the model (unwrapped). Writes to ``config.out``:
    ``metrics.csv``, ``loss.png``, ``checkpoints/``, and ``model.pt`` at the end."""
    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank, world_size, local_rank = 0, 1, 0
    if distributed:
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = resolve_device(config.device, local_rank)
    use_threads(config.threads)
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(config, resume, progress, device, rank, world_size)
    finally:
        if distributed:
            dist.destroy_process_group()


def _train(config: TrainConfig, resume: bool, progress: bool, device, rank: int, world_size: int) -> torch.nn.Module:
    out = Path(config.out)
    if rank == 0:  # the others would find the folder rank 0 is creating
        outputs.check(out, "run", resume, "resume=True")
    history = history_module.open(config.dataset)
    model_config = ModelConfig.preset(config.preset, config.task, **{**config.model, "palette": tuple(history.palette)})
    train_ids, val_ids, until = split(history, config)
    # The users input sees the users as the training events show them, in validation too.
    users = UserVectors.of(history, until) if "users" in model_config.inputs else None
    train_set = make_dataset(history, train_ids, config, model_config, users)
    val_ids = val_ids[np.random.default_rng([config.seed, 1]).permutation(len(val_ids))[: config.val_samples]]
    val_set = make_dataset(history, np.sort(val_ids), config, model_config, users)
    per_step = config.batch_size * world_size
    total = config.steps if config.steps is not None else math.ceil(config.epochs * len(train_ids) / per_step)

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    model = build_model(model_config).to(device)
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s, config.warmup, total))
    start, running = 0, [0.0, 0]
    if resume:
        found = checkpoint_files(out)
        if not found:
            raise ValueError(f"{out} has no checkpoint to resume from")
        if (out / "model.pt").exists():
            raise ValueError(f"the run in {out} has finished (model.pt): nothing to resume; train in another folder")
        state = read_training_state(found[-1], device)
        changed = changed_settings(state["train_config"], config)
        if changed or {**BEFORE_FIELDS, **state["model"]["config"]} != asdict(model_config):
            raise ValueError(f"{found[-1]} was made with other settings ({', '.join(f'`{name}`' for name in changed) or 'the model'}); "
                             "resume with the settings of the run")
        check_weights(model_config, state["model"]["state_dict"], os.fspath(found[-1]))
        try:
            model.load_state_dict(state["model"]["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            restore_rng(state["rng"])
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as error:
            raise ValueError(f"{found[-1]} holds a damaged training state ({type(error).__name__}: {error})") from None
        start, running = state["step"], state["running"]

    net = model
    if world_size > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)
    amp = config.amp and device.type == "cuda"
    sampler = EpochBatchSampler(len(train_set), config.batch_size, config.seed, start, total, rank, world_size)
    loader = DataLoader(train_set, batch_sampler=sampler, collate_fn=keep_batch, num_workers=config.num_workers,
                        pin_memory=device.type == "cuda")
    val_loader = DataLoader(val_set, batch_size=max(config.batch_size, 256), collate_fn=keep_batch, num_workers=0)

    metrics_path = out / "metrics.csv"
    if rank == 0:
        outputs.create(out, "run", resume, "resume=True")
        kept = []
        if resume and metrics_path.exists():
            with open(metrics_path, newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(row["step"]) <= start]
        with open(metrics_path, "w", newline="") as f:
            writer = csv.DictWriter(f, METRICS_COLUMNS)
            writer.writeheader()
            writer.writerows(kept)
        print(f"{config.task} model '{config.preset}' seeing {', '.join(model_config.inputs)}: {parameter_count(model):,} parameters; "
              f"{len(train_ids):,} training events before {format_time(until)}, {len(val_set):,} validation events; "
              f"{total:,} steps of {per_step} on {device}{f' × {world_size} processes' if world_size > 1 else ''}"
              f"{f' ({torch.get_num_threads()} CPU threads)' if device.type == 'cpu' else ''}"
              f"{f', resumed at step {start}' if start else ''}", flush=True)

    def state_at(step: int) -> dict:
        return {"step": step, "running": running, "train_config": asdict(config), "model": to_checkpoint(model),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_states()}

    from .progress import bar as progress_bar

    interrupt = Interrupt()
    bar = progress_bar(f"train {config.task}", "step", progress and rank == 0, total=total, initial=start)
    step, clock, seen = start, time.perf_counter(), 0
    try:
        for inputs, targets in (prefetched(loader) if config.num_workers == 0 else loader):
            inputs = to_device(inputs, device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                output = net(inputs)
            loss = model.loss(output, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            running[0] += loss.item()
            running[1] += 1
            seen += len(targets) * world_size
            bar.update(1)
            row = None
            if step % config.log_every == 0 or step % config.val_every == 0 or step == total:
                row = {"step": step, "train_loss": running[0] / running[1], "val_loss": "", "val_accuracy": ""}
                running = [0.0, 0]
            if step % config.val_every == 0 or step == total:
                row.update(validate(net, model, val_loader, device, amp))
            if row is not None and rank == 0:
                with open(metrics_path, "a", newline="") as f:
                    csv.DictWriter(f, METRICS_COLUMNS).writerow(row)
                rate = seen / (time.perf_counter() - clock)
                bar.set_postfix(loss=f"{row['train_loss']:.4f}", samples_per_s=f"{rate:,.0f}")
            if rank == 0 and (step % config.checkpoint_every == 0 or interrupt.raised) and step < total:
                save_checkpoint(out, state_at(step), config.keep_checkpoints)
            if interrupt.raised:
                raise interrupt.stop()
    finally:
        bar.close()
        interrupt.restore()

    if rank == 0:
        final = to_checkpoint(model)
        # What the run saw, with the split it computed: evaluation refuses events before "until".
        final["training"] = {key: value for key, value in asdict(config).items() if key not in ("model",)}
        final["training"].update(until=until, val_from=config.val_from if config.val_from is not None else until, steps=total)
        with atomic_path(out / "model.pt") as temporary:
            torch.save(final, temporary)
        plot_losses(metrics_path, out / "loss.png", f"{out.name}: {config.task} model '{config.preset}' seeing "
                    f"{', '.join(model_config.inputs)}", model_config.loss_name, config.log_loss)
    return model
