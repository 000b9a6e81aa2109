"""Type stubs of the Rust extension. Timestamps are milliseconds since the Unix epoch (UTC);
colors are palette indices 0..31. The binding has no defaults: `rplacevit.history` and
`rplacevit.store` hold them, with the documentation. `tests/test_stubs.py` checks this file
against the extension, name by name and argument by argument."""

import os
from typing import Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, os.PathLike[str]]

class FormatError(ValueError):
    """An input file is not in the official r/place 2022 CSV format (the message names file and line)."""

class DatasetError(ValueError):
    """A dataset folder is missing, incomplete, damaged, or in the way."""

class ArgumentError(ValueError):
    """A bad argument from the caller (not from a file): what the command line reports as a usage error."""

__version__: str
PALETTE_RGB: list[tuple[int, int, int]]
PALETTE_HEX: list[str]
OUTSIDE: int
WHITE: int
CANVAS_SIZE: int
PARTITION_SIZE: int
MIN_PARTITION_SIZE: int
MAX_RECTANGLE_PIXELS: int
ON_ERROR: list[str]
COLOR_TARGETS: list[str]

def ingest(
    inputs: list[_Path], out: _Path, partition_size: int, on_error: str, force: bool, progress: bool, max_rectangle_pixels: int
) -> dict: ...
def dataset_info(dataset: _Path) -> dict: ...
def verify(dataset: _Path, progress: bool) -> list[str]: ...
def synth(out: _Path, rows: int, seed: int, progress: bool) -> dict: ...

class History:
    """Reader of one dataset folder (memory-mapped). Ids are int64 event ids (time order)."""

    def __init__(self, dataset: _Path) -> None: ...
    def __len__(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def time_range(self) -> tuple[int, int]: ...
    @property
    def generation(self) -> str: ...
    def columns(self) -> dict[str, np.ndarray]: ...
    def canvas_at(self, t_ms: int) -> npt.NDArray[np.uint8]: ...
    def canvas_before(self, event_id: int) -> npt.NDArray[np.uint8]: ...
    def windows(self, event_ids: npt.NDArray[np.int64], size: int) -> npt.NDArray[np.uint8]: ...
    def color_targets(self, event_ids: npt.NDArray[np.int64], mode: str, horizon_ms: int) -> npt.NDArray[np.int64]: ...
    def time_targets(self, event_ids: npt.NDArray[np.int64], size: int, horizon_ms: int) -> npt.NDArray[np.float32]: ...
    def recent_colors(self, event_ids: npt.NDArray[np.int64], size: int, duration_ms: int) -> npt.NDArray[np.int64]: ...
    def last_change_times(self, event_ids: npt.NDArray[np.int64], size: int) -> npt.NDArray[np.int64]: ...
    def select(
        self, x0: int | None, y0: int | None, x1: int | None, y1: int | None, t0: int | None, t1: int | None
    ) -> npt.NDArray[np.int64]: ...
