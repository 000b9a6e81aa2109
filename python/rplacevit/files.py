"""Writing output files so that a failed or interrupted run never leaves one that looks complete."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

from ._core import ArgumentError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], replaceable: Callable[[Path], bool] | None = None, keep_suffix: bool = True) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` and renames it to ``path`` only when the block
    completes; on error it is removed. Its name is ``.NAME.partial-PID`` plus, with
    ``keep_suffix``, ``path``'s suffix (for writers that pick the format by it); without, no
    glob of the suffix (``*.parquet``) ever takes a partial file for a finished one. What a
    killed run (a process that no longer exists) left under such a name is removed first. The
    block may make it a file or a folder. A file at ``path`` is replaced, as any writer does; a
    folder only when ``replaceable(folder)`` says so (checked when the block completes), else
    the block fails with ValueError and nothing is replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.stem if keep_suffix else path.name
    for prefix in {f".{path.stem}.partial-", f".{path.name}.partial-"}:  # the suffix kept or not (as written before)
        remove_dead_partials(path.parent, prefix)
    temporary = path.with_name(f".{stem}.partial-{os.getpid()}{path.suffix if keep_suffix else ''}")
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


def remove_dead_partials(folder: Path, prefix: str) -> None:
    """Removes the entries of ``folder`` named ``PREFIX<pid>…`` whose process is gone: what a
    killed writer left. A live process's (another run writing the same output) is kept, and so
    is one whose pid a new process took since (it is left, never wrongly removed)."""
    try:
        entries = [entry for entry in os.scandir(folder) if entry.name.startswith(prefix)]
    except OSError:
        return
    for entry in entries:
        digits = entry.name[len(prefix):]
        digits = digits[: len(digits) - len(digits.lstrip("0123456789"))]
        if not digits or int(digits) == os.getpid() or process_exists(int(digits)):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a number that cannot be checked: keep its file
    return True


def check_suffix(path: str | os.PathLike[str] | None, suffix: str, argument: str) -> None:
    """ArgumentError naming ``argument`` unless ``path`` (None: not asked for) ends in ``suffix``:
    checked before any work, since the writer is chosen by the suffix when the work is done."""
    if path is not None and Path(path).suffix.lower() != suffix:
        raise ArgumentError(f"{argument} {os.fspath(path)}: expected a {suffix} file")
