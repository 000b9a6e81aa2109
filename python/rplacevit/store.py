"""Dataset folders: build one from the official CSV (:func:`ingest`), describe one
(:func:`info`), check every stored byte of one (:func:`verify`), and write synthetic histories
in the official format (:func:`synth`)."""

from __future__ import annotations

import os
import sys
from typing import Iterable, Union

from . import _core
from ._core import MAX_RECTANGLE_PIXELS, MIN_PARTITION_SIZE, ON_ERROR, PARTITION_SIZE

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["MAX_RECTANGLE_PIXELS", "MIN_PARTITION_SIZE", "ON_ERROR", "PARTITION_SIZE", "info", "ingest", "synth", "verify"]


def ingest(
    inputs: PathLike | Iterable[PathLike],
    out: PathLike,
    partition_size: int = PARTITION_SIZE,
    on_error: str = "fail",
    force: bool = False,
    progress: bool | None = None,
    max_rectangle_pixels: int = MAX_RECTANGLE_PIXELS,
) -> dict:
    """Ingests official r/place 2022 CSV files (plain, ``.gz`` or ``.gzip``) into the dataset
    folder ``out``.

    Events are sorted by timestamp (ties keep the order of ``inputs``, then of lines) and split
    into SQLite partitions of ``partition_size`` events. ``on_error="fail"`` stops at the first
    bad row (:class:`rplacevit.FormatError` naming file and line; nothing is written);
    ``"skip"`` keeps the good rows and lists the bad ones in ``out/rejects.csv``. An existing
    dataset is replaced only with ``force=True``. ``progress`` (default: when stderr is a
    terminal) draws a progress bar on stderr. Ctrl-C stops the ingest and leaves no ``out``.
    ``partition_size`` is at least :data:`MIN_PARTITION_SIZE` (each partition stores a whole
    canvas snapshot); the moderation rectangles of all inputs may cover ``max_rectangle_pixels``
    pixels together (default :data:`MAX_RECTANGLE_PIXELS`, far above the official data's), so a
    few hostile rows cannot become hundreds of millions of events. A second ingest to the same ``out`` fails at once while one
    runs; the disk must hold the estimated dataset size before anything is written.

    Returns the summary: ``events``, ``rows``, ``rejected_rows``, ``users``, ``partitions``,
    ``first_timestamp_ms``/``last_timestamp_ms`` (ms since the Unix epoch, UTC), canvas size,
    ``moderation_events``, per-file ``sources`` and ``phase_seconds``.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if progress is None:
        progress = sys.stderr.isatty()
    return _core.ingest([os.fspath(p) for p in inputs], os.fspath(out), partition_size, on_error, force, progress,
                        max_rectangle_pixels)


def info(dataset: PathLike) -> dict:
    """The summary of a dataset folder: ``events``, ``users``, ``partitions``,
    ``first_timestamp_ms``, ``last_timestamp_ms``, ``canvas_width``, ``canvas_height``,
    ``moderation_events``, ``rejected_rows`` (and ``rows``, ``partition_size``).
    Raises :class:`rplacevit.DatasetError` for a missing or incomplete dataset."""
    return _core.dataset_info(os.fspath(dataset))


def verify(dataset: PathLike, progress: bool | None = None) -> list[str]:
    """Checks every byte of a dataset folder against the checksums its ingest stored, each
    SQLite file with SQLite's integrity check, and the files against each other (partitions and
    snapshots against the event columns, the tile index against a replay); returns every
    problem as ``"FILE: reason"``, none for an intact dataset. Reads the whole dataset (about
    1 GB/s here). Raises :class:`rplacevit.DatasetError` when there is no dataset to check."""
    if progress is None:
        progress = sys.stderr.isatty()
    return _core.verify(os.fspath(dataset), progress)


def synth(out: PathLike, rows: int, seed: int = 0, progress: bool | None = None) -> dict:
    """Writes ``rows`` data rows of a realistic synthetic history in the official 2022 format to
    ``out`` (gzip when it ends in ``.gz``/``.gzip``); deterministic for a ``seed``. Moderation
    rectangles make a history's events a little more than its rows."""
    if progress is None:
        progress = sys.stderr.isatty()
    return _core.synth(os.fspath(out), rows, seed, progress)

