"""Torch datasets over a :class:`rplacevit.History`: a batch of event ids becomes one Rust call
that returns uint8 windows and their targets, so one process can feed a GPU without per-sample
Python work. The model embeds palette indices itself: no one-hot floats on the CPU."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .history import COLOR_HORIZON_MS, COLOR_TARGET, TIME_GRID, TIME_HORIZON_MS, WINDOW, History


def select_events(history: History, region=None, t0: int | None = None, t1: int | None = None) -> np.ndarray:
    """Sorted int64 ids of the events in ``region`` (x0, y0, x1, y1; x1, y1 exclusive) with
    t0 ≤ timestamp < t1 (ms; None: unbounded)."""
    x0, y0, x1, y1 = region if region is not None else (None, None, None, None)
    return history.select(x0=x0, y0=y0, x1=x1, y1=y1, t0=t0, t1=t1)


class EventDataset(Dataset):
    """Samples are events ``event_ids[i]``; ``dataset[i]`` is one (window, target) pair and
    ``dataset.__getitems__(indices)`` a whole batch from one Rust call each for the windows and
    the targets. Pickles as the history's path, so spawned loader workers reopen the
    memory-mapped history and share its pages; forked ones work too (the Rust side gives each
    process its own thread pool)."""

    def __init__(self, history: History, event_ids: np.ndarray, window: int = WINDOW):
        self.history = history
        self.event_ids = np.ascontiguousarray(event_ids, dtype=np.int64)
        self.window = window

    def __len__(self) -> int:
        return len(self.event_ids)

    def __getitem__(self, index: int):
        windows, targets = self.__getitems__([index])
        return windows[0], targets[0]

    def __getitems__(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """((B, window, window) uint8 windows, (B, …) targets) of the events at ``indices``."""
        ids = self.event_ids[np.asarray(indices, dtype=np.int64)]
        windows = torch.from_numpy(self.history.windows(ids, self.window))
        return windows, torch.from_numpy(self.targets(ids))

    def targets(self, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ColorDataset(EventDataset):
    """Targets: (B,) int64 palette indices, ``mode`` ``"placed"`` (the color of the event) or
    ``"next_minute_majority"`` (the original's target, over ``horizon_ms``): see
    :meth:`rplacevit.History.color_targets`."""

    def __init__(self, history: History, event_ids: np.ndarray, window: int = WINDOW, mode: str = COLOR_TARGET,
                 horizon_ms: int = COLOR_HORIZON_MS):
        super().__init__(history, event_ids, window)
        self.mode, self.horizon_ms = mode, horizon_ms

    def targets(self, ids: np.ndarray) -> np.ndarray:
        return self.history.color_targets(ids, self.mode, self.horizon_ms)


class TimeDataset(EventDataset):
    """Targets: (B, size, size) float32, the time to each central pixel's next change divided
    by ``horizon_ms`` and capped at 1.0."""

    def __init__(self, history: History, event_ids: np.ndarray, window: int = WINDOW, size: int = TIME_GRID,
                 horizon_ms: int = TIME_HORIZON_MS):
        super().__init__(history, event_ids, window)
        self.size, self.horizon_ms = size, horizon_ms

    def targets(self, ids: np.ndarray) -> np.ndarray:
        return self.history.time_targets(ids, self.size, self.horizon_ms)


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
