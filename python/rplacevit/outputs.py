"""Whether an output folder is rplacevit's own: the one rule every command that writes a folder
follows, decided in one place (the core's ``output_folder`` module, which ``ingest`` uses too).

A folder is a command's own only when it holds the marker :data:`MARKER` (``.rplacevit.json``),
written when the command created it, naming the kind of output (:data:`KINDS`: ``dataset``,
``run``, ``report``, ``clusters``, ``demo``, ``download``, ``forecast``). Nothing at the path or
an empty folder may be written; a folder of the command's kind only as its own flag allows
(``force``, ``resume`` for a training run); any other folder — unmarked, of another kind — never,
with or without ``force``: :class:`OutputExistsError` (a usage error: exit status 2) names it and
says why. Outputs made before the marker existed are recognised by their whole set of files,
never by one name.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from ._core import OUTPUT_KINDS as KINDS
from ._core import OUTPUT_MARKER as MARKER
from ._core import OutputExistsError, check_output, mark_output
from .files import atomic_path

__all__ = ["KINDS", "MARKER", "OutputExistsError", "check", "create", "staged_folder"]


def check(path: str | os.PathLike[str], kind: str, allowed: bool, flag: str = "force=True") -> bool:
    """False when nothing is at ``path`` (or an empty folder), True when an output of ``kind`` is
    there and ``allowed`` (the command's own flag, named ``flag`` in the refusal; ``""`` for a
    command that always replaces its own output); else :class:`OutputExistsError`."""
    return check_output(os.fspath(path), kind, allowed, flag)


def create(path: str | os.PathLike[str], kind: str, allowed: bool, flag: str = "force=True") -> Path:
    """For a folder written in place (a training run, a download): checks ``path`` by the rule,
    then creates it (and its missing parents) and marks it; returns it."""
    path = Path(path)
    check(path, kind, allowed, flag)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MARKER).exists():
        mark_output(os.fspath(path), kind)
    return path


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike[str], kind: str, allowed: bool, flag: str = "force=True") -> Iterator[Path]:
    """Yields a new, marked folder beside ``path`` to write an output of ``kind`` into, published
    at ``path`` only when the block completes (removed on error). The rule is checked before the
    block (so a doomed run does no work) and again just before ``path`` is replaced."""
    check(path, kind, allowed, flag)
    with atomic_path(path, replaceable=lambda found: check(found, kind, allowed, flag) or True) as staging:
        staging.mkdir()
        mark_output(os.fspath(staging), kind)
        yield staging
