"""Reading a dataset folder: the canvas at any moment, and batches of windows and targets around
events, computed in Rust from memory-mapped files (see :func:`open`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import _core

#: The columns of :meth:`History.events` and their files in the dataset folder.
EVENT_COLUMNS = {"timestamp": "timestamp", "user_id": "user_id", "color": "color", "x": "x", "y": "y"}


class History:
    """The events of one dataset, in time order (event id = position), and the canvas they paint.

    Timestamps are int64 milliseconds since the Unix epoch (UTC); colors are palette indices
    0..31; :data:`rplacevit.OUTSIDE` (32) marks window cells outside the canvas. Batch methods
    take a 1-D int64 numpy array of event ids, release the GIL, use every core, and return
    arrays that own their Rust buffers. A History pickles as its path, so loader workers and
    other processes reopen it and share the memory-mapped pages.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._core = _core.History(os.fspath(self.path))

    def __reduce__(self):
        return (History, (self.path,))

    def __len__(self) -> int:
        return len(self._core)

    def __repr__(self) -> str:
        return f"History({str(self.path)!r}, events={len(self):,}, canvas={self.canvas_width}x{self.canvas_height})"

    @property
    def canvas_width(self) -> int:
        return self._core.width

    @property
    def canvas_height(self) -> int:
        return self._core.height

    @property
    def time_range(self) -> tuple[int, int]:
        """(first, last) event timestamp in ms."""
        return self._core.time_range

    def events(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Columns ``timestamp`` (int64 ms), ``user_id`` (uint32), ``color`` (uint8), ``x``,
        ``y`` (uint16) of events ``start..stop``: read-only views of memory-mapped files."""
        columns = {}
        for name, file in EVENT_COLUMNS.items():
            column = np.load(self.path / "events" / f"{file}.npy", mmap_mode="r")
            columns[name] = column[start:stop]
        return columns

    def canvas_at(self, t_ms: int) -> np.ndarray:
        """(H, W) uint8: the canvas after every event with timestamp ≤ ``t_ms``."""
        return self._core.canvas_at(int(t_ms))

    def canvas_before(self, event_id: int) -> np.ndarray:
        """(H, W) uint8: the canvas after events 0 .. event_id−1 (``len(self)``: the final canvas)."""
        return self._core.canvas_before(int(event_id))

    def windows(self, event_ids: np.ndarray, size: int = 64) -> np.ndarray:
        """(B, size, size) uint8: for event i at (x, y), the canvas strictly before i with
        ``window[r, c] = canvas[y - size//2 + r, x - size//2 + c]``, OUTSIDE off the canvas."""
        return self._core.windows(event_ids, size)

    def color_targets(self, event_ids: np.ndarray, mode: str = "placed", horizon_ms: int = 60_000) -> np.ndarray:
        """(B,) int64 palette indices. ``"placed"``: the color of event i.
        ``"next_minute_majority"``: the most frequent color among later events at the same pixel
        within (t_i, t_i + horizon_ms], ties to the color placed last; else the color of event i."""
        return self._core.color_targets(event_ids, mode, horizon_ms)

    def time_targets(self, event_ids: np.ndarray, size: int = 16, horizon_ms: int = 3_600_000) -> np.ndarray:
        """(B, size, size) float32 on the grid laid out like :meth:`windows`: the time until the
        next event at each pixel after event i, divided by ``horizon_ms`` and capped at 1.0
        (1.0 when none comes within the horizon, or outside the canvas)."""
        return self._core.time_targets(event_ids, size, horizon_ms)

    def recent_colors(self, event_ids: np.ndarray, size: int = 64, duration_ms: int = 600_000) -> tuple[np.ndarray, np.ndarray]:
        """What was placed near each event lately: ``(counts, latest)``, both (B, 32) int64. For
        event i, the events before it (smaller ids) with timestamp ≥ t_i − duration_ms inside
        its size×size window (laid out like :meth:`windows`): ``counts[i, c]`` of them placed
        color c, the latest of those has id ``latest[i, c]`` (−1 for none)."""
        both = self._core.recent_colors(event_ids, size, duration_ms)
        return both[:, 0], both[:, 1]

    def last_change_times(self, event_ids: np.ndarray, size: int = 16) -> np.ndarray:
        """(B, size, size) int64 on the grid laid out like :meth:`windows`: the timestamp (ms)
        of the last event before event i at each pixel; the int64 minimum where there was none
        or the pixel is off the canvas."""
        return self._core.last_change_times(event_ids, size)

    def select(self, x0=None, y0=None, x1=None, y1=None, t0=None, t1=None) -> np.ndarray:
        """Sorted int64 ids of the events with x0 ≤ x < x1, y0 ≤ y < y1, t0 ≤ timestamp < t1
        (None: unbounded; times in ms)."""
        return self._core.select(x0, y0, x1, y1, t0, t1)


def open(path: str | os.PathLike[str]) -> History:  # noqa: A001 - the natural name: rplacevit.open
    """Opens a dataset folder written by :func:`rplacevit.ingest`. Fast: nothing is rebuilt,
    every index is memory-mapped. Raises :class:`rplacevit.DatasetError` when the folder is
    missing, incomplete or damaged."""
    return History(path)
