"""Shared fixtures: data files in tests/data and datasets built from them once per session."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

import rplacevit

DATA = Path(__file__).parent / "data"


def utc_ms(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp() * 1000 + 0.5)


#: The documented growth of each canvas: (from, x0, y0, x1, y1) in stored coordinates.
GROWTH = {
    2022: [(None, 0, 0, 1000, 1000), ("2022-04-02 16:24:56.000", 0, 0, 2000, 1000), ("2022-04-03 19:03:53.000", 0, 0, 2000, 2000)],
    2023: [(None, 1000, 500, 2000, 1500), ("2023-07-21 16:00:34.000", 1000, 500, 2500, 1500), ("2023-07-22 08:16:19.000", 500, 500, 2500, 1500),
           ("2023-07-22 23:03:10.000", 500, 0, 2500, 1500), ("2023-07-23 18:00:26.000", 500, 0, 2500, 2000),
           ("2023-07-24 02:00:19.000", 0, 0, 2500, 2000), ("2023-07-24 17:33:49.000", 0, 0, 3000, 2000)],
}


#: GROWTH with each start in ms (parsed once: the oracles ask for every cell).
_GROWTH_MS = {year: [(None if start is None else utc_ms(start), tuple(box)) for start, *box in steps] for year, steps in GROWTH.items()}


def plain_bounds(year: int, t: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the canvas open at ``t`` by the documented growth."""
    bounds = _GROWTH_MS[year][0][1]
    for start, box in _GROWTH_MS[year][1:]:
        if t >= start:
            bounds = box
    return bounds


def read_events(dataset: Path) -> np.ndarray:
    """All events of a dataset from its SQLite partitions, in id order: (N, 6) int64 columns
    id, timestamp, user_id, color_id, x, y."""
    rows = []
    for part in sorted((dataset / "partitions").glob("partition_*.sqlite")):
        with sqlite3.connect(f"file:{part}?mode=ro", uri=True) as connection:
            rows += connection.execute("SELECT id, timestamp, user_id, color_id, x, y FROM pixels ORDER BY id").fetchall()
    return np.array(rows, dtype=np.int64).reshape(-1, 6)


def replay(events: np.ndarray, stop: int, canvas: np.ndarray | None = None, start: int = 0) -> np.ndarray:
    """The canvas after events[start:stop], plainly, one event at a time."""
    canvas = np.full((2000, 2000), rplacevit.WHITE, np.uint8) if canvas is None else canvas.copy()
    for _, _, _, color, x, y in events[start:stop]:
        canvas[y, x] = color
    return canvas


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "dataset"
    rplacevit.ingest(rplacevit.SAMPLE_CSV, out, partition_size=25_000)
    return out


@pytest.fixture(scope="session")
def sample_events(sample_dataset) -> np.ndarray:
    return read_events(sample_dataset)


@pytest.fixture(scope="session")
def real_snapshots():
    with np.load(DATA / "place2022_crop128_24h_snapshots.npz") as npz:
        return {key: npz[key] for key in npz.files}
