"""rplacevit export: the events as parquet, read back equal to the columns; DuckDB and polars
read it where they are installed."""

from __future__ import annotations

import builtins
import subprocess
import sys

import numpy as np
import pytest

import rplacevit
from conftest import DATA
from rplacevit.export import COLUMNS, export
from rplacevit.times import parse_time

pq = pytest.importorskip("pyarrow.parquet")


def read_back(path) -> dict[str, np.ndarray]:
    table = pq.read_table(path)
    assert table.column_names == list(COLUMNS)
    columns = {name: table.column(name).to_numpy() for name in ("user_id", "color", "x", "y")}
    columns["timestamp"] = table.column("timestamp").cast("int64").to_numpy()
    columns["color_hex"] = np.array(table.column("color_hex").to_pylist())
    return columns


def expected(h: rplacevit.History, ids: np.ndarray) -> dict[str, np.ndarray]:
    e = h.events()
    origin_x, origin_y = h.canvas_origin
    return {
        "timestamp": np.asarray(e["timestamp"])[ids], "user_id": np.asarray(e["user_id"])[ids], "color": np.asarray(e["color"])[ids],
        "x": np.asarray(e["x"]).astype(np.int64)[ids] + origin_x, "y": np.asarray(e["y"]).astype(np.int64)[ids] + origin_y,
        "color_hex": np.array(rplacevit.PALETTE_HEX)[np.asarray(e["color"])[ids]],
    }


def assert_same(got: dict, want: dict) -> None:
    for name in COLUMNS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_export_equals_the_columns_in_row_groups_of_time_order(sample_dataset, tmp_path):
    h = rplacevit.open(sample_dataset)
    summary = export(h, tmp_path / "events.parquet", row_group_events=10_000, progress=False)
    assert (summary["events"], summary["row_groups"]) == (len(h), -(-len(h) // 10_000))
    assert_same(read_back(tmp_path / "events.parquet"), expected(h, np.arange(len(h))))
    metadata = pq.ParquetFile(tmp_path / "events.parquet").metadata
    assert metadata.num_row_groups == summary["row_groups"]
    bounds = [(metadata.row_group(g).column(0).statistics.min, metadata.row_group(g).column(0).statistics.max)
              for g in range(metadata.num_row_groups)]
    assert all(a[1] <= b[0] for a, b in zip(bounds, bounds[1:]))
    schema = pq.read_schema(tmp_path / "events.parquet")
    assert str(schema.field("timestamp").type) == "timestamp[ms, tz=UTC]"
    assert schema.metadata[b"rplacevit.year"] == b"2022"


def test_region_and_times_select_like_select(sample_dataset, tmp_path):
    h = rplacevit.open(sample_dataset)
    first, last = h.time_range
    t0, t1 = first + (last - first) // 3, first + 2 * (last - first) // 3
    region = (260, 380, 300, 420)
    summary = export(h, tmp_path / "part.parquet", region=region, t0=t0, t1=t1, row_group_events=7_000, progress=False)
    ids = h.select(*region, t0, t1)
    assert summary["events"] == len(ids) > 0
    assert_same(read_back(tmp_path / "part.parquet"), expected(h, ids))
    empty = export(h, tmp_path / "none.parquet", t0=last + 1, progress=False)
    assert empty["events"] == 0 and pq.read_table(tmp_path / "none.parquet").num_rows == 0


def test_2023_exports_official_coordinates(tmp_path):
    rplacevit.ingest(DATA / "place2023_fixture.csv", tmp_path / "d", progress=False)
    h = rplacevit.open(tmp_path / "d")
    export(h, tmp_path / "y2023.parquet", progress=False)
    got = read_back(tmp_path / "y2023.parquet")
    assert_same(got, expected(h, np.arange(len(h))))
    assert (got["x"].min(), got["x"].max(), got["y"].min(), got["y"].max()) == (-1500, 1499, -1000, 999)


def test_a_failed_export_leaves_no_file(sample_dataset, tmp_path, monkeypatch):
    import pyarrow.parquet

    calls = []

    def fail_on_the_second(self, table, row_group_size=None):
        calls.append(len(table))
        if len(calls) == 2:
            raise OSError("No space left on device")
        return original(self, table, row_group_size=row_group_size)

    original = pyarrow.parquet.ParquetWriter.write_table
    monkeypatch.setattr(pyarrow.parquet.ParquetWriter, "write_table", fail_on_the_second)
    with pytest.raises(OSError, match="No space left"):
        export(sample_dataset, tmp_path / "events.parquet", row_group_events=10_000, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_and_a_missing_pyarrow_say_what_to_do(sample_dataset, tmp_path, monkeypatch):
    with pytest.raises(rplacevit.ArgumentError, match="expected a .parquet file"):
        export(sample_dataset, tmp_path / "events.csv", progress=False)
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(rplacevit.ArgumentError, match=r"pip install 'rplacevit\[parquet\]'"):
        export(sample_dataset, tmp_path / "events.parquet", progress=False)


def test_export_command(sample_dataset, tmp_path):
    out = tmp_path / "cli.parquet"
    done = subprocess.run([sys.executable, "-m", "rplacevit", "export", str(sample_dataset), "-o", str(out), "--region", "250,375,300,400",
                           "--from", "2022-04-01T18:00:00Z"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    h = rplacevit.open(sample_dataset)
    ids = h.select(250, 375, 300, 400, parse_time("2022-04-01T18:00:00Z"), None)
    assert f"wrote {out}: {len(ids):,} events" in done.stdout
    assert pq.read_table(out).num_rows == len(ids)


def test_duckdb_and_polars_read_the_export(sample_dataset, tmp_path):
    h = rplacevit.open(sample_dataset)
    export(h, tmp_path / "events.parquet", progress=False)
    colors = np.bincount(np.asarray(h.events()["color"]), minlength=32)
    try:
        import duckdb
    except ImportError:
        duckdb = None
    if duckdb is not None:
        rows = duckdb.sql(f"SELECT color, count(*) FROM '{tmp_path / 'events.parquet'}' GROUP BY color").fetchall()
        assert {int(c): n for c, n in rows} == {c: int(n) for c, n in enumerate(colors) if n}
    try:
        import polars as pl
    except ImportError:
        pl = None
    if pl is not None:
        events = pl.read_parquet(tmp_path / "events.parquet")
        assert events.height == len(h) and events["user_id"].n_unique() == h.users
    if duckdb is None and pl is None:
        pytest.skip("neither duckdb nor polars is installed")
