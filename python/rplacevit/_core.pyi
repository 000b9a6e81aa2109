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
