"""Torch datasets over a :class:`rplacevit.History`: a batch of event ids becomes one Rust call
per model input (:func:`model_inputs`) and one for the targets, so one process can feed a GPU
without per-sample Python work. The model embeds palette indices and age buckets itself: no
one-hot floats on the CPU."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from . import _core
from .history import COLOR_HORIZON_MS, COLOR_TARGET, TIME_HORIZON_MS, History
from .models import ModelConfig, placer_count_bucket


def select_events(history: History, region=None, t0: int | None = None, t1: int | None = None) -> np.ndarray:
    """Sorted int64 ids of the events in ``region`` (x0, y0, x1, y1; x1, y1 exclusive) with
    t0 ≤ timestamp < t1 (ms; None: unbounded)."""
    x0, y0, x1, y1 = region if region is not None else (None, None, None, None)
    return history.select(x0=x0, y0=y0, x1=x1, y1=y1, t0=t0, t1=t1)


@dataclass
class UserVectors:
    """What the ``users`` input knows of every user id: the original's seed vector
    (:func:`rplacevit.users.seed_vector`, ``(U, 38)`` float32) over the events before ``until``,
    and which users placed any of them (``active``; the others are unknown)."""

    vectors: np.ndarray
    active: np.ndarray
    until: int | None

    @classmethod
    def of(cls, history: History, until: int | None) -> UserVectors:
        """The users of ``history`` as the events before ``until`` (ms; None: all) show them:
        computed in Rust and cached in the dataset folder (:func:`rplacevit.users.features`)."""
        from .users import features, seed_vector

        columns = features(history, until)
        return cls(seed_vector(columns), np.asarray(columns["count"]) > 0, until)

    def rows(self, placers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(users, user_vectors)`` of the ``users`` input for last placers (any shape, −1:
        none): rows into the vectors of the distinct users among them, row 0 the unknown (no
        placer, or one without events before ``until``)."""
        distinct, inverse = np.unique(placers, return_inverse=True)
        known = (distinct >= 0) & (distinct < len(self.active))
        known[known] = self.active[distinct[known]]
        vectors = np.zeros((1 + int(known.sum()), self.vectors.shape[1]), dtype=np.float32)
        vectors[1:] = self.vectors[distinct[known]]
        row_of = np.zeros(len(distinct), dtype=np.int64)
        row_of[known] = np.arange(1, len(vectors))
        return row_of[inverse.reshape(placers.shape)], vectors


def model_inputs(history: History, ids: np.ndarray, config: ModelConfig, users: UserVectors | None = None) -> dict[str, torch.Tensor]:
    """The inputs of a model of ``config`` for events ``ids`` (see :mod:`rplacevit.models`):
    one Rust call per input, CPU tensors. ``users``: needed with the ``users`` input."""
    inputs = {"color": torch.from_numpy(history.windows(ids, config.window))}
    if "age" in config.inputs:
        inputs["age"] = torch.from_numpy(history.age_buckets(ids, config.window))
    if "previous" in config.inputs:
        inputs["previous"] = torch.from_numpy(history.previous_colors(ids, config.window))
    if "placer" in config.inputs:
        colors, ages, counts = history.placer_history(ids, config.placer_k)
        inputs["placer_colors"] = torch.from_numpy(colors)
        inputs["placer_ages"] = torch.from_numpy(_core.age_buckets_of(ages))
        inputs["placer_count"] = placer_count_bucket(torch.from_numpy(counts))
    if "users" in config.inputs:
        if users is None:
            raise ValueError("a model with the users input needs the users' vectors (rplacevit.data.UserVectors)")
        rows, vectors = users.rows(history.last_placers(ids, config.window))
        inputs["users"], inputs["user_vectors"] = torch.from_numpy(rows), torch.from_numpy(vectors)
    return inputs


def to_device(inputs: dict[str, torch.Tensor], device, non_blocking: bool = False) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=non_blocking) for key, value in inputs.items()}


class EventDataset(Dataset):
    """Samples are events ``event_ids[i]``; ``dataset[i]`` is one (inputs, target) pair and
    ``dataset.__getitems__(indices)`` a whole batch: the inputs of a model of ``config``
    (:func:`model_inputs`) and the targets, one Rust call each. Pickles as the history's path,
    so spawned loader workers reopen the memory-mapped history and share its pages; forked ones
    work too (the Rust side gives each process its own thread pool)."""

    def __init__(self, history: History, event_ids: np.ndarray, config: ModelConfig, users: UserVectors | None = None):
        self.history = history
        self.event_ids = np.ascontiguousarray(event_ids, dtype=np.int64)
        self.config, self.users = config, users
        if "users" in config.inputs and users is None:
            raise ValueError("a model with the users input needs the users' vectors (rplacevit.data.UserVectors)")

    def __len__(self) -> int:
        return len(self.event_ids)

    def __getitem__(self, index: int):
        inputs, targets = self.__getitems__([index])
        # user_vectors is not per event: the event's rows index it.
        return {key: value if key == "user_vectors" else value[0] for key, value in inputs.items()}, targets[0]

    def __getitems__(self, indices) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(inputs, (B, …) targets) of the events at ``indices``."""
        ids = self.event_ids[np.asarray(indices, dtype=np.int64)]
        return model_inputs(self.history, ids, self.config, self.users), torch.from_numpy(self.targets(ids))

    def targets(self, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ColorDataset(EventDataset):
    """Targets: (B,) int64 palette indices, ``mode`` ``"placed"`` (the color of the event) or
    ``"next_minute_majority"`` (the original's target, over ``horizon_ms``): see
    :meth:`rplacevit.History.color_targets`."""

    def __init__(self, history: History, event_ids: np.ndarray, config: ModelConfig, mode: str = COLOR_TARGET,
                 horizon_ms: int = COLOR_HORIZON_MS, users: UserVectors | None = None):
        super().__init__(history, event_ids, config, users)
        self.mode, self.horizon_ms = mode, horizon_ms

    def targets(self, ids: np.ndarray) -> np.ndarray:
        return self.history.color_targets(ids, self.mode, self.horizon_ms)


class TimeDataset(EventDataset):
    """Targets: (B, centre, centre) float32, the time to each central pixel's next change
    divided by ``horizon_ms`` and capped at 1.0."""

    def __init__(self, history: History, event_ids: np.ndarray, config: ModelConfig, horizon_ms: int = TIME_HORIZON_MS,
                 users: UserVectors | None = None):
        super().__init__(history, event_ids, config, users)
        self.horizon_ms = horizon_ms

    def targets(self, ids: np.ndarray) -> np.ndarray:
        return self.history.time_targets(ids, self.config.centre, self.horizon_ms)


class EpochBatchSampler(Sampler):
    """Batches of dataset indices in an order fixed by ``seed`` alone: epoch ``e`` is a
    permutation drawn from (seed, e), cut into global batches of ``batch_size × world_size``;
    rank ``r`` takes its slice of each. Batch ``k`` is the same whatever came before, so a run
    resumed at step ``start`` sees exactly the data of an uninterrupted one."""

    def __init__(self, length: int, batch_size: int, seed: int, start: int = 0, stop: int | None = None, rank: int = 0, world_size: int = 1):
        if length < batch_size * world_size:
            raise ValueError(f"{length} samples are fewer than one batch of {batch_size} × {world_size} processes")
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.start, self.stop, self.rank, self.world_size = start, stop, rank, world_size
        self.per_epoch = length // (batch_size * world_size)
        self._epoch, self._order = -1, None

    def batch(self, step: int) -> np.ndarray:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.length)
        first = (k * self.world_size + self.rank) * self.batch_size
        return self._order[first : first + self.batch_size]

    def __iter__(self):
        step = self.start
        while self.stop is None or step < self.stop:
            yield self.batch(step).tolist()
            step += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("an endless sampler has no length")
        return self.stop - self.start


def keep_batch(batch):
    """The collate function for batches made by ``__getitems__``: they are already tensors."""
    return batch
