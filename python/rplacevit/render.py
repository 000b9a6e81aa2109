"""Pictures of the canvas: a PNG at one moment, and a timelapse video (mp4, gif) through time."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import PALETTE_HEX, PALETTE_RGB, ArgumentError
from .files import atomic_path, check_suffix
from .history import History

#: How OUTSIDE (32) is drawn: dark grey.
OUTSIDE_RGB = (40, 40, 40)


def palette_lookup(palette: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """(33, 3) uint8: palette index → RGB for ``palette`` (None: the 2022 one), black for the
    indices a smaller palette lacks, and :data:`OUTSIDE_RGB` for OUTSIDE."""
    colors = list(PALETTE_RGB if palette is None else palette)
    if len(colors) > len(PALETTE_RGB):
        raise ArgumentError(f"a palette of {len(colors)} colors: at most {len(PALETTE_RGB)}")
    return np.array(colors + [(0, 0, 0)] * (len(PALETTE_RGB) - len(colors)) + [OUTSIDE_RGB], dtype=np.uint8)

#: The largest picture rendered: 2²⁸ pixels (768 MiB of RGB), the whole 2000×2000 canvas at
#: scale 8.
MAX_IMAGE_PIXELS = 1 << 28

#: The most frames a timelapse or a painting may plan: an hour of video at 30 fps, and then some.
MAX_FRAMES = 200_000
#: The most bytes a gif's frames may take: they are kept in memory until the end.
MAX_GIF_BYTES = 1 << 31


def check_frames(frames: int, height: int, width: int, gif: object, what: str) -> None:
    """ArgumentError before any work when ``frames`` frames of ``height``×``width`` pixels are
    more than :data:`MAX_FRAMES`, or, with a ``gif``, more than :data:`MAX_GIF_BYTES` of RGB
    kept in memory; ``what`` says how to make fewer (e.g. "choose a longer interval")."""
    if frames > MAX_FRAMES:
        raise ArgumentError(f"{frames:,} frames are more than {MAX_FRAMES:,}: {what}")
    if gif is not None and frames * height * width * 3 > MAX_GIF_BYTES:
        raise ArgumentError(f"a gif of {frames:,} frames of {width}×{height} pixels would keep {frames * height * width * 3:,} bytes "
                            f"in memory, more than {MAX_GIF_BYTES:,}: {what}, a smaller region or scale, or no gif")


def padded_hex(palette: list[str] | None = None) -> list[str]:
    """``palette`` (``#RRGGBB`` by index; None: 2022's) padded to the 32 indices with black."""
    colors = list(PALETTE_HEX if palette is None else palette)
    return colors + ["#000000"] * (len(PALETTE_HEX) - len(colors))


def to_rgb(canvas: np.ndarray, region: tuple[int, int, int, int] | None = None, scale: int = 1,
           palette: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """(H, W) palette indices → (h·scale, w·scale, 3) uint8 RGB in the colors of ``palette``
    (a dataset's :attr:`~rplacevit.History.palette_rgb`; None: 2022's); at most
    :data:`MAX_IMAGE_PIXELS` pixels."""
    if region is not None:
        x0, y0, x1, y1 = region
        height, width = canvas.shape
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise ArgumentError(f"region {x0},{y0},{x1},{y1} is not inside the {width}x{height} canvas")
        canvas = canvas[y0:y1, x0:x1]
    if scale < 1:
        raise ArgumentError(f"scale must be at least 1, not {scale}")
    height, width = canvas.shape
    if height * width * scale * scale > MAX_IMAGE_PIXELS:
        largest = max(1, int((MAX_IMAGE_PIXELS / (height * width)) ** 0.5))
        raise ArgumentError(f"scale {scale} makes a {width * scale:,}×{height * scale:,}-pixel picture, more than "
                            f"{MAX_IMAGE_PIXELS:,} pixels: at most scale {largest} for this {width}×{height} canvas")
    rgb = palette_lookup(palette)[canvas]
    if scale > 1:
        rgb = rgb.repeat(scale, axis=0).repeat(scale, axis=1)
    return rgb


def render(history: History, t_ms: int, out: str | os.PathLike[str], region=None, scale: int = 1) -> Path:
    """Writes the canvas at ``t_ms`` (every event with timestamp ≤ t_ms) as a PNG."""
    import imageio.v3 as iio

    check_suffix(out, ".png", "output")
    rgb = to_rgb(history.canvas_at(t_ms), region, scale, history.palette_rgb)
    with atomic_path(out) as temporary:
        iio.imwrite(temporary, rgb)
    return Path(out)


class Video:
    """An H.264 mp4 being written (imageio + ffmpeg), one RGB frame at a time; close it."""

    def __init__(self, path: str | os.PathLike[str], fps: int):
        import imageio.v2 as iio

        self._writer = iio.get_writer(os.fspath(path), fps=fps, codec="libx264", quality=8, pixelformat="yuv420p", macro_block_size=1)

    def add(self, rgb: np.ndarray) -> None:
        """Appends an (h, w, 3) uint8 frame; yuv420p needs even sides, so an odd side gets one
        dark row or column."""
        self._writer.append_data(np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0))))

    def close(self) -> None:
        self._writer.close()


@contextlib.contextmanager
def frames_to(video: str | os.PathLike[str] | None, gif: str | os.PathLike[str] | None, fps: int) -> Iterator[Callable[[np.ndarray], None]]:
    """Yields ``add(rgb)``, which appends an (h, w, 3) uint8 frame to the H.264 mp4 ``video``
    (streamed) and to the gif ``gif`` (kept in memory until the end); either may be None. Both
    files are finished (the gif written, the video closed) before either is renamed into place,
    and only when the block completes, so a failed run leaves neither."""
    with contextlib.ExitStack() as stack:
        writer = None
        if video is not None:
            writer = stack.enter_context(contextlib.closing(Video(stack.enter_context(atomic_path(video)), fps)))
        gif_path = None if gif is None else stack.enter_context(atomic_path(gif))
        kept = []

        def add(rgb: np.ndarray) -> None:
            if writer is not None:
                writer.add(rgb)
            if gif_path is not None:
                kept.append(rgb)

        yield add
        if gif_path is not None:
            import imageio.v3 as iio3

            iio3.imwrite(gif_path, np.stack(kept), duration=1000 / fps, loop=0)
        if writer is not None:
            writer.close()  # ffmpeg's failure, if any, comes before the renames


#: Height in pixels of the strip a clock stamp adds below a frame.
CLOCK_HEIGHT = 14


def with_clock(rgb: np.ndarray, t_ms: int) -> np.ndarray:
    """``rgb`` with a dark strip below it that reads ``t_ms`` in ISO 8601 (UTC), cut to the
    frame's width (Pillow's built-in font: nothing to fetch)."""
    from PIL import Image, ImageDraw

    from .times import format_time

    strip = Image.new("RGB", (rgb.shape[1], CLOCK_HEIGHT), (40, 40, 40))
    ImageDraw.Draw(strip).text((2, 1), format_time(t_ms), fill=(255, 255, 255))
    return np.concatenate([rgb, np.asarray(strip)], axis=0)


def frame_times(history: History, every_ms: int) -> list[int]:
    """Frame times from the first to the last event (both included), ``every_ms`` apart; at most
    :data:`MAX_FRAMES` of them."""
    start, stop = history.time_range
    if every_ms <= 0:
        raise ArgumentError("the frame interval must be positive")
    frames = (stop - start) // every_ms + 2
    check_frames(frames, 0, 0, None, f"a frame every {every_ms:,} ms over the {stop - start:,} ms of the history: choose a longer interval")
    return [*range(start, stop, every_ms), stop]


def timelapse(
    history: History,
    out: str | os.PathLike[str],
    every_ms: int = 30 * 60_000,
    fps: int = 30,
    gif: str | os.PathLike[str] | None = None,
    region=None,
    scale: int = 1,
    progress: bool = True,
    clock: bool = False,
) -> int:
    """Writes an H.264 mp4 (and optionally a gif) of the canvas every ``every_ms`` through the
    history; returns the number of frames. The mp4 is streamed; a gif keeps its frames in memory
    until the end, so keep gifs small (``region``, ``every_ms``). ``clock`` stamps each frame
    with its time (:func:`with_clock`)."""
    from .progress import bar

    check_suffix(out, ".mp4", "output")
    check_suffix(gif, ".gif", "gif")
    if fps < 1 or scale < 1:
        raise ArgumentError(f"fps = {fps}, scale = {scale}: both must be at least 1")
    # A bad region fails before the video starts, and so does a gif too large to keep.
    first = to_rgb(history.canvas_at(history.time_range[0]), region, scale, history.palette_rgb)
    times = frame_times(history, every_ms)
    check_frames(len(times), first.shape[0] + (CLOCK_HEIGHT if clock else 0), first.shape[1], gif, "choose a longer interval")
    with frames_to(out, gif, fps) as add:
        for t in bar("timelapse", "frame", progress, iterable=times):
            rgb = to_rgb(history.canvas_at(t), region, scale, history.palette_rgb)
            add(with_clock(rgb, t) if clock else rgb)
    return len(times)
