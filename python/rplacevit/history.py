"""Reading a dataset folder: the canvas at any moment, and batches of windows and targets around
events, computed in Rust from memory-mapped files (see :func:`open`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import _core

#: The defaults of the batch reads, used by every caller that does not choose (training,
#: evaluation, the datasets): one place for each.
WINDOW = 64  #: side of a window in pixels
TIME_GRID = 16  #: side of a time-target grid in pixels
COLOR_TARGET = "placed"  #: the color target mode; all of them: COLOR_TARGETS
COLOR_TARGETS = tuple(_core.COLOR_TARGETS)
COLOR_HORIZON_MS = 60_000  #: look-ahead of the next_minute_majority color target
TIME_HORIZON_MS = 3_600_000  #: horizon of the time targets
RECENT_MS = 600_000  #: how far back recent_colors looks
PLACER_HISTORY = 8  #: earlier placements placer_history returns
AGE_BUCKETS = _core.AGE_BUCKETS  #: age buckets of real ages (0 .. AGE_BUCKETS − 1) for age_buckets
AGE_NEVER = AGE_BUCKETS  #: the age bucket of a pixel never placed on
AGE_OUTSIDE = AGE_BUCKETS + 1  #: the age bucket of a cell off the canvas


class History:
    """The events of one dataset, in time order (event id = position), and the canvas they paint.

    Timestamps are int64 milliseconds since the Unix epoch (UTC); colors are palette indices
    0..31; :data:`rplacevit.OUTSIDE` (32) marks window cells outside the canvas. Batch methods
    take a 1-D int64 numpy array of event ids, release the GIL, use every core, and return
    arrays that own their Rust buffers.

    A History reads one dataset: its files are opened through the folder, so an ingest that
    replaces the folder meanwhile (``--force``) changes nothing for it. It pickles as its path and
    :attr:`generation`, so loader workers and other processes reopen it, share the
    memory-mapped pages, and refuse (:class:`rplacevit.DatasetError`) a dataset replaced since.
    """

    def __init__(self, dataset: str | os.PathLike[str], generation: str | None = None):
        self.path = Path(dataset)
        self._core = _core.History(os.fspath(self.path))
        if generation is not None and self._core.generation != generation:
            raise _core.DatasetError(f"{self.path}: the dataset was replaced (ingested again) since it was opened")
        self._columns = None

    def __reduce__(self):
        return (History, (self.path, self.generation))

    def __len__(self) -> int:
        return len(self._core)

    def __repr__(self) -> str:
        return f"History({str(self.path)!r}, year={self.year}, events={len(self):,}, canvas={self.canvas_width}x{self.canvas_height})"

    @property
    def canvas_width(self) -> int:
        return self._core.width

    @property
    def canvas_height(self) -> int:
        return self._core.height

    @property
    def year(self) -> int:
        """The r/place year whose files were ingested (2017, 2022, 2023)."""
        return self._core.year

    @property
    def palette(self) -> list[str]:
        """The year's colors as ``#RRGGBB``, by palette index: 16 for 2017 (the official
        indices, 0 white), 32 for 2022 and 2023 (:data:`rplacevit.PALETTE_HEX`, 31 white)."""
        return self._core.palette

    @property
    def palette_rgb(self) -> list[tuple[int, int, int]]:
        """:attr:`palette` as ``(r, g, b)``."""
        return [(int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)) for h in self.palette]

    @property
    def white(self) -> int:
        """The palette index of white, the color of a fresh canvas: 0 for 2017, 31 after."""
        return self._core.white

    @property
    def canvas_origin(self) -> tuple[int, int]:
        """The official coordinates of stored pixel (0, 0): ``(0, 0)`` for 2022, ``(-1500,
        -1000)`` for 2023. Every coordinate this package takes or returns (events, windows,
        regions, renders) is a stored one, ``0 .. canvas_width`` by ``0 .. canvas_height``;
        official = stored + origin."""
        return self._core.canvas_origin

    def canvas_bounds_at(self, t_ms: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``, x1 and y1 exclusive, stored coordinates: the part of the canvas
        open for placing at ``t_ms``. The canvas grew during each event (2022: 1000×1000, then
        2000×1000 from 2022-04-02 16:24:56 UTC, 2000×2000 from 2022-04-03 19:03:53; 2023: from
        a 1000×1000 square in six steps to 3000×2000). The windows of an event (and every input
        and target laid out like them) mark the cells not open at its time as
        :data:`rplacevit.OUTSIDE`, like cells off the canvas; :meth:`canvas_at` shows them
        white."""
        return self._core.canvas_bounds_at(int(t_ms))

    @property
    def time_range(self) -> tuple[int, int]:
        """(first, last) event timestamp in ms."""
        return self._core.time_range

    def event_bounds(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``, x1 and y1 exclusive: the bounding box of every event, where
        there is something to see (the whole canvas for an empty dataset)."""
        columns = self.events()
        if len(columns["x"]) == 0:
            return 0, 0, self.canvas_width, self.canvas_height
        return int(columns["x"].min()), int(columns["y"].min()), int(columns["x"].max()) + 1, int(columns["y"].max()) + 1

    def events_per_hour(self) -> list[tuple[int, int]]:
        """``(hour start in ms, events)`` for every UTC hour from the first event's to the last's."""
        hours = self.events()["timestamp"] // 3_600_000
        if len(hours) == 0:
            return []
        counts = np.bincount(hours - hours[0])
        return [(int(hours[0] + i) * 3_600_000, int(n)) for i, n in enumerate(counts)]

    @property
    def generation(self) -> str:
        """The id of the ingest that wrote the dataset: two Histories with the same generation
        read the same dataset."""
        return self._core.generation

    def events(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Columns ``timestamp`` (int64 ms), ``user_id`` (uint32), ``color`` (uint8), ``x``,
        ``y`` (uint16) of events ``start..stop``: read-only views of the reader's own memory maps
        (no copy). Their values are checked on the first call (colors in the palette, pixels on
        the canvas, timestamps in order): a damaged file is a :class:`rplacevit.DatasetError`."""
        if self._columns is None:
            self._columns = self._core.columns()
        return {name: column[start:stop] for name, column in self._columns.items()}

    def canvas_at(self, t_ms: int, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """(H, W) uint8: the canvas after every event with timestamp ≤ ``t_ms``. With ``region``
        ``(x0, y0, x1, y1)`` (x1 and y1 exclusive, on the canvas): only that rectangle, (y1 − y0,
        x1 − x0), rebuilt from the 16×16 tiles under it, so its cost follows the rectangle's size
        (the viewer's reads); raises :class:`rplacevit.ArgumentError` for a rectangle off the canvas."""
        if region is None:
            return self._core.canvas_at(int(t_ms))
        return self._core.region_at(int(t_ms), self._region(region))

    def _region(self, region: tuple[int, int, int, int] | None) -> tuple[int, int, int, int]:
        """``region`` as four ints (None: the whole canvas); ArgumentError for negative ones
        (the core says it for the rest of what lies off the canvas)."""
        if region is None:
            return 0, 0, self.canvas_width, self.canvas_height
        x0, y0, x1, y1 = (int(v) for v in region)
        if min(x0, y0, x1, y1) < 0:
            raise _core.ArgumentError(f"the region {x0},{y0},{x1},{y1} does not lie on the {self.canvas_width}x{self.canvas_height} canvas")
        return x0, y0, x1, y1

    def event_counts(self, t0: int, t1: int, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """(H, W) uint32 (or the ``region``'s shape, as :meth:`canvas_at`): how many events each
        pixel had with ``t0 ≤ timestamp < t1`` (ms). Counted in the tile files: the memory is
        the output's, whatever the number of events."""
        return self._core.event_counts(int(t0), int(t1), self._region(region))

    def canvas_before(self, event_id: int) -> np.ndarray:
        """(H, W) uint8: the canvas after events 0 .. event_id−1 (``len(self)``: the final canvas)."""
        return self._core.canvas_before(int(event_id))

    def windows(self, event_ids: np.ndarray, size: int = WINDOW) -> np.ndarray:
        """(B, size, size) uint8: for event i at (x, y), the canvas strictly before i with
        ``window[r, c] = canvas[y - size//2 + r, x - size//2 + c]``, OUTSIDE off the canvas open at
        i's time (:meth:`canvas_bounds_at`)."""
        return self._core.windows(event_ids, size)

    def color_targets(self, event_ids: np.ndarray, mode: str = COLOR_TARGET, horizon_ms: int = COLOR_HORIZON_MS) -> np.ndarray:
        """(B,) int64 palette indices; ``mode`` one of :data:`COLOR_TARGETS`. ``"placed"``: the color of event i.
        ``"next_minute_majority"``: the most frequent color among later events at the same pixel
        within (t_i, t_i + horizon_ms], ties to the color placed last; else the color of event i."""
        return self._core.color_targets(event_ids, mode, horizon_ms)

    def age_buckets(self, event_ids: np.ndarray, size: int = WINDOW) -> np.ndarray:
        """(B, size, size) uint8 on the grid laid out like :meth:`windows`: how long before event
        i each pixel was last placed on, as a bucket: 0 under 2¹³ ms (8.2 s), then two buckets per
        doubling (bucket 1 + 2(h − 13) + b for an age whose highest bit is h and next bit b) up to
        2²⁷ ms (37.3 h), 29 from there on; :data:`AGE_NEVER` (30) for a pixel not placed on yet,
        :data:`AGE_OUTSIDE` (31) off the canvas open at i's time."""
        return self._core.age_buckets(event_ids, size)

    def placement_times_at(self, t_ms: int, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """(H, W) int64 (or the ``region``'s shape, as :meth:`canvas_at`): when each pixel was
        last placed on by the events with timestamp ≤ ``t_ms`` (ms); the int64 minimum where never."""
        return self._core.placement_times_at(int(t_ms), self._region(region))

    def last_placers(self, event_ids: np.ndarray, size: int = WINDOW) -> np.ndarray:
        """(B, size, size) int64 on the grid laid out like :meth:`windows`: the user id of the
        last event before event i at each pixel; −1 where there is none or off the canvas."""
        return self._core.last_placers(event_ids, size)

    def previous_colors(self, event_ids: np.ndarray, size: int = WINDOW) -> np.ndarray:
        """(B, size, size) uint8 on the grid laid out like :meth:`windows`: the color each pixel
        showed before its last event before event i (the color placed by the event before that
        one); white where that event was the pixel's first or the pixel was never placed on,
        OUTSIDE where :meth:`windows` has it."""
        return self._core.previous_colors(event_ids, size)

    def previous_colors_at(self, t_ms: int, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """(H, W) uint8 (or the ``region``'s shape, as :meth:`canvas_at`): the color each pixel
        showed before its last placement by the events with timestamp ≤ ``t_ms``, as
        :meth:`previous_colors` gives it (white where it had fewer than two)."""
        return self._core.previous_colors_at(int(t_ms), self._region(region))

    def time_targets(self, event_ids: np.ndarray, size: int = TIME_GRID, horizon_ms: int = TIME_HORIZON_MS) -> np.ndarray:
        """(B, size, size) float32 on the grid laid out like :meth:`windows`: the time until the
        next event at each pixel after event i, divided by ``horizon_ms`` and capped at 1.0
        (1.0 when none comes within the horizon, or off the canvas open at i's time)."""
        return self._core.time_targets(event_ids, size, horizon_ms)

    def recent_colors(self, event_ids: np.ndarray, size: int = WINDOW, duration_ms: int = RECENT_MS) -> tuple[np.ndarray, np.ndarray]:
        """What was placed near each event lately: ``(counts, latest)``, both (B, 32) int64. For
        event i, the events before it (smaller ids) with timestamp ≥ t_i − duration_ms inside
        its size×size window (laid out like :meth:`windows`): ``counts[i, c]`` of them placed
        color c, the latest of those has id ``latest[i, c]`` (−1 for none)."""
        both = self._core.recent_colors(event_ids, size, duration_ms)
        return both[:, 0], both[:, 1]

    def last_change_times(self, event_ids: np.ndarray, size: int = TIME_GRID) -> np.ndarray:
        """(B, size, size) int64 on the grid laid out like :meth:`windows`: the timestamp (ms)
        of the last event before event i at each pixel; the int64 minimum where there was none
        or the pixel is off the canvas open at i's time."""
        return self._core.last_change_times(event_ids, size)

    @property
    def users(self) -> int:
        """Number of users; user ids run 0 .. users − 1, numbered by first event."""
        return self._core.users

    def user_id(self, user_hash: str) -> int | None:
        """The user id of an original user hash (None: no such user)."""
        return self._core.user_of_hash(user_hash)

    def user_hash(self, user: int) -> str | None:
        """The original hash of a user id (None: no such user)."""
        return self._core.hash_of_user(int(user))

    def user_events(self, user: int) -> np.ndarray:
        """Sorted int64 ids of every event of a user (a walk of the user's chain of events)."""
        return self._core.user_events(int(user))

    def placer_history(self, event_ids: np.ndarray, k: int = PLACER_HISTORY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What each event's user placed before it: ``(colors, ages, counts)``. ``colors``
        (B, k) uint8: their latest k placements strictly earlier in time (events of the same
        millisecond do not count), the latest first, OUTSIDE where there are fewer; ``ages``
        (B, k) int64: milliseconds from each to the event, −1 where none; ``counts`` (B,) int64:
        how many placements the user made strictly before the event."""
        return self._core.placer_history(event_ids, k)

    def next_placement_times(self, event_ids: np.ndarray) -> np.ndarray:
        """(B,) int64: the timestamp (ms) of the next event at each event's pixel (the next by
        id, the same millisecond included); the int64 maximum where none comes."""
        return self._core.next_placement_times(event_ids)

    def verify(self, progress: bool = True) -> list[str]:
        """Every problem of the files of this dataset (see :func:`rplacevit.verify`); none when
        it is exactly what its ingest wrote. Raises :class:`rplacevit.DatasetError` when the
        folder at :attr:`path` holds another dataset now (ingested again since it was opened)."""
        from .store import info, verify

        if info(self.path)["generation"] != self.generation:
            raise _core.DatasetError(f"{self.path}: the dataset was replaced (ingested again) since it was opened")
        return verify(self.path, progress)

    def select(self, x0=None, y0=None, x1=None, y1=None, t0=None, t1=None) -> np.ndarray:
        """Sorted int64 ids of the events with x0 ≤ x < x1, y0 ≤ y < y1, t0 ≤ timestamp < t1
        (None: unbounded; times in ms)."""
        return self._core.select(x0, y0, x1, y1, t0, t1)


def open(dataset: str | os.PathLike[str]) -> History:  # noqa: A001 - the natural name: rplacevit.open
    """Opens a dataset folder written by :func:`rplacevit.ingest`. Fast: nothing is rebuilt,
    every index is memory-mapped. Raises :class:`rplacevit.DatasetError` when the folder is
    missing, incomplete or damaged."""
    return History(dataset)
