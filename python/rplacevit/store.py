"""Dataset folders: build one from the official CSV (:func:`ingest`), describe one
(:func:`info`), check every stored byte of one (:func:`verify`), and write synthetic histories
in the official format (:func:`synth`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Union

from . import _core
from ._core import ArgumentError
from ._core import KNOWN_HEADERS, MAX_RECTANGLE_PIXELS, MIN_PARTITION_SIZE, ON_ERROR, PARTITION_SIZE, YEARS

#: The year ``synth``, ``download`` and ``get`` take unless told: the 2022 event, the project's own.
DEFAULT_YEAR = 2022

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["KNOWN_HEADERS", "MAX_RECTANGLE_PIXELS", "MIN_PARTITION_SIZE", "ON_ERROR", "PARTITION_SIZE", "YEARS", "info", "ingest", "synth",
           "verify"]


def ingest(
    inputs: PathLike | Iterable[PathLike],
    out: PathLike,
    partition_size: int = PARTITION_SIZE,
    on_error: str = "fail",
    force: bool = False,
    progress: bool = True,
    max_rectangle_pixels: int = MAX_RECTANGLE_PIXELS,
    year: int | None = None,
    dedupe: bool = False,
) -> dict:
    """Ingests official r/place CSV files (plain, ``.gz`` or ``.gzip``) into the dataset
    folder ``out``.

    The year is told by the files' headers (:data:`KNOWN_HEADERS`; all inputs of one year);
    ``year`` forces it for a copy whose header differs (its first line is skipped, its rows must
    be in that year's column order). 2023's centred coordinates are stored shifted to start at 0
    (``canvas_origin`` in the summary and :attr:`rplacevit.History.canvas_origin`: official =
    stored + origin). ``dedupe=True`` drops each event equal to an earlier one of its
    millisecond (same user, pixel, color; the official 2022 file repeats some rows exactly) and
    counts them in ``duplicates_dropped``; by default they are kept, as the file has them.

    Events are sorted by timestamp (ties keep the order of ``inputs``, then of lines) and split
    into SQLite partitions of ``partition_size`` events. ``on_error="fail"`` stops at the first
    bad row (:class:`rplacevit.FormatError` naming file and line; nothing is written);
    ``"skip"`` keeps the good rows and lists the bad ones in ``out/rejects.csv``. An existing
    dataset is replaced only with ``force=True``. ``progress`` shows it on stderr (a bar
    on a terminal, else a line every 10 s; see :mod:`rplacevit.progress`). Ctrl-C stops the ingest and leaves no ``out``.
    ``partition_size`` is at least :data:`MIN_PARTITION_SIZE` (each partition stores a whole
    canvas snapshot); the moderation rectangles of all inputs may cover ``max_rectangle_pixels``
    pixels together (default :data:`MAX_RECTANGLE_PIXELS`, far above the official data's), so a
    few hostile rows cannot become hundreds of millions of events. A second ingest to the same ``out`` fails at once while one
    runs; the disk must hold the estimated dataset size before anything is written.

    Returns the summary: ``events``, ``rows``, ``rejected_rows``, ``users``, ``partitions``,
    ``first_timestamp_ms``/``last_timestamp_ms`` (ms since the Unix epoch, UTC), canvas size,
    ``year``, ``canvas_origin``, ``moderation_events``, ``duplicates_dropped``, per-file ``sources`` and ``phase_seconds``.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return _core.ingest([os.fspath(p) for p in input_files(inputs)], os.fspath(out), partition_size, on_error, force, progress,
                        max_rectangle_pixels, year, dedupe)


#: What an input folder's data files end with.
INPUT_SUFFIXES = (".csv", ".csv.gz", ".csv.gzip")


def input_files(inputs: Iterable[PathLike]) -> list[Path]:
    """The inputs, each folder replaced by its data files (:data:`INPUT_SUFFIXES`, by name;
    hidden files and unfinished ``.part`` downloads left out). A folder that ``rplacevit
    download`` wrote is checked first: every file its manifest lists must be there with the
    size and sha256 it was downloaded with (ArgumentError naming the file otherwise)."""
    files: list[Path] = []
    for given in map(Path, inputs):
        if not given.is_dir():
            files.append(given)
            continue
        found = sorted(p for p in given.iterdir() if p.is_file() and p.name.endswith(INPUT_SUFFIXES) and not p.name.startswith("."))
        if not found:
            raise ArgumentError(f"{given}: no {', '.join(INPUT_SUFFIXES)} file in it")
        check_downloads(given, found)
        files += found
    return files


def check_downloads(folder: Path, files: list[Path]) -> None:
    """ArgumentError naming the file unless ``folder`` holds a complete download: no ``.part``
    left, every file its download manifest lists present with its recorded size and sha256
    (read in parallel: hashing releases the GIL), and not the combined 2022 file beside the
    parts it repeats."""
    import concurrent.futures

    from .download import COMBINED_FILES, MANIFEST, read_manifest, sha256_of

    unfinished = sorted(folder.glob("*.part"))
    if unfinished:
        raise ArgumentError(f"{unfinished[0]}: an unfinished download: run rplacevit download again to complete it, or remove it")
    names = {path.name for path in files}
    combined = names & set(COMBINED_FILES.values())
    if combined and len(names) > 1:
        raise ArgumentError(f"{folder}: holds {combined.pop()} and other parts too, which would ingest their events twice: "
                            "keep one or the other")
    manifest = read_manifest(folder)
    missing = sorted(name for name in set(manifest) - names if name.endswith(INPUT_SUFFIXES))
    if missing:
        raise ArgumentError(f"{folder / missing[0]}: listed in {folder / MANIFEST} but missing: download it again")
    listed = [path for path in files if path.name in manifest]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for path, (size, digest) in zip(listed, pool.map(sha256_of, listed)):
            record = manifest[path.name]
            if (size, digest) != (record["bytes"], record["sha256"]):
                raise ArgumentError(f"{path}: {size:,} bytes with sha256 {digest[:12]}…, not what {folder / MANIFEST} recorded "
                                    f"({record['bytes']:,} bytes, {record['sha256'][:12]}…): download it again "
                                    "(rplacevit download --verify)")


def info(dataset: PathLike) -> dict:
    """The summary of a dataset folder: ``events``, ``users``, ``partitions``,
    ``first_timestamp_ms``, ``last_timestamp_ms``, ``canvas_width``, ``canvas_height``, ``year``,
    ``canvas_origin``, ``moderation_events``, ``rejected_rows`` (and ``rows``, ``partition_size``).
    Raises :class:`rplacevit.DatasetError` for a missing or incomplete dataset."""
    return _core.dataset_info(os.fspath(dataset))


def verify(dataset: PathLike, progress: bool = True) -> list[str]:
    """Checks every byte of a dataset folder against the checksums its ingest stored, each
    SQLite file with SQLite's integrity check, and the files against each other (partitions and
    snapshots against the event columns, the tile index against a replay); returns every
    problem as ``"FILE: reason"``, none for an intact dataset. Reads the whole dataset (about
    1 GB/s here). Raises :class:`rplacevit.DatasetError` when there is no dataset to check."""
    return _core.verify(os.fspath(dataset), progress)


def synth(out: PathLike, rows: int, seed: int = 0, progress: bool = True, year: int = DEFAULT_YEAR) -> dict:
    """Writes ``rows`` data rows of a realistic synthetic history of r/place ``year``
    (:data:`YEARS`) in that year's official format to ``out`` (gzip when it ends in
    ``.gz``/``.gzip``); deterministic for a ``seed``. The canvas and the palette grow when the
    year's did (2023: centred coordinates, from a 1000×1000 square in six steps, 8 colors to 32);
    moderation rectangles (and in 2023 circles) make a history's events a little more than its
    rows; 2017 has none."""
    return _core.synth(os.fspath(out), rows, seed, progress, year)

