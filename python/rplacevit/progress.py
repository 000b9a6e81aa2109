"""Progress on stderr for the long commands (train, infer, evaluate, timelapse, demo, and the
core's ingest, verify and synth): a tqdm bar on a terminal; elsewhere (a log file, a notebook,
CI) one plain line every :data:`LINE_INTERVAL_S` seconds, so that a long run is never silent
for minutes. ``progress=False`` (the commands' ``--quiet``) shows nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable

from tqdm import tqdm

from . import _core

#: Seconds between two progress lines when stderr is not a terminal (the core's, for its
#: ingest, verify and synth).
LINE_INTERVAL_S = _core.PROGRESS_LINE_INTERVAL_S

#: A line without a bar: "train color: 940/3000 step (31%), 14.4 step/s, 01:05 elapsed, ETA 02:23, loss=1.17".
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {rate_fmt}, {elapsed} elapsed, ETA {remaining}{postfix}"


class _Lines:
    """stderr as tqdm sees it off a terminal: a refresh becomes one line (carriage returns
    dropped) when :data:`LINE_INTERVAL_S` have passed since the last line, else it is held
    back; the bar's close (the newline tqdm ends with) writes the last state held back, so a
    run always ends with its totals."""

    def __init__(self):
        self.last = time.monotonic()
        self.held = ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.held = line
            if time.monotonic() - self.last < LINE_INTERVAL_S:
                return
        elif not self.held or "\n" not in text:
            return
        self.last = time.monotonic()
        sys.stderr.write(self.held + "\n")
        self.held = ""

    def flush(self) -> None:
        sys.stderr.flush()


def bar(desc: str, unit: str, progress: bool = True, *, total: int | None = None, iterable: Iterable | None = None,
        initial: int = 0) -> tqdm:
    """A tqdm bar over ``iterable`` or up to ``total`` (use it as tqdm's), drawn as the module
    docstring says."""
    if not progress or sys.stderr.isatty():
        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, disable=not progress)
    return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, file=_Lines(), mininterval=1.0, bar_format=LINE_FORMAT)
