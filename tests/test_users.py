"""Users: the features of every user against a plain computation, the placer's history against
a plain loop, the per-user queries, and the clusters (files, determinism, bots apart)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import rplacevit
from conftest import DATA
from rplacevit import users

FIVE_MINUTES = 300_000


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A synthetic history with bots, heavy players and moderation rectangles (equal
    timestamps of one user), and the quirks fixture's ties."""
    folder = tmp_path_factory.mktemp("users")
    rplacevit.synth(folder / "s.csv.gz", 150_000, seed=4)
    rplacevit.ingest([folder / "s.csv.gz", DATA / "quirks_2022.csv"], folder / "d")
    return folder / "d"


def plain_features(history: rplacevit.History, until: int | None) -> dict[str, np.ndarray]:
    """The features by a plain replay, one event at a time."""
    e = history.events()
    n = len(history) if until is None else int(np.searchsorted(e["timestamp"], until))
    ts, uid, col, xs, ys = (np.asarray(e[k][:n]).astype(np.int64) for k in ("timestamp", "user_id", "color", "x", "y"))
    changed = np.zeros(n, bool)
    overwritten = np.zeros(n, bool)
    color_at, last_at = {}, {}
    for i in range(n):
        pixel = (xs[i], ys[i])
        changed[i] = col[i] != color_at.get(pixel, rplacevit.WHITE)
        if pixel in last_at and ts[i] - ts[last_at[pixel]] <= FIVE_MINUTES:
            overwritten[last_at[pixel]] = True
        color_at[pixel], last_at[pixel] = col[i], i
    out = {name: [] for name in users.COLUMNS}
    for u in range(history.users):
        mine = np.flatnonzero(uid == u)
        c = len(mine)
        gaps = np.diff(ts[mine])
        out["count"].append(c)
        out["first_ms"].append(ts[mine[0]] if c else users.NO_EVENT)
        out["last_ms"].append(ts[mine[-1]] if c else users.NO_EVENT)
        for name, values in (("x", xs[mine]), ("y", ys[mine])):
            out[f"mean_{name}"].append(values.mean() if c else np.nan)
            out[f"std_{name}"].append(values.std() if c else np.nan)
        out["mean_ms"].append(ts[mine].mean() if c else np.nan)
        out["colors"].append(np.bincount(col[mine], minlength=32))
        out["distinct_pixels"].append(len(set(zip(xs[mine], ys[mine]))))
        out["changed_share"].append(changed[mine].mean() if c else np.nan)
        out["overwritten_share"].append(overwritten[mine].mean() if c else np.nan)
        out["median_gap_ms"].append(np.median(gaps) if len(gaps) else np.nan)
        if len(gaps) >= 4:
            q1, q3 = np.percentile(gaps, [25, 75], method="lower")
            out["gap_spread"].append((q3 - q1) / max(np.median(gaps), 1))
        else:
            out["gap_spread"].append(np.nan)
    return {name: np.array(values) for name, values in out.items()}


@pytest.mark.parametrize("data", ["sample", "synthetic"])
@pytest.mark.parametrize("middle", [False, True])
def test_features_equal_a_plain_computation(data, middle, sample_dataset, synthetic, tmp_path):
    source = sample_dataset if data == "sample" else synthetic
    dataset = tmp_path / "d"
    import shutil

    shutil.copytree(source, dataset)
    history = rplacevit.open(dataset)
    first, last = history.time_range
    until = first + (last - first) // 2 if middle else None
    got, expected = users.features(history, until), plain_features(history, until)
    assert (expected["count"] > 40).any()  # users with enough gaps for the selections, not a sort
    assert set(got) == set(users.COLUMNS)
    for name in ("count", "first_ms", "last_ms", "colors", "distinct_pixels"):
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    for name in ("mean_x", "std_x", "mean_y", "std_y", "mean_ms", "changed_share", "overwritten_share", "median_gap_ms", "gap_spread"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-9, atol=1e-9, err_msg=name)
    assert got["count"].sum() == (len(history) if until is None else np.searchsorted(history.events()["timestamp"], until))
    # Kept in the dataset folder and read back memory-mapped; a new ingest gets new features.
    again = users.features(history, until)
    assert isinstance(again["count"], np.memmap)
    np.testing.assert_array_equal(again["colors"], got["colors"])


def test_overwritten_across_more_than_49_days(tmp_path):
    """The tile index keeps times as 32-bit milliseconds from the dataset's first event (49.7
    days): beyond that the overwritten flag compares the events' own timestamps."""
    rows = [
        ("2022-01-01 00:00:00 UTC", "a", "#FF4500", "3,3"),
        ("2022-03-05 00:00:00 UTC", "b", "#FFFFFF", "3,3"),  # 63 days later; the next 10 minutes later
        ("2022-03-05 00:10:00 UTC", "a", "#000000", "3,3"),
        ("2022-03-05 00:11:00 UTC", "b", "#000000", "4,3"),  # the next a minute later: soon
        ("2022-03-05 00:12:00 UTC", "a", "#FFFFFF", "4,3"),
    ]
    source = tmp_path / "long.csv"
    source.write_text("timestamp,user_id,pixel_color,coordinate\n" + "".join(f'{t},{u},{c},"{xy}"\n' for t, u, c, xy in rows))
    rplacevit.ingest(source, tmp_path / "d")
    history = rplacevit.open(tmp_path / "d")
    got, expected = users.features(history), plain_features(history, None)
    np.testing.assert_array_equal(got["overwritten_share"], expected["overwritten_share"])
    np.testing.assert_array_equal(got["overwritten_share"], [0.0, 0.5])


def test_features_of_a_new_generation_are_new(tmp_path):
    out = tmp_path / "d"
    rplacevit.ingest(DATA / "quirks_2022.csv", out)
    assert users.features(rplacevit.open(out))["count"].sum() == 19
    rplacevit.ingest([DATA / "quirks_2022.csv", rplacevit.SAMPLE_CSV], out, force=True)
    assert users.features(rplacevit.open(out))["count"].sum() == 19 + 102_670
    assert rplacevit.verify(out) == []  # the cache is no part of the dataset's files


def test_seed_vector_is_the_originals(synthetic):
    history = rplacevit.open(synthetic)
    columns = users.features(history)
    vector = users.seed_vector(columns)
    assert vector.shape == (history.users, 38) and vector.dtype == np.float32
    count = np.asarray(columns["count"])
    u = int(np.argmax(count))
    t0, t1 = history.time_range
    expected = [columns["mean_x"][u] / 1000, columns["std_x"][u] / 1000, columns["mean_y"][u] / 1000, columns["std_y"][u] / 1000,
                min(count[u] / 1000, 1), (columns["mean_ms"][u] - t0) / (t1 - t0), *(columns["colors"][u] / count[u])]
    np.testing.assert_allclose(vector[u], expected, rtol=1e-6)
    np.testing.assert_allclose(vector[count > 0, 6:].sum(axis=1), 1, rtol=1e-5)


def plain_placer_history(history, ids, k):
    e = history.events()
    ts, uid, col = np.asarray(e["timestamp"]), np.asarray(e["user_id"]), np.asarray(e["color"])
    colors = np.full((len(ids), k), rplacevit.OUTSIDE, np.uint8)
    ages = np.full((len(ids), k), -1, np.int64)
    counts = np.zeros(len(ids), np.int64)
    for row, i in enumerate(ids):
        earlier = np.flatnonzero((uid[:i] == uid[i]) & (ts[:i] < ts[i]))
        counts[row] = len(earlier)
        latest = earlier[::-1][:k]
        colors[row, : len(latest)] = col[latest]
        ages[row, : len(latest)] = ts[i] - ts[latest]
    return colors, ages, counts


def test_placer_history_equals_a_plain_loop(synthetic):
    history = rplacevit.open(synthetic)
    e = history.events()
    uid, ts = np.asarray(e["user_id"]), np.asarray(e["timestamp"])
    rng = np.random.default_rng(1)
    firsts = np.array([history.user_events(u)[0] for u in rng.choice(history.users, 50, replace=False)])
    busiest = int(np.bincount(uid).argmax())
    ties = np.flatnonzero((np.diff(ts) == 0) & (np.diff(uid.astype(np.int64)) == 0))[:100] + 1  # same user, same millisecond
    ids = np.concatenate([rng.integers(0, len(history), 2000), firsts, history.user_events(busiest)[:40], ties, [0, len(history) - 1]])
    ids = ids.astype(np.int64)
    assert len(ties) > 10
    for k in (1, 8):
        got = history.placer_history(ids, k)
        for a, b, name in zip(got, plain_placer_history(history, ids, k), ("colors", "ages", "counts")):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}, k={k}")
    with pytest.raises(ValueError, match="`k` must be at least 1"):
        history.placer_history(ids, 0)
    with pytest.raises(IndexError):
        history.placer_history(np.array([len(history)]), 8)


def test_user_queries(synthetic):
    history = rplacevit.open(synthetic)
    e = history.events()
    uid, ts = np.asarray(e["user_id"]), np.asarray(e["timestamp"])
    for u in [0, 1, history.users - 1, int(np.bincount(uid).argmax())]:
        np.testing.assert_array_equal(history.user_events(u), np.flatnonzero(uid == u))
        assert history.user_id(history.user_hash(u)) == u
    assert history.user_id("no such hash") is None and history.user_hash(history.users) is None
    with pytest.raises(IndexError, match="out of range"):
        history.user_events(history.users)
    ids = np.random.default_rng(2).integers(0, len(history), 500).astype(np.int64)
    xs, ys = np.asarray(e["x"]), np.asarray(e["y"])
    expected = []
    for i in ids:
        later = np.flatnonzero((xs[i + 1:] == xs[i]) & (ys[i + 1:] == ys[i]))
        expected.append(ts[i + 1 + later[0]] if len(later) else np.iinfo(np.int64).max)
    np.testing.assert_array_equal(history.next_placement_times(ids), expected)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "rplacevit", *map(str, args)], capture_output=True, text=True)


def test_user_command_table_and_picture(synthetic, tmp_path):
    history = rplacevit.open(synthetic)
    u = int(np.argmax(users.features(history)["count"]))
    table = users.placements(history, u)
    by_hash = run_cli("user", synthetic, history.user_hash(u), "--png", tmp_path / "u.png")
    assert by_hash.returncode == 0, by_hash.stderr
    assert f"user {u} (" in by_hash.stdout and f"{len(table['id']):,} placements" in by_hash.stdout
    lines = by_hash.stdout.splitlines()
    assert len(lines) == 3 + len(table["id"]) and lines[-1] == f"wrote {tmp_path / 'u.png'}"
    survived = [line.split()[-1] for line in lines[2:-1]]
    assert survived == ["yes" if s else "no" for s in table["survived"]]
    import imageio.v3 as iio

    assert max(iio.imread(tmp_path / "u.png").shape[:2]) > 128  # enlarged to about 256 pixels a side, or larger
    assert run_cli("user", synthetic, str(u)).stdout == by_hash.stdout.replace(f"wrote {tmp_path / 'u.png'}\n", "")
    for bad, message in [("999999999", "the dataset has user ids 0 to"), ("nobody", "no user of the dataset has this hash")]:
        result = run_cli("user", synthetic, bad)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_users_command_summarises(synthetic):
    result = run_cli("users", synthetic, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["events"] == len(rplacevit.open(synthetic)) and len(summary["top"]) == 10
    history = rplacevit.open(synthetic)
    early = run_cli("users", synthetic, "--until", history.time_range[0])
    assert early.returncode == 2 and "is not after the first event" in early.stderr


def bot_like(columns) -> np.ndarray:
    """The synthetic bots: many placements, each a cooldown after the last, like clockwork."""
    count, gap, spread = (np.asarray(columns[k]) for k in ("count", "median_gap_ms", "gap_spread"))
    return np.flatnonzero((count > 50) & (spread < 0.05) & (gap > 250_000) & (gap < 350_000))


def test_cluster_writes_its_files_deterministically_and_puts_the_bots_apart(synthetic, tmp_path):
    history = rplacevit.open(synthetic)
    result = run_cli("users", "cluster", synthetic, "-o", tmp_path / "a", "--clusters", "100", "--seed", "3", "--sample", "5000")
    assert result.returncode == 0, result.stderr
    users.cluster(history, tmp_path / "b", clusters=100, seed=3, sample=5000, progress=False, say=lambda _: None)
    for name in ("clusters.npy", "clusters.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    labels = np.load(tmp_path / "a" / "clusters.npy")
    columns = users.features(history)
    active = np.asarray(columns["count"]) > 0
    assert labels.shape == (history.users,) and (labels[~active] == -1).all() and (labels[active] >= 0).all()
    rows = list(csv.DictReader(open(tmp_path / "a" / "clusters.csv")))
    assert len(rows) == 100 and sum(int(r["size"]) for r in rows) == active.sum()
    for picture in ("pca2d.png", "pca3d.png", "clusters.png"):
        assert (tmp_path / "a" / picture).stat().st_size > 10_000
    # The bots land in small clusters of their own: their median gap is the cooldown, the
    # crowd's is hours.
    bots = bot_like(columns)
    assert len(bots) >= 2
    overall = np.nanmedian(np.asarray(columns["median_gap_ms"]))
    for cluster in set(labels[bots]):
        row = rows[cluster]
        assert float(row["median_gap_ms"]) < 10 * 60_000 < overall, row
        assert int(row["size"]) <= 4 * np.sum(labels[bots] == cluster), row
    users.cluster(history, tmp_path / "c", clusters=100, seed=4, progress=False, say=lambda _: None)
    assert (tmp_path / "c" / "clusters.npy").read_bytes() != (tmp_path / "a" / "clusters.npy").read_bytes()


def test_cluster_refuses_what_it_cannot_do(synthetic, tmp_path, monkeypatch):
    history = rplacevit.open(synthetic)
    with pytest.raises(rplacevit.ArgumentError, match="more than the .* users"):
        users.cluster(history, tmp_path / "c", clusters=history.users + 1, say=lambda _: None)
    with pytest.raises(rplacevit.ArgumentError, match="is not after the first event"):
        users.cluster(history, tmp_path / "c", until=history.time_range[0] - 1, say=lambda _: None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.cluster", None)
    with pytest.raises(ImportError, match=r"pip install 'rplacevit\[analysis\]'"):
        users.cluster(history, tmp_path / "c", say=lambda _: None)
    assert not (tmp_path / "c").exists()


def test_as_frame_gives_one_row_per_user(synthetic):
    if not any(__import__("importlib").util.find_spec(name) for name in ("pandas", "polars")):
        pytest.skip("neither pandas nor polars is installed")
    history = rplacevit.open(synthetic)
    frame = users.as_frame(users.features(history))
    assert len(frame) == history.users and "color_31" in frame.columns and "median_gap_ms" in frame.columns
