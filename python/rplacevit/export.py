"""Events as parquet, for DuckDB, polars, pandas and Spark users: ``rplacevit export``.

The file is written by pyarrow (the optional extra ``rplacevit[parquet]``), one row group per
block of events in time order, read a block at a time from the memory-mapped columns, so the
memory it takes does not grow with the dataset. It appears under its name only when complete.
"""

from __future__ import annotations

import os
import time

import numpy as np

from . import history as history_module
from ._core import ArgumentError
from .files import atomic_path, check_suffix
from .progress import bar as progress_bar

#: Events per row group: about 20 MB of columns before compression.
ROW_GROUP_EVENTS = 1_000_000

#: The columns written, in order, with what each holds.
COLUMNS = {
    "timestamp": "the event's time, a UTC timestamp in milliseconds",
    "user_id": "the dense user id (numbered by first event; the original hash is in meta.sqlite's users table)",
    "color": "the palette index (the dataset's palette: History.palette, meta.sqlite's palette table)",
    "color_hex": "the color as #RRGGBB",
    "x": "the column in the year's official coordinates (2023: -1500..1499)",
    "y": "the row in the year's official coordinates (2023: -1000..999)",
}


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ArgumentError("rplacevit export writes parquet with pyarrow: pip install 'rplacevit[parquet]'") from None
    return pyarrow


def export(dataset, out, region: tuple[int, int, int, int] | None = None, t0: int | None = None, t1: int | None = None,
           row_group_events: int = ROW_GROUP_EVENTS, progress: bool = True) -> dict:
    """Writes the events of ``dataset`` (a folder or a :class:`rplacevit.History`) with
    ``t0 ≤ timestamp < t1`` (ms; None: unbounded) whose pixel lies in ``region`` (``x0, y0, x1,
    y1`` in stored coordinates, x1 and y1 exclusive, like every region of this package) to the
    parquet file ``out``: the columns of :data:`COLUMNS`, in time order, a row group per
    ``row_group_events`` events read. Returns ``{"path", "events", "row_groups", "seconds"}``."""
    pa = _pyarrow()
    check_suffix(out, ".parquet", "the output")
    if row_group_events < 1:
        raise ArgumentError(f"row_group_events must be at least 1, not {row_group_events}")
    h = dataset if isinstance(dataset, history_module.History) else history_module.open(dataset)
    columns = h.events()
    timestamps = columns["timestamp"]
    first = 0 if t0 is None else int(np.searchsorted(timestamps, t0, "left"))
    end = len(h) if t1 is None else int(np.searchsorted(timestamps, t1, "left"))
    origin_x, origin_y = h.canvas_origin
    coordinate = pa.int16() if max(h.canvas_width, h.canvas_height) + abs(min(origin_x, origin_y)) < 2**15 else pa.int32()
    palette = pa.array(h.palette, pa.string())
    schema = pa.schema([
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("user_id", pa.uint32(), nullable=False),
        pa.field("color", pa.uint8(), nullable=False),
        pa.field("color_hex", pa.dictionary(pa.uint8(), pa.string()), nullable=False),
        pa.field("x", coordinate, nullable=False),
        pa.field("y", coordinate, nullable=False),
    ], metadata={"rplacevit.year": str(h.year), "rplacevit.canvas_origin": f"{origin_x},{origin_y}",
                 "rplacevit.dataset_generation": h.generation})
    started = time.perf_counter()
    written, groups = 0, 0
    try:
        with atomic_path(out, keep_suffix=False) as temporary, progress_bar("export", "event", progress, total=max(end - first, 0)) as bar:
            with pa.parquet.ParquetWriter(temporary, schema, compression="zstd") as writer:
                for start in range(first, max(end, first), row_group_events):
                    stop = min(start + row_group_events, end)
                    block = {name: np.asarray(columns[name][start:stop]) for name in ("timestamp", "user_id", "color", "x", "y")}
                    if region is not None:
                        x0, y0, x1, y1 = region
                        keep = (block["x"] >= x0) & (block["x"] < x1) & (block["y"] >= y0) & (block["y"] < y1)
                        block = {name: values[keep] for name, values in block.items()}
                    if len(block["timestamp"]):
                        colors = pa.array(block["color"], pa.uint8())
                        table = pa.table([
                            pa.array(block["timestamp"], pa.timestamp("ms", tz="UTC")),
                            pa.array(block["user_id"], pa.uint32()),
                            colors,
                            pa.DictionaryArray.from_arrays(colors, palette),
                            pa.array(block["x"].astype(np.int32) + origin_x).cast(coordinate),
                            pa.array(block["y"].astype(np.int32) + origin_y).cast(coordinate),
                        ], schema=schema)
                        writer.write_table(table, row_group_size=len(table))
                        written += len(table)
                        groups += 1
                    bar.update(stop - start)
    except OSError as error:  # pyarrow's own (a full disk) names no file
        if os.fspath(out) in str(error):
            raise
        message = f"{os.fspath(out)}: {error.strerror or error}"
        raise (OSError(error.errno, message) if error.errno else OSError(message)) from None
    return {"path": os.fspath(out), "events": written, "row_groups": groups, "seconds": time.perf_counter() - started}
