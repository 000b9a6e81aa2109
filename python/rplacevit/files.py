"""Writing output files so that a failed or interrupted run never leaves one that looks complete."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from ._core import ArgumentError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` (same suffix, so writers pick the same format)
    and renames it to ``path`` only when the block completes; on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def check_suffix(path: str | os.PathLike[str] | None, suffix: str, argument: str) -> None:
    """ArgumentError naming ``argument`` unless ``path`` (None: not asked for) ends in ``suffix``:
    checked before any work, since the writer is chosen by the suffix when the work is done."""
    if path is not None and Path(path).suffix.lower() != suffix:
        raise ArgumentError(f"{argument} {os.fspath(path)}: expected a {suffix} file")
