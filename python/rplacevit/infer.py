"""Painting with the two models: from a start canvas, place pixels one at a time as the original
project did, or many at once on views that cannot see each other, and write the run as an mp4,
a gif and a PNG (see :func:`infer`).

One placement, on an H×W canvas of palette indices:

1. a **view**: the top-left corner (row, col) of a grid×grid square lying on the canvas, drawn
   uniformly; grid is the time model's centre (16 for the 64/16 presets), or 1 without a time
   model, when the view is the pixel itself (``random_pixel``);
2. the **pixel**: the cell of the grid where ``prediction + noise`` is smallest, prediction being
   the time model's output (predicted time to the next change, 0..1) for the window whose centre
   square is the grid, and noise uniform in [0, time_noise);
3. the **color**: ``argmax(logits / T + log(weights) [+ Gumbel noise])`` over the 32 colors, with
   the color model's logits for the window centred on the pixel: the argmax of
   softmax(logits / T) · weights when T = 0 (``logits`` alone then), a sample from it when T > 0;
   ``avoid_current`` gives the pixel's present color a score of −inf.

Windows have the training layout, ``window[r, c] = canvas[y − w//2 + r, x − w//2 + c]`` with
OUTSIDE off the canvas, and are sliced from a uint8 copy of the canvas on the device, padded once
with OUTSIDE. Each model uses its own window size, so the two sizes may differ.

**The map painter** (``pixel_choice="map"``). Instead of random views, the time model maps the
whole canvas (:func:`time_map`: the canvas cut into squares of its centre from the top-left
corner, each the centre of one window, as the viewer's "changes soon" overlay), each place of
the squares is ranked on its own (:func:`ranks_by_position`), and the ``refresh`` pixels ranked
soonest (``rank + noise``, noise uniform in [0, time_noise)), none
placed before in the run, are placed next, each colored by the color model as above; then the
map is computed again on the canvas and clocks as they now are. A refresh's pixels are colored
on the canvas before any of them is placed. It spends the placements where the model expects
changes, which the original's loop does not (it places one pixel per uniformly random view).

**Groups.** Up to ``batch_views`` placements form a group: each model runs once on the group's
windows, and the group's pixels are then placed in order. Every view of a group lies at least
:attr:`Geometry.separation` (in rows or in columns) from the others, so no window of the group
contains another's pixel: the group places exactly what placing its views one after another
would. ``batch_views=1`` is the sequential algorithm. A group may come out smaller than
``batch_views`` when the canvas has no room for more (on 256×256 with 64/16 windows, about a
dozen views fit); the first view of a group is uniform over the canvas, the others are uniform
draws kept because they lie clear of the views kept before them.

**Random numbers.** A single ``numpy.random.Generator`` seeded with ``seed``, nothing else; per
group, in this order:

1. view candidates, in rounds (at most :data:`VIEW_ROUNDS`) until the group is full (the map
   painter draws ``rng.random((H, W), dtype=float32) * float32(time_noise)`` instead, when
   ``time_noise > 0``, and nothing in steps 2):
   ``rng.integers(0, (H − grid + 1, W − grid + 1), size=(missing, 2))`` (rows, cols);
   a group of one is a single draw of size (1, 2);
2. with a time model and ``time_noise > 0``: ``rng.random((n, grid, grid), dtype=float32)
   * float32(time_noise)``;
3. with ``temperature > 0``: ``u = rng.random((n, 32), dtype=float32)``, Gumbel noise ``−log(−log u)``.

**Inputs.** Each model is fed the inputs it was trained with. ``age`` comes from a simulated
clock: placement p (0, 1, …) happens ``(p + 1) · interval_ms`` after the start, whose pixels
have their real last placement times (a dataset start, at ``at``) or were never placed on (an
image, a white canvas); each view of a group sees the clock of its own placement, so groups stay
equivalent to placing one by one. ``previous``: a placement keeps the color it covers as its
pixel's previous color; the start's are the dataset's (at ``at``), or each pixel's own color (an
image, a white canvas: never placed on). ``placer`` and ``users`` are unknown (the models were
trained with them hidden now and then: ``input_dropout``).

**Frames.** A frame is the canvas after 0, K, 2K, … placements (K = ``frame_every``) and after
the last one when N is not a multiple of K: 1 + ceil(N / K) frames. Groups are placed in slices
that end on those counts, so a frame holds exactly its number of placements.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import numpy as np
import torch

from . import OUTSIDE, PALETTE_RGB, WHITE, ArgumentError
from .devices import DEFAULT_THREADS, DEVICES, resolve_device, use_threads
from .files import atomic_path, check_suffix
from .history import History
from .history import open as open_history
from .models import AGE_NEVER, AGE_OUTSIDE, PALETTE_SIZE, ModelConfig, WindowModel, age_bucket, check_palette, model_on, trained_palette
from .options import option, parse_region
from .progress import bar as progress_bar
from .render import check_frames, frames_to, to_rgb
from .times import parse_time

#: (width, height) of the white canvas painted when neither an image nor a dataset is given.
DEFAULT_CANVAS_SIZE = (256, 256)
#: The most pixels a painted canvas may have (a white one, or an image to start from): 4096×4096,
#: 2.8 times r/place 2023's whole canvas; checked before anything is allocated.
MAX_CANVAS_PIXELS = 1 << 24
#: Pixels of an image converted to palette colors at a time (:func:`image_to_canvas`).
CONVERT_PIXELS = 1 << 18
#: How a placement's pixel is chosen (:attr:`InferConfig.pixel_choice`): the original's random
#: views, or the time model's map of the whole canvas.
PIXEL_CHOICES = ("auto", "views", "map")
#: Windows a model reads in one forward pass when it maps a canvas (:func:`time_map`) or colors a
#: map's pixels (:func:`choose_colors`): the memory of a pass is bounded whatever the canvas.
MAP_BATCH = 1024
#: Rounds of candidate views per group: more only helps on a canvas already crowded with views.
VIEW_ROUNDS = 8
#: Simulated time between placements without a dataset to take it from (models that see ages).
DEFAULT_INTERVAL_MS = 1_000
#: Last placement times of a pixel never placed on, and of a cell off the canvas.
NEVER_PLACED = np.iinfo(np.int64).min
OFF_CANVAS = np.iinfo(np.int64).max

_Path = Union[str, os.PathLike]


@dataclass
class Inference:
    """What a run did. start, canvas: (H, W) uint8 palette indices before and after.
    placements: (N, 3) int64 x, y, color of every placement, in order. views: (N, 2) int64 row
    and col of each placement's view (the top-left of its grid). groups: (G,) int64 placements
    per group, in order (they sum to N). frames: frames written to the video and gif (0 when
    neither is asked for). seconds: wall-clock time of the painting loop, frames included.
    interval_ms: the simulated time between placements (None when no model sees ages)."""

    start: np.ndarray
    canvas: np.ndarray
    placements: np.ndarray
    views: np.ndarray
    groups: np.ndarray
    frames: int
    seconds: float
    interval_ms: int | None = None


@dataclass(frozen=True)
class Geometry:
    """Where one placement looks, in canvas pixels.

    grid: side of the square a view picks its pixel from. time_window, time_offset: side of the
    time model's window and the row (and column) of the grid inside it (0, 0 without a time
    model). color_window: side of the color model's window. pad: OUTSIDE border of the padded
    canvas, enough for every window. separation: two views whose rows or whose columns differ
    by at least this see none of each other's pixels.
    """

    grid: int
    time_window: int
    time_offset: int
    color_window: int
    pad: int
    separation: int

    @classmethod
    def of(cls, color_config: ModelConfig, time_config: ModelConfig | None) -> Geometry:
        """The geometry of a color model and a time model (None: one random pixel per view)."""
        color_window = color_config.window
        if time_config is None:
            grid, time_window, time_offset = 1, 0, 0
        else:
            grid, time_window, time_offset = time_config.centre, time_config.window, time_config.centre_start
        # A view with grid rows g .. g+grid−1 reads rows g − before .. g + grid − 1 + after: its
        # time window, and the color window of whichever grid pixel it picks.
        before = max(time_offset, color_window // 2)
        after = max(time_window - time_offset - grid, color_window - 1 - color_window // 2)
        # Another view's grid (where its pixel lies) misses those rows when the two g differ by
        # at least grid + after one way, grid + before the other.
        separation = grid + max(before, after)
        return cls(grid, time_window, time_offset, color_window, max(time_window, color_window) // 2, separation)


def parse_color_weights(text: str) -> dict[int, float]:
    """``27=0.75,31=0`` → ``{27: 0.75, 31: 0.0}``: palette index → weight (0 excludes the color)."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        index, _, weight = item.partition("=")
        try:
            weights[int(index)] = float(weight)
        except ValueError:
            raise ArgumentError(f"color weights {text!r}: expected index=weight pairs like 27=0.75,31=0") from None
    return weights


def color_weight_vector(weights: Mapping[int, float] | None, avoid_current: bool) -> np.ndarray:
    """(32,) float32 weights, 1 for every color not in ``weights``. Raises ValueError for an index
    outside 0..31, a negative or non-finite weight, or too few colors left to choose from."""
    vector = np.ones(PALETTE_SIZE, dtype=np.float32)
    for index, weight in (weights or {}).items():
        if not 0 <= index < PALETTE_SIZE:
            raise ArgumentError(f"color weight for index {index}: palette indices are 0..{PALETTE_SIZE - 1}")
        if not (math.isfinite(weight) and weight >= 0):
            raise ArgumentError(f"color weight {weight} for index {index}: expected a finite weight >= 0")
        vector[index] = weight
    needed = 2 if avoid_current else 1  # avoiding the present color takes one more away
    if np.count_nonzero(vector) < needed:
        raise ArgumentError(f"color weights leave {np.count_nonzero(vector)} color(s): at least {needed} needed"
                         + (" with avoid_current" if avoid_current else ""))
    return vector


def image_to_canvas(path: _Path, palette: Sequence[str] | None = None) -> np.ndarray:
    """(H, W) uint8: each pixel of an image file (PNG, JPEG…, any mode) as the nearest color of
    ``palette`` (``#RRGGBB`` by index; None: 2022's) in RGB; transparent pixels are first
    blended onto white, the blank canvas' color. The size is checked from the image's header
    before its pixels are read (at most :data:`MAX_CANVAS_PIXELS`), and the pixels are
    converted a band of rows at a time, so memory stays near the image's own size.
    Raises FileNotFoundError for a missing file, ArgumentError for a too large image and
    ValueError naming a file that is no image."""
    from PIL import Image, UnidentifiedImageError

    name = os.fspath(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_CANVAS_PIXELS:
                raise ArgumentError(f"`init` {name}: a {width}×{height} image, more than the {MAX_CANVAS_PIXELS:,} pixels "
                                    "a canvas may have: crop or scale it down")
            image.load()
            canvas = np.empty((height, width), dtype=np.uint8)
            nearest = ColorLookup(palette)
            band = max(1, CONVERT_PIXELS // max(width, 1))
            for top in range(0, height, band):
                rgba = np.asarray(image.crop((0, top, width, min(height, top + band))).convert("RGBA"), dtype=np.int32)
                alpha = rgba[..., 3:]
                # Blended onto white in integers: rint(c·a/255 + 255·(1 − a/255)).
                rgb = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
                canvas[top: top + band] = nearest(rgb)
            return canvas
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such image file") from None
    except Image.DecompressionBombError as error:  # Pillow's own limit, met before the header check
        raise ArgumentError(f"`init` {name}: more than the {MAX_CANVAS_PIXELS:,} pixels a canvas may have ({error})") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        if isinstance(error, ArgumentError):
            raise
        raise ValueError(f"{name} is not a readable image ({error})") from error


class ColorLookup:
    """Maps (..., 3) RGB arrays to the nearest palette index, computing each distinct color's
    distances once (a photo has far fewer colors than pixels) into a table of all 2²⁴ colors."""

    def __init__(self, palette: Sequence[str] | None):
        self.palette = np.array(PALETTE_RGB if palette is None else rgb_of(palette), dtype=np.int32)
        self.known = np.zeros(1 << 24, dtype=bool)
        self.table = np.zeros(1 << 24, dtype=np.uint8)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = rgb.astype(np.int32)
        keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        new = np.unique(keys[~self.known[keys]])
        if len(new):
            distinct = np.stack([new >> 16, (new >> 8) & 255, new & 255], axis=1)
            self.table[new] = ((distinct[:, None, :] - self.palette[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
            self.known[new] = True
        return self.table[keys]


def rgb_of(palette: Sequence[str]) -> list[tuple[int, int, int]]:
    """``#RRGGBB`` colors as ``(r, g, b)``."""
    return [(int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)) for c in palette]


def white_of(palette: Sequence[str] | None) -> int:
    """The palette index of white in ``palette`` (None: 2022's)."""
    return WHITE if palette is None else list(palette).index("#FFFFFF")


def crop_or_pad(canvas: np.ndarray, canvas_size: tuple[int, int], fill=WHITE) -> np.ndarray:
    """The top-left (width, height) of ``canvas``, extended with ``fill`` (white) where it is smaller."""
    width, height = canvas_size
    out = np.full((height, width), fill, dtype=canvas.dtype)
    rows, cols = min(height, canvas.shape[0]), min(width, canvas.shape[1])
    out[:rows, :cols] = canvas[:rows, :cols]
    return out


def start_canvas(
    init: _Path | np.ndarray | None = None,
    dataset: _Path | None = None,
    at: str | int | None = None,
    canvas_size: tuple[int, int] | None = None,
    region: tuple[int, int, int, int] | None = None,
    palette: Sequence[str] | None = None,
) -> np.ndarray:
    """(H, W) uint8 palette indices to paint on: the image file (or (H, W) palette array)
    ``init``; or the canvas of ``dataset`` at time ``at`` (ISO 8601 or ms, see
    :func:`rplacevit.times.parse_time`); or, with neither, a white canvas of ``canvas_size``
    (width, height; default 256×256). ``region`` (x0, y0, x1, y1; x1, y1 exclusive) first cuts
    that rectangle out of an image or dataset canvas; a given ``canvas_size`` then crops or pads
    (with white) the result, keeping its top-left corner. ``palette`` (``#RRGGBB`` by index;
    None: 2022's) is the models': an image is read in its colors, white is its white."""
    check_start(init, dataset, at, canvas_size, region)
    if dataset is not None:
        canvas = open_history(dataset).canvas_at(parse_time(at))
    elif init is None:
        width, height = canvas_size or DEFAULT_CANVAS_SIZE
        return np.full((height, width), white_of(palette), dtype=np.uint8)
    elif isinstance(init, np.ndarray):
        if init.ndim != 2 or init.dtype.kind not in "iu" or init.size == 0 or init.min() < 0 or init.max() >= PALETTE_SIZE:
            raise ArgumentError(f"a start canvas must be a non-empty (H, W) integer array of palette indices 0..{PALETTE_SIZE - 1}")
        canvas = init.astype(np.uint8)
    else:
        canvas = image_to_canvas(init, palette)
    if region is not None:
        x0, y0, x1, y1 = region
        height, width = canvas.shape
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ArgumentError(f"`region` {x0},{y0},{x1},{y1} is not inside the {width}x{height} start canvas")
        canvas = canvas[y0:y1, x0:x1].copy()
    return canvas if canvas_size is None else crop_or_pad(canvas, tuple(canvas_size), white_of(palette))


def start_times(dataset: _Path | None, at: str | int | None, shape: tuple[int, int], canvas_size, region) -> tuple[np.ndarray, int]:
    """``(times, clock)`` of a start canvas of ``shape`` (as :func:`start_canvas` made it): (H, W)
    int64 last placement times (ms; :data:`NEVER_PLACED` where never) and the moment it shows:
    the dataset's at ``at``, cut and cropped like the canvas; else never placed, at time 0."""
    if dataset is None:
        return np.full(shape, NEVER_PLACED, dtype=np.int64), 0
    t = parse_time(at)
    times = open_history(dataset).placement_times_at(t)
    if region is not None:
        x0, y0, x1, y1 = region
        times = times[y0:y1, x0:x1]
    return (times if canvas_size is None else crop_or_pad(times, tuple(canvas_size), NEVER_PLACED)), t


def start_previous(dataset: _Path | None, at: str | int | None, start: np.ndarray, canvas_size, region, palette) -> np.ndarray:
    """(H, W) uint8: the color each pixel of the start canvas ``start`` (as :func:`start_canvas`
    made it) showed before its last placement: the dataset's at ``at``
    (:meth:`rplacevit.History.previous_colors_at`), cut and cropped like the canvas; else
    ``start`` itself (pixels never placed on keep the color they show)."""
    if dataset is None:
        return start.copy()
    previous = open_history(dataset).previous_colors_at(parse_time(at), region)
    return previous if canvas_size is None else crop_or_pad(previous, tuple(canvas_size), white_of(palette))


def start_open(dataset: _Path | None, at: str | int | None, shape: tuple[int, int], canvas_size, region) -> np.ndarray:
    """(H, W) bool: the pixels of a start canvas of ``shape`` (as :func:`start_canvas` made it)
    open (drawable) at its moment: a dataset's canvas bounds at ``at``, cut and cropped like
    the canvas (padding is closed); every pixel of an image or a white canvas."""
    if dataset is None:
        return np.ones(shape, dtype=bool)
    history = open_history(dataset)
    cells = open_at(history, parse_time(at), region or (0, 0, history.canvas_width, history.canvas_height))
    return cells if canvas_size is None else crop_or_pad(cells, tuple(canvas_size), False)


def open_at(history: History, t_ms: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """(h, w) bool: the cells of the rectangle ``box`` (x0, y0, x1, y1; it may reach past the
    canvas) open (drawable) at ``t_ms``."""
    x0, y0, x1, y1 = box
    ox0, oy0, ox1, oy1 = history.canvas_bounds_at(t_ms)
    ys, xs = np.arange(y0, y1)[:, None], np.arange(x0, x1)[None, :]
    return (ys >= oy0) & (ys < oy1) & (xs >= ox0) & (xs < ox1)


def mean_interval(dataset: _Path, region: tuple[int, int, int, int] | None) -> int:
    """The mean time between consecutive events of ``dataset`` (in ``region``), in ms (≥ 1;
    :data:`DEFAULT_INTERVAL_MS` with fewer than two events)."""
    history = open_history(dataset)
    if region is None:
        count, (first, last) = len(history), history.time_range
    else:
        x0, y0, x1, y1 = region
        ids = history.select(x0=x0, y0=y0, x1=x1, y1=y1)
        count = len(ids)
        first, last = (int(history.events()["timestamp"][ids[0]]), int(history.events()["timestamp"][ids[-1]])) if count else (0, 0)
    return max(1, round((last - first) / (count - 1))) if count >= 2 else DEFAULT_INTERVAL_MS


def check_start(init, dataset, at, canvas_size, region) -> None:
    """ArgumentError unless the start arguments of :func:`start_canvas` go together."""
    if canvas_size is not None and not (len(canvas_size) == 2 and all(isinstance(side, int) and side > 0 for side in canvas_size)):
        raise ArgumentError(f"`canvas_size` {canvas_size!r}: expected two positive integers (width, height)")
    if canvas_size is not None and canvas_size[0] * canvas_size[1] > MAX_CANVAS_PIXELS:
        raise ArgumentError(f"`canvas_size` {canvas_size[0]}×{canvas_size[1]}: more than the {MAX_CANVAS_PIXELS:,} pixels a canvas may have")
    if init is not None and dataset is not None:
        raise ArgumentError("start from an image (`init`) or from a dataset (`dataset`), not both")
    if (dataset is None) != (at is None):
        raise ArgumentError("`dataset` needs `at` (the moment of its canvas to start from)" if at is None else
                            "`at` is the moment of a dataset start: give `dataset` too")
    if region is not None and init is None and dataset is None:
        raise ArgumentError("`region` cuts an image or dataset start; a white start takes `canvas_size`")


def choose_views(
    rng: np.random.Generator, count: int, height: int, width: int, grid: int, separation: int, rounds: int = VIEW_ROUNDS
) -> np.ndarray:
    """(n, 2) int64 views, 1 ≤ n ≤ count: top-left (row, col) of grid×grid squares on a
    height×width canvas whose rows or columns differ pairwise by at least ``separation``.

    Candidates come in rounds of as many as are missing. One is kept when it is clear of every
    view kept so far and of every earlier candidate of its round, kept or not: a single
    vectorised comparison, at the price of a few extra redraws.
    """
    views = np.empty((0, 2), dtype=np.int64)
    for _ in range(rounds):
        missing = count - len(views)
        if missing == 0:
            break
        candidates = rng.integers(0, (height - grid + 1, width - grid + 1), size=(missing, 2))
        clear_of_kept = (chebyshev(candidates, views) >= separation).all(axis=1)
        near_earlier = np.tril(chebyshev(candidates, candidates) < separation, k=-1).any(axis=1)
        views = np.concatenate([views, candidates[clear_of_kept & ~near_earlier]])
    return views


def chebyshev(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)): max(|Δrow|, |Δcol|) between (n, 2) and (m, 2) positions."""
    return np.abs(a[:, None, :] - b[None, :, :]).max(axis=2)


def windows_at(padded: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: int) -> torch.Tensor:
    """(n, size, size) uint8 windows of the padded canvas with top-left cells (rows, cols), (n,)
    int64 tensors in padded coordinates: one copy out of the strided view of every window."""
    return padded.unfold(0, size, 1).unfold(1, size, 1)[rows, cols]


@dataclass
class Canvas:
    """The painting's state on the device, each padded with :attr:`Geometry.pad` cells all
    round: ``colors`` (uint8, OUTSIDE in the border); when a model sees ages, ``times`` (int64 ms
    of each pixel's last placement; :data:`NEVER_PLACED`, :data:`OFF_CANVAS`); when a model sees
    previous colors, ``previous`` (uint8, what each pixel showed before its last placement,
    OUTSIDE in the border)."""

    colors: torch.Tensor
    times: torch.Tensor | None
    previous: torch.Tensor | None = None

    def inputs(self, model: WindowModel, rows: torch.Tensor, cols: torch.Tensor, clocks: torch.Tensor) -> dict[str, torch.Tensor]:
        """The inputs of ``model`` for its windows with top-left cells (rows, cols) (padded
        coordinates), at the moments ``clocks`` ((n,) int64 ms); placer and users unknown."""
        size = model.config.window
        inputs = {"color": windows_at(self.colors, rows, cols, size)}
        if "age" in model.config.inputs:
            inputs["age"] = ages_of(windows_at(self.times, rows, cols, size), clocks)
        if "previous" in model.config.inputs:
            inputs["previous"] = windows_at(self.previous, rows, cols, size)
        return inputs

    def bordered(self, extra: int) -> Canvas:
        """This state with ``extra`` more cells all round, off the canvas (OUTSIDE, OFF_CANVAS)."""
        return Canvas(bordered(self.colors, extra, OUTSIDE), None if self.times is None else bordered(self.times, extra, OFF_CANVAS),
                      None if self.previous is None else bordered(self.previous, extra, OUTSIDE))


def canvas_state(history: History, t_ms: int, box: tuple[int, int, int, int], models, device: torch.device) -> Canvas:
    """The canvas of ``history`` at ``t_ms`` in the rectangle ``box`` (x0, y0, x1, y1; it may
    reach past the canvas) as the models see it: colors, OUTSIDE where the canvas is not open at
    that time (as in training), and when one of ``models`` sees them, the last placement times
    (:data:`NEVER_PLACED` where never, :data:`OFF_CANVAS` where not open) and the previous colors.
    What the viewer's models answer from, and the forecast's."""
    x0, y0, x1, y1 = box
    ox0, oy0, ox1, oy1 = history.canvas_bounds_at(t_ms)
    on = (max(x0, ox0), max(y0, oy0), min(x1, ox1), min(y1, oy1))
    sees = {name for model in models for name in model.config.inputs}
    colors = np.full((y1 - y0, x1 - x0), OUTSIDE, dtype=np.uint8)
    times = np.full(colors.shape, OFF_CANVAS, dtype=np.int64) if "age" in sees else None
    previous = colors.copy() if "previous" in sees else None
    if on[0] < on[2] and on[1] < on[3]:
        inside = np.s_[on[1] - y0 : on[3] - y0, on[0] - x0 : on[2] - x0]
        colors[inside] = history.canvas_at(t_ms, on)
        if times is not None:
            times[inside] = history.placement_times_at(t_ms, on)  # NEVER_PLACED where never
        if previous is not None:
            previous[inside] = history.previous_colors_at(t_ms, on)
    return Canvas(*(None if plane is None else torch.as_tensor(plane, device=device) for plane in (colors, times, previous)))


def ages_of(times: torch.Tensor, clocks: torch.Tensor) -> torch.Tensor:
    """(n, s, s) age buckets of last placement times ``times`` (int64, with NEVER_PLACED and
    OFF_CANVAS) at the moments ``clocks`` (n,): as :meth:`rplacevit.History.age_buckets` gives
    them for real events."""
    never, off = times == NEVER_PLACED, times == OFF_CANVAS
    now = clocks[:, None, None]
    buckets = age_bucket(now - torch.where(never | off, now, times))
    return torch.where(never, AGE_NEVER, torch.where(off, AGE_OUTSIDE, buckets))


def choose_pixels(
    time_model: WindowModel | None, canvas: Canvas, views: torch.Tensor, clocks: torch.Tensor, noise: torch.Tensor | None,
    geometry: Geometry
) -> tuple[torch.Tensor, torch.Tensor]:
    """Canvas rows and cols ((n,) int64) of the pixel each view picks: where the time model's
    (n, grid, grid) time-like score plus ``noise`` is smallest (the first such cell on ties), or
    the view itself without a time model."""
    rows, cols = views[:, 0], views[:, 1]
    if time_model is None:
        return rows, cols
    first = geometry.pad - geometry.time_offset
    predicted = time_model.time_fraction(time_model(canvas.inputs(time_model, rows + first, cols + first, clocks)))
    if noise is not None:
        predicted = predicted + noise
    cell = predicted.flatten(1).argmin(dim=1)
    return rows + cell // geometry.grid, cols + cell % geometry.grid


def time_map(model: WindowModel, state: Canvas, top: int, left: int, height: int, width: int, clock: int) -> torch.Tensor:
    """(height, width) float32: the time model's time-like score (lower = sooner, as
    :meth:`WindowModel.time_fraction`) of each pixel of the rectangle whose top-left cell is
    (top, left) in ``state``'s coordinates, all seen at the moment ``clock`` (ms). The rectangle
    is cut into squares of the model's centre from its top-left cell, each the centre of one
    window (so a pixel's score depends only on where its square lies); cells the state does not
    hold are OUTSIDE (off the canvas)."""
    window, centre, offset = model.config.window, model.config.centre, model.config.centre_start
    rows, cols = -(-height // centre), -(-width // centre)
    # Every window reaches `offset` cells before its square and `window − offset` after it.
    extra = window
    grown = state.bordered(extra)
    square_rows, square_cols = np.divmod(np.arange(rows * cols), cols)
    device = state.colors.device
    out = torch.empty((rows * cols, centre, centre), dtype=torch.float32, device=device)
    for first in range(0, rows * cols, MAP_BATCH):
        part = slice(first, first + MAP_BATCH)
        r = torch.as_tensor(square_rows[part] * centre + top + extra - offset, device=device)
        c = torch.as_tensor(square_cols[part] * centre + left + extra - offset, device=device)
        clocks = torch.full((len(r),), clock, dtype=torch.int64, device=device)
        out[part] = model.time_fraction(model(grown.inputs(model, r, c, clocks))).float()
    grid = out.reshape(rows, cols, centre, centre).permute(0, 2, 1, 3).reshape(rows * centre, cols * centre)
    return grid[:height, :width]


def bordered(plane: torch.Tensor, extra: int, fill: int) -> torch.Tensor:
    """``plane`` with ``extra`` cells of ``fill`` all round (exact for int64 fills, which
    ``F.pad``'s float value is not)."""
    out = torch.full((plane.shape[0] + 2 * extra, plane.shape[1] + 2 * extra), fill, dtype=plane.dtype, device=plane.device)
    out[extra:-extra, extra:-extra] = plane
    return out


POSITION_RANKS = False


def ranks_by_position(score: np.ndarray, centre: int) -> np.ndarray:
    """``score`` with each value replaced by its rank (0..1) among the values at the same place
    of their squares: the time model learned from windows centred on an event, so in each of its
    squares the cell of that event is "soon" whatever the canvas shows; ranking each place of
    the square on its own takes that bias out and keeps what the canvas tells."""
    h, w = score.shape
    out = np.empty_like(score, dtype=np.float64)
    for dy in range(centre):
        for dx in range(centre):
            values = score[dy::centre, dx::centre]
            order = np.argsort(values, axis=None, kind="stable")
            ranks = np.empty(values.size)
            ranks[order] = np.arange(values.size) / max(values.size - 1, 1)
            out[dy::centre, dx::centre] = ranks.reshape(values.shape)
    return out


def map_pixels(time_model: WindowModel, state: Canvas, geometry: Geometry, height: int, width: int, clock: int, count: int,
               noise: np.ndarray | None, placed: np.ndarray, closed: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Canvas rows and cols ((n,) int64, 1 ≤ n ≤ ``count``) of the pixels the time model's map at
    ``clock`` ranks soonest (:func:`ranks_by_position` ``+ noise``; the first in row-major order
    on ties), leaving out
    the pixels ``placed`` ((H, W) bool, updated) already and those ``closed`` (not open at the
    start: never placed); when every open pixel was placed, all are candidates again."""
    score = time_map(time_model, state, geometry.pad, geometry.pad, height, width, clock).cpu().numpy()
    score = ranks_by_position(score, time_model.config.centre)
    if noise is not None:
        score = score + noise
    if (placed | closed).all():
        placed[:] = False
    excluded = placed | closed
    score[excluded] = np.inf
    flat = np.argsort(score, axis=None, kind="stable")[: min(count, int((~excluded).sum()))]
    placed.flat[flat] = True
    device = state.colors.device
    return torch.as_tensor(flat // width, device=device), torch.as_tensor(flat % width, device=device)


def choose_colors(
    color_model: WindowModel,
    canvas: Canvas,
    rows: torch.Tensor,
    cols: torch.Tensor,
    clocks: torch.Tensor,
    geometry: Geometry,
    log_weights: torch.Tensor,
    temperature: float,
    gumbel: torch.Tensor | None,
    avoid_current: bool,
) -> torch.Tensor:
    """(n,) int64 palette index for each pixel (rows, cols): ``argmax(logits / T + log_weights
    [+ gumbel])``, evaluated left to right, the present color at −inf with ``avoid_current``.
    The model reads at most :data:`MAP_BATCH` windows at a time, so that a map painter's refresh
    of any size (a forecast step's thousands of pixels) takes bounded memory."""
    first = geometry.pad - geometry.color_window // 2
    logits = torch.cat([
        color_model(canvas.inputs(color_model, rows[part] + first, cols[part] + first, clocks[part])).float()
        for part in (slice(start, start + MAP_BATCH) for start in range(0, len(rows), MAP_BATCH))
    ]) if len(rows) else torch.empty((0, PALETTE_SIZE), device=rows.device)
    scores = (logits / temperature if temperature > 0 else logits) + log_weights
    if avoid_current:
        current = canvas.colors[rows + geometry.pad, cols + geometry.pad].long()
        scores = scores.scatter(1, current[:, None], -math.inf)
    if gumbel is not None:
        scores = scores + gumbel
    return scores.argmax(dim=1)


@dataclass
class InferConfig:
    """How a painting run goes (see the module docstring for the algorithm, the groups, the
    order of random draws and the frames); each field is also an option of ``rplacevit infer``.

    init, dataset, at, canvas_size, region: the start canvas, as :func:`start_canvas` says.
    video (H.264 mp4, sides padded to even), gif, png (the final canvas): the optional outputs,
    in the official colors, written atomically when the run ends; a gif keeps its frames in
    memory. progress: placements/s on stderr (:mod:`rplacevit.progress`).
    """

    steps: int = option(help="pixels to place")
    init: _Path | np.ndarray | None = option(None, "start from an image (mapped to the nearest palette colors)", metavar="IMAGE")
    dataset: str | None = option(None, "start from the real canvas of a dataset at --at", metavar="DATASET")
    at: str | None = option(None, "with --dataset: the moment, ISO 8601 (UTC when no zone is given) or integer milliseconds",
                            metavar="TIME")
    canvas_size: tuple[int, int] | None = option(None, "width and height: of a white start (default 256 256), else the start "
                                                 "is cropped or padded with white to it, from its top-left corner",
                                                 parse=int, nargs=2, metavar=("W", "H"))
    region: tuple[int, int, int, int] | None = option(None, "paint on this part of the image or dataset canvas (x1, y1 exclusive)",
                                                      parse=parse_region, metavar="x0,y0,x1,y1")
    pixel_choice: str = option("auto", "where each placement goes: views, the original's (a random view, the time model's "
                               "soonest pixel in it); map, the pixels the time model's map of the whole canvas ranks soonest, "
                               "refreshed every --refresh placements; auto: map with a time model (it forecasts the canvas "
                               "twice as well: BENCHMARKS.md), else random pixels", choices=PIXEL_CHOICES)
    refresh: int = option(64, "with --pixel-choice map: placements between two maps", metavar="K")
    batch_views: int = option(64, "views per group, i.e. per forward pass of each model; a group places exactly what "
                              "placing its views one by one would (1: the original's loop, much slower)",
                              metavar="B")
    time_noise: float = option(0.1, "width of the uniform noise added to the time model's predictions (fractions of its horizon)")
    temperature: float = option(0.0, "0 places the most likely color; T > 0 samples from softmax(logits / T)")
    color_weights: dict | None = option(None, "palette index → weight multiplying the probabilities (0 excludes a color)",
                                        parse=parse_color_weights, metavar="27=0.75,...")
    avoid_current: bool = option(False, "never place a pixel's present color")
    allow_other_palette: bool = option(False, "paint on a dataset whose palette is not the one the models were trained on "
                                              "(2017's 16 colors against 2022's 32: the indices mean other colors)")
    interval_ms: int | None = option(None, "simulated ms between placements, for models that see ages (default: the mean interval "
                                     f"between the events of the dataset region with --dataset, else {DEFAULT_INTERVAL_MS:,})",
                                     metavar="MS")
    seed: int = option(0, "the run is a function of it")
    device: str = option("auto", "auto: cuda when there is one", choices=DEVICES)
    threads: int = option(DEFAULT_THREADS, "torch CPU threads; the count changes the floating-point result")
    video: str | None = option(None, "write the run as an H.264 mp4", flag="--output", short="-o", metavar="MP4")
    gif: str | None = option(None, "write the run as a gif", metavar="GIF")
    png: str | None = option(None, "write the final canvas as a PNG", metavar="PNG")
    frame_every: int = option(100, "a frame every K placements", metavar="K")
    fps: int = option(30, "frames per second of the mp4 and gif")
    scale: int = option(1, "enlarge each pixel K times in the pictures", metavar="K")
    progress: bool = True

    def __post_init__(self):
        for name, low in [("steps", 0), ("batch_views", 1), ("refresh", 1), ("frame_every", 1), ("fps", 1), ("scale", 1),
                          ("interval_ms", 1), ("seed", 0)]:
            value = getattr(self, name)
            if name == "interval_ms" and value is None:
                continue
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise ArgumentError(f"`{name}` = {value!r}: expected an integer >= {low}")
        for name in ("time_noise", "temperature"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ArgumentError(f"`{name}` = {value!r}: expected a finite number >= 0")
        for name, suffix in (("video", ".mp4"), ("gif", ".gif"), ("png", ".png")):
            check_suffix(getattr(self, name), suffix, f"`{name}`")
        if self.canvas_size is not None:
            self.canvas_size = tuple(self.canvas_size)
        if self.region is not None:
            self.region = tuple(self.region)
        if self.pixel_choice not in PIXEL_CHOICES:
            raise ArgumentError(f"`pixel_choice` = {self.pixel_choice!r}: expected one of {', '.join(PIXEL_CHOICES)}")
        check_start(self.init, self.dataset, self.at, self.canvas_size, self.region)
        color_weight_vector(self.color_weights, self.avoid_current)


def infer(color_model: _Path | WindowModel, time_model: _Path | WindowModel | None, config: InferConfig) -> Inference:
    """Places ``config.steps`` pixels on a start canvas and writes the run (see
    :class:`InferConfig` and the module docstring).

    color_model, time_model: checkpoint files (or model objects); without a time model each
    pixel is drawn uniformly (the original's "random pixel").

    Raises FileNotFoundError for a missing checkpoint or image, and ValueError for a checkpoint
    of the wrong kind (or none at all), an unreadable image, a canvas smaller than a model's
    window, or (ArgumentError) an argument out of range.
    """
    weights = color_weight_vector(config.color_weights, config.avoid_current)
    device = resolve_device(config.device)
    use_threads(config.threads)
    color_model = model_on(color_model, "color", device)[0]
    time_model = None if time_model is None else model_on(time_model, "time", device)[0]
    palette = trained_palette(color_model.config)
    if time_model is not None:
        check_palette(time_model.config, palette, config.allow_other_palette, "the color model")
    if config.dataset is not None:
        check_palette(color_model.config, open_history(config.dataset).palette, config.allow_other_palette, f"the dataset {config.dataset}")
    start = start_canvas(config.init, config.dataset, config.at, config.canvas_size, config.region, palette)
    height, width = start.shape
    geometry = Geometry.of(color_model.config, None if time_model is None else time_model.config)
    window = max(geometry.time_window, geometry.color_window)
    if height < window or width < window:
        raise ArgumentError(f"the canvas is {width}x{height} pixels, smaller than the models' {window}x{window} window")
    if config.video is not None or config.gif is not None:
        check_frames(1 + -(-config.steps // config.frame_every), height * config.scale, width * config.scale, config.gif,
                     f"{config.steps:,} placements with a frame every {config.frame_every:,}: choose a larger `frame_every`")

    pad = geometry.pad
    padded = torch.full((height + 2 * pad, width + 2 * pad), OUTSIDE, dtype=torch.uint8, device=device)
    canvas = padded[pad : pad + height, pad : pad + width]  # a view: placing into it updates the windows
    canvas.copy_(torch.from_numpy(start))
    sees_age = any("age" in model.config.inputs for model in (color_model, time_model) if model is not None)
    times = placed_times = None
    interval = clock0 = None
    if sees_age:
        start_t, clock0 = start_times(config.dataset, config.at, start.shape, config.canvas_size, config.region)
        interval = config.interval_ms or (mean_interval(config.dataset, config.region) if config.dataset else DEFAULT_INTERVAL_MS)
        times = torch.full(padded.shape, OFF_CANVAS, dtype=torch.int64, device=device)
        placed_times = times[pad : pad + height, pad : pad + width]
        placed_times.copy_(torch.from_numpy(start_t))
    previous = placed_previous = None
    if any("previous" in model.config.inputs for model in (color_model, time_model) if model is not None):
        previous = torch.full(padded.shape, OUTSIDE, dtype=torch.uint8, device=device)
        placed_previous = previous[pad : pad + height, pad : pad + width]
        placed_previous.copy_(torch.from_numpy(start_previous(config.dataset, config.at, start, config.canvas_size, config.region, palette)))
    state = Canvas(padded, times, previous)
    weights[len(palette):] = 0  # a smaller palette's model never places the indices it lacks
    log_weights = torch.from_numpy(weights).to(device).log()  # log 0 = −inf: an excluded color never wins
    rng = np.random.default_rng(config.seed)
    by_map = config.pixel_choice == "map" or (config.pixel_choice == "auto" and time_model is not None)
    if config.pixel_choice == "map" and time_model is None:
        raise ArgumentError("`pixel_choice` = 'map' ranks the pixels with the time model: give `time_model`")
    placed_once = np.zeros((height, width), dtype=bool)
    closed = ~start_open(config.dataset, config.at, start.shape, config.canvas_size, config.region)
    if by_map and closed.all() and config.steps > 0:
        raise ArgumentError(f"no pixel of the start canvas is open at `at` {config.at}: nothing to paint")
    placements = torch.empty((config.steps, 3), dtype=torch.int64, device=device)
    views = np.empty((config.steps, 2), dtype=np.int64)
    groups = []
    frames = 0

    with contextlib.ExitStack() as outputs:
        # The png is entered first, so it is renamed last: after the video and gif are complete.
        png_path = None if config.png is None else outputs.enter_context(atomic_path(config.png))
        add_frame = outputs.enter_context(frames_to(config.video, config.gif, config.fps))
        bar = outputs.enter_context(progress_bar("infer", "placement", config.progress, total=config.steps))

        def keep_frame() -> None:
            nonlocal frames
            if config.video is not None or config.gif is not None:
                add_frame(to_rgb(canvas.cpu().numpy(), None, config.scale, rgb_of(palette)))
                frames += 1

        began = time.perf_counter()
        keep_frame()
        placed = 0
        with torch.inference_mode():
            while placed < config.steps:
                noise = gumbel = None
                if by_map:
                    if config.time_noise > 0:
                        noise = rng.random((height, width), dtype=np.float32) * np.float32(config.time_noise)
                    clock = (placed + 1) * (interval or 0) + (clock0 or 0)
                    rows, cols = map_pixels(time_model, state, geometry, height, width, clock, min(config.refresh, config.steps - placed),
                                            noise, placed_once, closed)
                    n = len(rows)
                    group = torch.stack([rows, cols], dim=1).cpu().numpy()
                else:
                    missing = min(config.batch_views, config.steps - placed)
                    group = choose_views(rng, missing, height, width, geometry.grid, geometry.separation)
                    n = len(group)
                    if time_model is not None and config.time_noise > 0:
                        draws = rng.random((n, geometry.grid, geometry.grid), dtype=np.float32) * np.float32(config.time_noise)
                        noise = torch.from_numpy(draws).to(device)
                if config.temperature > 0:
                    gumbel = -torch.log(-torch.log(torch.from_numpy(rng.random((n, PALETTE_SIZE), dtype=np.float32)).to(device)))
                # Placement p happens at clock0 + (p + 1) · interval (0 when no model sees ages).
                clocks = torch.arange(placed + 1, placed + n + 1, device=device) * (interval or 0) + (clock0 or 0)
                if not by_map:
                    rows, cols = choose_pixels(time_model, state, torch.from_numpy(group).to(device), clocks, noise, geometry)
                colors = choose_colors(color_model, state, rows, cols, clocks, geometry, log_weights, config.temperature, gumbel,
                                       config.avoid_current)
                placements[placed : placed + n] = torch.stack([cols, rows, colors], dim=1)
                views[placed : placed + n] = group
                groups.append(n)
                # Slices of the group that end where a frame is due (1 + ceil(N / K) frames in all).
                first_due = config.frame_every - placed % config.frame_every
                done = 0
                for stop in [*range(first_due, n, config.frame_every), n]:
                    if placed_previous is not None:  # no pixel is placed twice in a group: views are apart, map pixels distinct
                        placed_previous[rows[done:stop], cols[done:stop]] = canvas[rows[done:stop], cols[done:stop]]
                    canvas[rows[done:stop], cols[done:stop]] = colors[done:stop].to(torch.uint8)
                    if placed_times is not None:
                        placed_times[rows[done:stop], cols[done:stop]] = clocks[done:stop]
                    if (placed + stop) % config.frame_every == 0 or placed + stop == config.steps:
                        keep_frame()
                    done = stop
                placed += n
                bar.update(n)
        final = canvas.cpu().numpy()
        seconds = time.perf_counter() - began

        if png_path is not None:
            import imageio.v3 as iio3

            iio3.imwrite(png_path, to_rgb(final, None, config.scale, rgb_of(palette)))

    return Inference(start, final, placements.cpu().numpy(), views, np.array(groups, dtype=np.int64), frames, seconds, interval)
