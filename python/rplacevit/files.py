"""Writing output files so that a failed or interrupted run never leaves one that looks complete."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

from ._core import ArgumentError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], replaceable: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` (same suffix, so writers pick the same format)
    and renames it to ``path`` only when the block completes; on error it is removed. The block
    may make it a file or a folder. A file at ``path`` is replaced, as any writer does; a folder
    only when ``replaceable(folder)`` says so (checked when the block completes), else the
    block fails with ValueError and nothing is replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        if path.is_dir() and not path.is_symlink():
            if replaceable is None or not replaceable(path):
                raise ValueError(f"{path} is a folder that may not be replaced: nothing written there")
            aside = temporary.with_name(temporary.name + ".old")
            os.rename(path, aside)
            os.rename(temporary, path)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(temporary, path)
    finally:
        if temporary.is_dir() and not temporary.is_symlink():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


def check_suffix(path: str | os.PathLike[str] | None, suffix: str, argument: str) -> None:
    """ArgumentError naming ``argument`` unless ``path`` (None: not asked for) ends in ``suffix``:
    checked before any work, since the writer is chosen by the suffix when the work is done."""
    if path is not None and Path(path).suffix.lower() != suffix:
        raise ArgumentError(f"{argument} {os.fspath(path)}: expected a {suffix} file")
