"""rplacevit: the r/place canvas history as a fast, exact dataset, and Vision Transformers that
learn how the canvas evolves.

The heavy work (CSV ingestion, SQLite partitions, canvas reconstruction) runs in Rust
(:mod:`rplacevit._core`); this package is the Python face of it.
"""

from pathlib import Path

from ._core import CANVAS_SIZE, OUTSIDE, PALETTE_HEX, PALETTE_RGB, WHITE, ArgumentError, DatasetError, FormatError
from ._core import OutputExistsError
from ._core import __version__
from .history import History, open
from .store import info, ingest, synth, verify

#: The sample shipped with the package: 102,670 real-derived events of the 128×128 region
#: x 250..377, y 375..502 over the first 24 hours of r/place 2022.
SAMPLE_CSV = Path(__file__).parent / "data" / "place2022_crop128_24h.csv.gz"


def __getattr__(name: str):
    # rplacevit.load_model without importing torch for everyone who imports rplacevit.
    if name == "load_model":
        from .models import load_model

        return load_model
    raise AttributeError(f"module 'rplacevit' has no attribute {name!r}")


__all__ = [
    "__version__",
    "ArgumentError",
    "CANVAS_SIZE",
    "OUTSIDE",
    "PALETTE_HEX",
    "PALETTE_RGB",
    "SAMPLE_CSV",
    "WHITE",
    "DatasetError",
    "FormatError",
    "OutputExistsError",
    "History",
    "info",
    "ingest",
    "load_model",
    "open",
    "synth",
    "verify",
]
