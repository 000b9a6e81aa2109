"""Type stubs of the Rust extension. Timestamps are milliseconds since the Unix epoch (UTC);
colors are palette indices 0..31."""

import os
from typing import Union

_Path = Union[str, os.PathLike[str]]

class FormatError(ValueError):
    """An input file is not in the official r/place 2022 CSV format (the message names file and line)."""

class DatasetError(ValueError):
    """A dataset folder is missing, incomplete, damaged, or in the way."""

PALETTE_RGB: list[tuple[int, int, int]]
PALETTE_HEX: list[str]
OUTSIDE: int
WHITE: int
CANVAS_SIZE: int

def ingest(
    inputs: list[_Path], out: _Path, partition_size: int = 1_000_000, on_error: str = "fail", force: bool = False, progress: bool = False
) -> dict: ...
def dataset_info(path: _Path) -> dict: ...
def synth(out: _Path, rows: int, seed: int = 0, progress: bool = False) -> dict: ...

import numpy as np
import numpy.typing as npt

class History:
    """Reader of one dataset folder (memory-mapped). Ids are int64 event ids (time order)."""

    def __init__(self, path: _Path) -> None: ...
    def __len__(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def time_range(self) -> tuple[int, int]: ...
    def canvas_at(self, t_ms: int) -> npt.NDArray[np.uint8]: ...
    def canvas_before(self, event_id: int) -> npt.NDArray[np.uint8]: ...
    def windows(self, event_ids: npt.NDArray[np.int64], size: int = 64) -> npt.NDArray[np.uint8]: ...
    def color_targets(self, event_ids: npt.NDArray[np.int64], mode: str = "placed", horizon_ms: int = 60_000) -> npt.NDArray[np.int64]: ...
    def time_targets(self, event_ids: npt.NDArray[np.int64], size: int = 16, horizon_ms: int = 3_600_000) -> npt.NDArray[np.float32]: ...
    def select(
        self, x0: int | None = None, y0: int | None = None, x1: int | None = None, y1: int | None = None, t0: int | None = None, t1: int | None = None
    ) -> npt.NDArray[np.int64]: ...
