"""Ingestion of the official CSV: exact replay of the real sample, format corner cases, bad input,
atomicity, and the SQLite layout anyone can query."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import rplacevit
from conftest import DATA, read_events, replay

QUIRKS = DATA / "quirks_2022.csv"
MALFORMED = DATA / "malformed_2022.csv"


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rplacevit", *map(str, args)], capture_output=True, text=True, **kwargs)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- the real-derived sample ---------------------------------------------------------------


def test_sample_counts(sample_dataset, sample_events):
    info = rplacevit.info(sample_dataset)
    assert info["events"] == len(sample_events) == 102_670
    assert info["rows"] == 102_670 and info["rejected_rows"] == 0
    assert info["partitions"] == 5  # 25,000 events each
    assert (sample_events[:, 0] == np.arange(102_670)).all()
    assert (np.diff(sample_events[:, 1]) >= 0).all()
    assert info["first_timestamp_ms"] == sample_events[0, 1] and info["last_timestamp_ms"] == sample_events[-1, 1]


def test_sample_replay_reproduces_all_48_real_snapshots(sample_events, real_snapshots):
    x0, y0 = int(real_snapshots["x0"]), int(real_snapshots["y0"])
    canvas = np.full((2000, 2000), rplacevit.WHITE, np.uint8)
    applied = 0
    for state, seconds in zip(real_snapshots["canvas"], real_snapshots["timestamp_s"]):
        stop = int(np.searchsorted(sample_events[:, 1], int(seconds) * 1000, side="right"))
        canvas = replay(sample_events, stop, canvas, start=applied)
        applied = stop
        np.testing.assert_array_equal(canvas[y0 : y0 + 128, x0 : x0 + 128], state)


def test_snapshots_let_each_partition_replay_alone(sample_dataset, sample_events):
    snapshots = np.load(sample_dataset / "snapshots.npy", mmap_mode="r")
    assert snapshots.shape == (6, 2000, 2000) and snapshots.dtype == np.uint8
    assert (snapshots[0] == rplacevit.WHITE).all()
    for k in range(5):
        after = replay(sample_events, min((k + 1) * 25_000, len(sample_events)), snapshots[k], start=k * 25_000)
        np.testing.assert_array_equal(after, snapshots[k + 1])


def test_manifest_checksums_and_ranges(sample_dataset, sample_events):
    with sqlite3.connect(sample_dataset / "meta.sqlite") as meta:
        manifest = meta.execute("SELECT id, file, first_event, events, first_timestamp, last_timestamp, checksum FROM partitions ORDER BY id").fetchall()
    assert [m[2] for m in manifest] == [0, 25_000, 50_000, 75_000, 100_000]
    assert sum(m[3] for m in manifest) == len(sample_events)
    packed = np.dtype([("id", "<i8"), ("ts", "<i8"), ("user", "<u4"), ("color", "u1"), ("x", "<u2"), ("y", "<u2")])
    for _, file, first, count, t0, t1, checksum in manifest:
        part = sample_events[first : first + count]
        assert (t0, t1) == (part[0, 1], part[-1, 1])
        record = np.empty(count, packed)
        for i, name in enumerate(packed.names):
            record[name] = part[:, i]
        assert checksum == f"crc32:{zlib.crc32(record.tobytes()):08x}"
        assert (sample_dataset / file).is_file()


def test_partitions_have_the_documented_schema(sample_dataset):
    part = sample_dataset / "partitions" / "partition_00000.sqlite"
    with sqlite3.connect(f"file:{part}?mode=ro", uri=True) as connection:
        columns = [(c[1], c[2], c[5]) for c in connection.execute("PRAGMA table_info(pixels)")]
        assert columns == [("id", "INTEGER", 1), ("timestamp", "INTEGER", 0), ("user_id", "INTEGER", 0),
                           ("color_id", "INTEGER", 0), ("x", "INTEGER", 0), ("y", "INTEGER", 0)]
        indexes = {row[1]: [c[2] for c in connection.execute(f"PRAGMA index_info({row[1]})")]
                   for row in connection.execute("PRAGMA index_list(pixels)")}
        assert sorted(indexes.values()) == [["timestamp"], ["x", "y"]]
        plan = " ".join(str(r) for r in connection.execute("EXPLAIN QUERY PLAN SELECT * FROM pixels WHERE x = 300 AND y = 400"))
        assert "pixels_xy" in plan


def test_meta_tables(sample_dataset, sample_events):
    with sqlite3.connect(sample_dataset / "meta.sqlite") as meta:
        users = meta.execute("SELECT id, original_id FROM users ORDER BY id").fetchall()
        palette = meta.execute("SELECT hex FROM palette ORDER BY id").fetchall()
        sources = meta.execute("SELECT name, size, rows, rejected_rows FROM sources").fetchall()
    assert [u[0] for u in users] == list(range(len(users)))
    assert len({u[1] for u in users}) == len(users) == rplacevit.info(sample_dataset)["users"]
    # Users are numbered by their first event in time order.
    first_seen = np.unique(sample_events[:, 2], return_index=True)[1]
    assert (np.diff(first_seen) > 0).all()
    assert [p[0] for p in palette] == rplacevit.PALETTE_HEX
    assert sources == [(rplacevit.SAMPLE_CSV.name, rplacevit.SAMPLE_CSV.stat().st_size, 102_670, 0)]


# --- format corner cases -------------------------------------------------------------------


def test_quirks_give_the_documented_answers(tmp_path):
    summary = rplacevit.ingest(QUIRKS, tmp_path / "d")
    assert (summary["rows"], summary["events"], summary["users"]) == (8, 19, 4)
    assert summary["moderation_events"] == 12
    assert summary["first_timestamp_ms"] == 1_648_817_048_999  # 2022-04-01 12:44:08.999 UTC
    assert summary["last_timestamp_ms"] == 1_648_817_053_000  # 2022-04-01 12:44:13.000 UTC
    events = read_events(tmp_path / "d")
    canvas = replay(events, len(events))
    assert canvas[17, 42] == rplacevit.PALETTE_HEX.index("#2450A4")  # the tie keeps file order
    for (x, y), hex_color in {(0, 0): "#FFFFFF", (1999, 0): "#94B3FF", (0, 1999): "#7EED56", (1999, 1999): "#6D001A"}.items():
        assert canvas[y, x] == rplacevit.PALETTE_HEX.index(hex_color)
    assert (canvas[20:23, 10:14] == rplacevit.WHITE).all()
    rectangle = events[(events[:, 1] == 1_648_817_052_500) & (events[:, 3] == rplacevit.WHITE)]
    assert [(x, y) for x, y in rectangle[:, 4:6]] == [(x, y) for y in range(20, 23) for x in range(10, 14)]
    with sqlite3.connect(tmp_path / "d" / "meta.sqlite") as meta:
        moderation = [r[0] for r in meta.execute("SELECT event_id FROM moderation ORDER BY event_id")]
    assert moderation == list(rectangle[:, 0])


def test_malformed_strict_stops_at_line_3_and_leaves_nothing(tmp_path):
    with pytest.raises(rplacevit.FormatError, match=r"malformed_2022\.csv:3: `#FF4501` is not a color of the 2022 palette"):
        rplacevit.ingest(MALFORMED, tmp_path / "d")
    assert leftovers(tmp_path) == []
    result = run_cli("ingest", MALFORMED, "-o", tmp_path / "d")
    assert result.returncode == 1
    assert "malformed_2022.csv:3:" in result.stderr and result.stdout == ""
    assert leftovers(tmp_path) == []


EXPECTED_REJECTS = {
    3: "is not a color of the 2022 palette",
    4: "2000 is outside the 2000x2000 canvas",
    5: "-1 is outside the 2000x2000 canvas",
    6: "`x` is not a number",
    7: "month 13",
    8: "3 fields instead of 4",
    9: "5 fields instead of 4",
    10: "3 numbers (only 2 or 4 are valid)",
}


def test_malformed_skip_keeps_good_rows_and_reports_every_bad_one(tmp_path):
    summary = rplacevit.ingest(MALFORMED, tmp_path / "d", on_error="skip")
    assert (summary["events"], summary["rows"], summary["rejected_rows"]) == (2, 10, 8)
    events = read_events(tmp_path / "d")
    assert [tuple(e[4:6]) for e in events] == [(42, 17), (47, 17)]
    import csv

    with open(tmp_path / "d" / "rejects.csv", newline="") as f:
        rejects = list(csv.DictReader(f))
    assert [int(r["line"]) for r in rejects] == list(EXPECTED_REJECTS)
    raw_lines = MALFORMED.read_text().splitlines()
    for reject in rejects:
        line = int(reject["line"])
        assert reject["file"].endswith("malformed_2022.csv")
        assert EXPECTED_REJECTS[line] in reject["reason"], reject
        assert reject["text"] == raw_lines[line - 1]
    assert rplacevit.info(tmp_path / "d")["rejected_rows"] == 8


def test_wrong_header_names_the_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,user,color,coord\n2022-04-01 12:44:10 UTC,a,#FFFFFF,\"1,1\"\n")
    with pytest.raises(rplacevit.FormatError, match=r"bad\.csv: wrong header"):
        rplacevit.ingest(bad, tmp_path / "d", on_error="skip")
    assert leftovers(tmp_path) == ["bad.csv"]


def test_missing_input_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        rplacevit.ingest(tmp_path / "nope.csv", tmp_path / "d")
    assert leftovers(tmp_path) == []


def test_truncated_gzip_is_an_error_naming_the_file(tmp_path):
    data = gzip.compress(QUIRKS.read_bytes())
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(data[: len(data) - 20])
    with pytest.raises(rplacevit.FormatError, match=r"cut\.csv\.gz: truncated or corrupt gzip"):
        rplacevit.ingest(truncated, tmp_path / "d", on_error="skip")
    assert leftovers(tmp_path) == ["cut.csv.gz"]


def dataset_rows(dataset: Path):
    with sqlite3.connect(dataset / "meta.sqlite") as meta:
        users = meta.execute("SELECT * FROM users ORDER BY id").fetchall()
    return read_events(dataset), users


def test_multi_member_gzip_crlf_and_plain_give_the_same_dataset(tmp_path, sample_events):
    text = gzip.decompress(rplacevit.SAMPLE_CSV.read_bytes())
    lines = text.splitlines(keepends=True)
    members = tmp_path / "members.csv.gzip"
    members.write_bytes(gzip.compress(b"".join(lines[:40_000])) + gzip.compress(b"".join(lines[40_000:])))
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(text.replace(b"\n", b"\r\n"))
    reference = rplacevit.ingest(rplacevit.SAMPLE_CSV, tmp_path / "ref")
    expected = dataset_rows(tmp_path / "ref")
    for source in (members, crlf):
        summary = rplacevit.ingest(source, tmp_path / source.stem)
        assert summary["events"] == reference["events"] == len(sample_events)
        got = dataset_rows(tmp_path / source.stem)
        np.testing.assert_array_equal(got[0], expected[0])
        assert got[1] == expected[1]


def test_parts_given_as_several_inputs_equal_the_single_file(tmp_path):
    text = gzip.decompress(rplacevit.SAMPLE_CSV.read_bytes())
    header, *lines = text.splitlines(keepends=True)
    parts = []
    for i, (start, stop) in enumerate([(0, 30_000), (30_000, 31_000), (31_000, len(lines))]):
        part = tmp_path / f"part-{i:012d}.csv.gzip"
        part.write_bytes(gzip.compress(header + b"".join(lines[start:stop])))
        parts.append(part)
    single = rplacevit.ingest(rplacevit.SAMPLE_CSV, tmp_path / "single", partition_size=30_000)
    split = rplacevit.ingest(parts, tmp_path / "split", partition_size=30_000)
    assert [s["rows"] for s in split["sources"]] == [30_000, 1_000, len(lines) - 31_000]
    assert split["events"] == single["events"]
    np.testing.assert_array_equal(read_events(tmp_path / "split"), read_events(tmp_path / "single"))
    assert dataset_rows(tmp_path / "split")[1] == dataset_rows(tmp_path / "single")[1]
    np.testing.assert_array_equal(np.load(tmp_path / "split" / "snapshots.npy"), np.load(tmp_path / "single" / "snapshots.npy"))


def test_result_does_not_depend_on_the_number_of_threads(tmp_path):
    outputs = []
    for threads in ("1", "3"):
        out = tmp_path / f"t{threads}"
        env = dict(os.environ, RAYON_NUM_THREADS=threads)
        result = run_cli("ingest", rplacevit.SAMPLE_CSV, QUIRKS, "-o", out, "--partition-size", "10000", env=env)
        assert result.returncode == 0, result.stderr
        with sqlite3.connect(out / "meta.sqlite") as meta:
            outputs.append(meta.execute("SELECT checksum FROM partitions ORDER BY id").fetchall())
    assert outputs[0] == outputs[1] and len(outputs[0]) == 11


# --- the destination -------------------------------------------------------------------------


def test_existing_dataset_needs_force(tmp_path):
    out = tmp_path / "d"
    rplacevit.ingest(QUIRKS, out)
    with pytest.raises(rplacevit.OutputExistsError, match="already holds a dataset: pass `force=True`"):
        rplacevit.ingest(MALFORMED, out, on_error="skip")
    assert rplacevit.info(out)["events"] == 19
    rplacevit.ingest(MALFORMED, out, on_error="skip", force=True)
    assert rplacevit.info(out)["events"] == 2
    assert leftovers(tmp_path) == ["d"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(rplacevit.OutputExistsError, match="was not written by rplacevit"):
        rplacevit.ingest(QUIRKS, tmp_path / "other", force=True)
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def test_info_of_a_missing_or_incomplete_dataset(tmp_path):
    with pytest.raises(rplacevit.DatasetError, match="no such dataset"):
        rplacevit.info(tmp_path / "none")
    (tmp_path / "half").mkdir()
    with pytest.raises(rplacevit.DatasetError, match="manifest.json is missing"):
        rplacevit.info(tmp_path / "half")


def test_interrupting_an_ingest_leaves_nothing(tmp_path):
    inputs = [rplacevit.SAMPLE_CSV] * 30  # about 3 million rows: seconds of work
    process = subprocess.Popen([sys.executable, "-m", "rplacevit", "ingest", *map(str, inputs), "-o", str(tmp_path / "d")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.name == ".d.staging" for p in tmp_path.iterdir()):
        assert process.poll() is None and time.monotonic() < deadline, "ingest ended before it could be interrupted"
        time.sleep(0.01)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert leftovers(tmp_path) == []


# --- the command line --------------------------------------------------------------------------


def test_cli_ingest_and_info_json(tmp_path):
    result = run_cli("ingest", QUIRKS, "-o", tmp_path / "d")
    assert result.returncode == 0, result.stderr
    assert "19" in result.stdout and result.stderr == ""
    assert run_cli("ingest", QUIRKS, "-o", tmp_path / "q", "--quiet").stdout == ""
    info = json.loads(run_cli("info", tmp_path / "d", "--json").stdout)
    columns = rplacevit.open(tmp_path / "d").events()
    assert info.pop("event_bounds") == [int(columns["x"].min()), int(columns["y"].min()), int(columns["x"].max()) + 1,
                                        int(columns["y"].max()) + 1]
    assert info.pop("events_per_hour") == [{"hour": "2022-04-01T12:00:00.000Z", "events": 19}]  # 12:44:08.999 .. 12:44:13
    assert info == {
        "events": 19, "users": 4, "partitions": 1, "first_timestamp_ms": 1_648_817_048_999,
        "last_timestamp_ms": 1_648_817_053_000, "canvas_width": 2000, "canvas_height": 2000,
        "moderation_events": 12, "rejected_rows": 0,
    }
    bad = run_cli("info", tmp_path / "missing")
    assert bad.returncode == 1 and "no such dataset" in bad.stderr


def test_every_subcommand_has_help():
    top = run_cli("--help")
    assert top.returncode == 0
    for command in ("demo", "synth", "ingest", "info", "render", "timelapse", "train", "infer", "evaluate"):
        assert command in top.stdout
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "usage: rplacevit " + command in result.stdout


def test_progress_bars_draw_on_a_terminal(tmp_path):
    """indicatif draws only on a terminal: give the commands one (a pseudo-terminal)."""
    import pty

    def on_terminal(*args: str) -> str:
        leader, follower = pty.openpty()
        process = subprocess.Popen([sys.executable, "-m", "rplacevit", *map(str, args)], stdout=subprocess.DEVNULL,
                                   stderr=follower, close_fds=True)
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes with the process
                break
            if not chunk:
                break
            drawn += chunk
        assert process.wait() == 0
        os.close(leader)
        return drawn.decode(errors="replace")

    assert "rows" in on_terminal("synth", "-o", tmp_path / "s.csv", "--rows", "200000")
    drawn = on_terminal("ingest", tmp_path / "s.csv", "-o", tmp_path / "d")
    assert "rows" in drawn and "partitions" in drawn


def test_a_closed_pipe_ends_a_command_quietly(sample_dataset):
    """`rplacevit info DATASET | head -1`: no traceback, no error message."""
    process = subprocess.Popen([sys.executable, "-m", "rplacevit", "info", str(sample_dataset)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, bufsize=0)
    process.stdout.close()  # the reader leaves before the first line
    assert process.wait() == 141
    assert process.stderr.read() == b""


def test_the_installed_command_runs():
    """`pip install .` puts a `rplacevit` command beside the interpreter."""
    command = Path(sys.executable).parent / "rplacevit"
    result = subprocess.run([str(command), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: rplacevit" in result.stdout
