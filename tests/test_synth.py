"""Synthetic histories: what `rplacevit synth` writes ingests cleanly and behaves like r/place."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import numpy as np
import pytest

import rplacevit
from conftest import read_events


def test_synth_is_deterministic_and_ingests(tmp_path):
    a, b, c = tmp_path / "a.csv.gz", tmp_path / "b.csv.gz", tmp_path / "c.csv.gz"
    summary = rplacevit.synth(a, 30_000, seed=7)
    rplacevit.synth(b, 30_000, seed=7)
    rplacevit.synth(c, 30_000, seed=8)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    ingested = rplacevit.ingest(a, tmp_path / "d", partition_size=10_000)
    assert ingested["rows"] == summary["rows"] == 30_000 and ingested["rejected_rows"] == 0
    assert ingested["events"] == summary["events"] and ingested["users"] == summary["users"]
    assert ingested["moderation_events"] == summary["events"] - summary["rows"] + summary["moderation_rows"]
    assert (ingested["first_timestamp_ms"], ingested["last_timestamp_ms"]) == (summary["first_timestamp_ms"], summary["last_timestamp_ms"])

    events = read_events(tmp_path / "d")
    with sqlite3.connect(tmp_path / "d" / "meta.sqlite") as meta:
        moderation = {r[0] for r in meta.execute("SELECT event_id FROM moderation")}
    clicks = events[[i not in moderation for i in range(len(events))]]
    order = np.lexsort((clicks[:, 1], clicks[:, 2]))
    by_user = clicks[order]
    same_user = by_user[1:, 2] == by_user[:-1, 2]
    assert (np.diff(by_user[:, 1])[same_user] >= 300_000).all(), "a user placed twice within the 5-minute cooldown"


def test_synth_cli(tmp_path):
    out = tmp_path / "s.csv"
    result = subprocess.run([sys.executable, "-m", "rplacevit", "synth", "-o", str(out), "--rows", "2000", "--seed", "3"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "wrote 2,000 rows" in result.stdout
    assert out.read_text().startswith("timestamp,user_id,pixel_color,coordinate\n")
    bad = subprocess.run([sys.executable, "-m", "rplacevit", "synth", "-o", str(tmp_path / "z.csv"), "--rows", "0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "argument --rows: '0': expected an integer >= 1" in bad.stderr
    with pytest.raises(ValueError, match="rows must be between 1 and"):
        rplacevit.synth(tmp_path / "z.csv", 0)
    assert not (tmp_path / "z.csv").exists()
