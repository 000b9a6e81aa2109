"""The history reader against a brute-force replay written plainly here, on synthetic data with
hotspots and on the real-derived sample."""

from __future__ import annotations

import bisect
import os
import pickle
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest

import rplacevit
from conftest import DATA, plain_bounds, read_events

OUTSIDE = rplacevit.OUTSIDE


class Oracle:
    """Answers every reader question by replaying the events one by one."""

    def __init__(self, events: np.ndarray, width: int = 2000, height: int = 2000):
        self.events = events
        self.width, self.height = width, height
        self.at_pixel = defaultdict(list)  # (x, y) → event ids, ascending
        for i, (_, _, _, _, x, y) in enumerate(events):
            self.at_pixel[(x, y)].append(i)

    def canvases_before(self, ids):
        """{id: canvas before id} for the given ids, in one pass."""
        canvas = np.full((self.height, self.width), rplacevit.WHITE, np.uint8)
        out, applied = {}, 0
        for i in sorted(set(int(i) for i in ids)):
            for _, _, _, color, x, y in self.events[applied:i]:
                canvas[y, x] = color
            applied = i
            out[i] = canvas.copy()
        return out

    def open(self, i, x, y) -> bool:
        """Whether pixel (x, y) is on the canvas open at event i's time (2022's documented growth)."""
        x0, y0, x1, y1 = plain_bounds(2022, self.events[i, 1])
        return 0 <= x < self.width and 0 <= y < self.height and x0 <= x < x1 and y0 <= y < y1

    def window(self, canvas, i, size):
        x, y = self.events[i, 4], self.events[i, 5]
        window = np.full((size, size), OUTSIDE, np.uint8)
        for r in range(size):
            for c in range(size):
                cy, cx = y - size // 2 + r, x - size // 2 + c
                if self.open(i, cx, cy):
                    window[r, c] = canvas[cy, cx]
        return window

    def next_minute_majority(self, i, horizon):
        t, x, y = self.events[i, 1], self.events[i, 4], self.events[i, 5]
        later = [j for j in self.at_pixel[(x, y)] if j > i and t < self.events[j, 1] <= t + horizon]
        if not later:
            return int(self.events[i, 3])
        counts, last_seen = defaultdict(int), {}
        for j in later:
            counts[int(self.events[j, 3])] += 1
            last_seen[int(self.events[j, 3])] = j
        best = max(counts.values())
        return max((c for c in counts if counts[c] == best), key=lambda c: last_seen[c])

    def time_target(self, i, size, horizon):
        t, x, y = self.events[i, 1], self.events[i, 4], self.events[i, 5]
        grid = np.ones((size, size), np.float32)
        for r in range(size):
            for c in range(size):
                px, py = x - size // 2 + c, y - size // 2 + r
                ids = self.at_pixel.get((px, py), []) if self.open(i, px, py) else []
                k = bisect.bisect_right(ids, i)
                if k < len(ids):
                    grid[r, c] = min(1.0, (self.events[ids[k], 1] - t) / horizon)
        return grid


def interesting_ids(events: np.ndarray, partition_size: int, rng, n: int) -> np.ndarray:
    """Random ids plus the first and last event, partition boundaries, equal timestamps and
    events on the canvas edges."""
    N = len(events)
    boundaries = [b + d for b in range(0, N, partition_size) for d in (-1, 0, 1) if 0 <= b + d < N]
    ties = np.flatnonzero(np.diff(events[:, 1]) == 0)[:50]
    edges = np.flatnonzero((events[:, 4] < 3) | (events[:, 5] < 3) | (events[:, 4] > 1996) | (events[:, 5] > 1996))[:50]
    ids = np.concatenate([rng.integers(0, N, n), [0, N - 1], boundaries, ties, ties + 1, edges])
    return np.array(ids, dtype=np.int64)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    rplacevit.synth(folder / "s.csv.gz", 40_000, seed=11)
    # The quirks fixture adds events at the four canvas corners and a tie on one pixel.
    rplacevit.ingest([folder / "s.csv.gz", DATA / "quirks_2022.csv"], folder / "d", partition_size=10_000)
    return folder / "d"


@pytest.fixture(scope="module", params=["synthetic", "sample"])
def case(request, synthetic, sample_dataset):
    dataset = synthetic if request.param == "synthetic" else sample_dataset
    partition_size = rplacevit.info(dataset)["partition_size"]
    events = read_events(dataset)
    return rplacevit.open(dataset), events, Oracle(events), partition_size


def test_events_are_the_partitions_columns(case):
    history, events, _, _ = case
    assert len(history) == len(events)
    assert (history.canvas_width, history.canvas_height) == (2000, 2000)
    assert history.time_range == (events[0, 1], events[-1, 1])
    columns = history.events()
    for k, name in enumerate(["timestamp", "user_id", "color", "x", "y"], start=1):
        np.testing.assert_array_equal(columns[name], events[:, k])
    assert columns["timestamp"].dtype == np.int64 and columns["color"].dtype == np.uint8
    part = history.events(100, 200)
    np.testing.assert_array_equal(part["x"], events[100:200, 4])
    # Views of the reader's own memory maps, not copies, and read-only.
    assert not part["x"].flags.owndata and not part["x"].flags.writeable
    assert np.shares_memory(history.events()["x"], history.events()["x"])


def test_windows_and_canvas_before_equal_the_replay(case):
    history, events, oracle, partition_size = case
    rng = np.random.default_rng(1)
    ids = interesting_ids(events, partition_size, rng, 400)
    canvases = oracle.canvases_before(list(ids) + [len(events)])
    windows = history.windows(ids, 64)
    assert windows.shape == (len(ids), 64, 64) and windows.dtype == np.uint8
    assert type(windows.base).__name__ == "PySliceContainer"  # numpy owns the Rust buffer
    for w, i in zip(windows, ids):
        np.testing.assert_array_equal(w, oracle.window(canvases[int(i)], int(i), 64), err_msg=f"event {i}")
    small = history.windows(ids[:50], 5)
    for w, i in zip(small, ids[:50]):
        np.testing.assert_array_equal(w, oracle.window(canvases[int(i)], int(i), 5))
    for i in [0, int(ids[0]), len(events) // 2, len(events)]:
        expected = canvases.get(i)
        if expected is None:
            expected = oracle.canvases_before([i])[i]
        np.testing.assert_array_equal(history.canvas_before(i), expected, err_msg=f"canvas before {i}")


def test_color_targets_equal_the_replay(case):
    history, events, oracle, partition_size = case
    ids = interesting_ids(events, partition_size, np.random.default_rng(2), 1500)
    np.testing.assert_array_equal(history.color_targets(ids), events[ids, 3])
    for horizon in (60_000, 600_000):
        got = history.color_targets(ids, "next_minute_majority", horizon_ms=horizon)
        assert got.dtype == np.int64
        expected = [oracle.next_minute_majority(int(i), horizon) for i in ids]
        np.testing.assert_array_equal(got, expected)


def test_time_targets_equal_the_replay(case):
    history, events, oracle, partition_size = case
    ids = interesting_ids(events, partition_size, np.random.default_rng(3), 300)
    got = history.time_targets(ids, 16, horizon_ms=3_600_000)
    assert got.shape == (len(ids), 16, 16) and got.dtype == np.float32
    for g, i in zip(got, ids):
        np.testing.assert_allclose(g, oracle.time_target(int(i), 16, 3_600_000), rtol=0, atol=1e-6, err_msg=f"event {i}")


def test_select_equals_a_plain_filter(case):
    history, events, _, _ = case
    ts, xs, ys = events[:, 1], events[:, 4], events[:, 5]
    t_mid = int(np.median(ts))
    for bounds in [{}, {"t0": t_mid}, {"t1": t_mid}, {"x0": 300, "x1": 340}, {"y0": 400, "y1": 470, "t0": t_mid},
                   {"x0": 0, "y0": 0, "x1": 2000, "y1": 2000}, {"x0": 260, "y0": 380, "x1": 261, "y1": 381},
                   {"x0": 5, "x1": 5}, {"x0": 250, "x1": 300, "y0": 375, "y1": 400, "t0": int(ts[10]), "t1": int(ts[-10])}]:
        mask = np.ones(len(events), bool)
        for key, column, low in [("x0", xs, True), ("x1", xs, False), ("y0", ys, True), ("y1", ys, False), ("t0", ts, True), ("t1", ts, False)]:
            if key in bounds:
                mask &= (column >= bounds[key]) if low else (column < bounds[key])
        got = history.select(**bounds)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, np.flatnonzero(mask), err_msg=str(bounds))


def test_canvas_at_the_48_real_snapshot_times(sample_dataset, real_snapshots):
    history = rplacevit.open(sample_dataset)
    x0, y0 = int(real_snapshots["x0"]), int(real_snapshots["y0"])
    for state, seconds in zip(real_snapshots["canvas"], real_snapshots["timestamp_s"]):
        canvas = history.canvas_at(int(seconds) * 1000)
        assert canvas.shape == (2000, 2000) and canvas.dtype == np.uint8
        np.testing.assert_array_equal(canvas[y0 : y0 + 128, x0 : x0 + 128], state)
        outside = canvas.copy()
        outside[y0 : y0 + 128, x0 : x0 + 128] = rplacevit.WHITE
        assert (outside == rplacevit.WHITE).all()
    assert (history.canvas_at(history.time_range[0] - 1) == rplacevit.WHITE).all()


def test_canvas_at_equals_the_replay_at_random_times(case):
    history, events, oracle, _ = case
    rng = np.random.default_rng(4)
    times = list(rng.integers(events[0, 1], events[-1, 1], 5)) + [events[0, 1], events[-1, 1], events[-1, 1] + 10]
    for t in times:
        i = int(np.searchsorted(events[:, 1], t, side="right"))
        np.testing.assert_array_equal(history.canvas_at(int(t)), oracle.canvases_before([i])[i])


def test_canvas_regions_equal_the_replay(case):
    """``canvas_at(t, region)`` (rebuilt from the tiles under the region) against the replay,
    ``placement_times_at(t, region)`` against the whole canvas's (itself checked against the
    replay below) and ``event_counts`` against a count of the events: random rectangles, the
    whole canvas, single pixels and the corners; rectangles off the canvas are ArgumentErrors."""
    history, events, oracle, _ = case
    rng = np.random.default_rng(7)
    for t in list(rng.integers(events[0, 1], events[-1, 1], 4)) + [events[0, 1] - 1, events[-1, 1]]:
        i = int(np.searchsorted(events[:, 1], t, side="right"))
        canvas = oracle.canvases_before([i])[i]
        corners = rng.integers(0, 2000, size=(6, 2))
        sizes = rng.integers(1, 400, size=(6, 2))
        regions = [(0, 0, 2000, 2000), (1999, 1999, 2000, 2000), (0, 0, 1, 1), (15, 16, 17, 33)]
        regions += [(x, y, min(2000, x + w), min(2000, y + h)) for (x, y), (w, h) in zip(corners, sizes)]
        placed, before = history.placement_times_at(int(t)), history.previous_colors_at(int(t))
        span = int(rng.choice([1, 60_000, 3_600_000, 10**12]))
        later = events[(events[:, 1] >= t) & (events[:, 1] < t + span)]
        counts = np.zeros((2000, 2000), np.int64)
        np.add.at(counts, (later[:, 5], later[:, 4]), 1)
        for x0, y0, x1, y1 in regions:
            where = f"{t} {x0},{y0},{x1},{y1}"
            np.testing.assert_array_equal(history.canvas_at(int(t), (x0, y0, x1, y1)), canvas[y0:y1, x0:x1], where)
            np.testing.assert_array_equal(history.placement_times_at(int(t), (x0, y0, x1, y1)), placed[y0:y1, x0:x1], where)
            np.testing.assert_array_equal(history.previous_colors_at(int(t), (x0, y0, x1, y1)), before[y0:y1, x0:x1], where)
            np.testing.assert_array_equal(history.event_counts(int(t), int(t) + span, (x0, y0, x1, y1)), counts[y0:y1, x0:x1], where)
    for bad in [(0, 0, 2001, 10), (-1, 0, 5, 5), (5, 5, 4, 6)]:
        for read in (lambda r: history.canvas_at(0, r), lambda r: history.placement_times_at(0, r), lambda r: history.event_counts(0, 1, r),
                     lambda r: history.previous_colors_at(0, r)):
            with pytest.raises(rplacevit.ArgumentError, match="does not lie on the"):
                read(bad)


def test_bad_arguments_are_clear_errors(sample_dataset, tmp_path):
    history = rplacevit.open(sample_dataset)
    with pytest.raises(TypeError, match="int64"):
        history.windows(np.array([1, 2], dtype=np.int32))
    with pytest.raises(TypeError, match="numpy int64 array"):
        history.windows([1, 2])
    with pytest.raises(ValueError, match="1-D"):
        history.windows(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(IndexError, match="out of range"):
        history.windows(np.array([0, len(history)], dtype=np.int64))
    with pytest.raises(IndexError, match="out of range"):
        history.color_targets(np.array([-1], dtype=np.int64))
    with pytest.raises(IndexError):
        history.canvas_before(len(history) + 1)
    with pytest.raises(ValueError, match="mode"):
        history.color_targets(np.array([0], dtype=np.int64), mode="future")
    with pytest.raises(ValueError, match="size"):
        history.windows(np.array([0], dtype=np.int64), size=0)
    with pytest.raises(rplacevit.DatasetError):
        rplacevit.open(tmp_path / "nothing")
    assert history.windows(np.array([], dtype=np.int64)).shape == (0, 64, 64)


def test_a_damaged_dataset_is_a_clear_error(tmp_path):
    rplacevit.ingest(rplacevit.SAMPLE_CSV, tmp_path / "d")
    column = tmp_path / "d" / "events" / "x.npy"
    column.write_bytes(column.read_bytes()[:-10])
    with pytest.raises(rplacevit.DatasetError, match="x.npy"):
        rplacevit.open(tmp_path / "d")
    # Index files that contradict each other: a DatasetError from the read, never a Rust panic.
    rplacevit.ingest(rplacevit.SAMPLE_CSV, tmp_path / "e")
    ids = np.load(tmp_path / "e" / "index" / "tile_event_ids.npy", mmap_mode="r+")
    ids[:] = len(ids) + 5
    ids.flush()
    del ids
    history = rplacevit.open(tmp_path / "e")
    with pytest.raises(rplacevit.DatasetError, match="index: damaged.*ingest the dataset again"):
        history.last_change_times(np.arange(len(history) - 50, len(history)))


def test_history_pickles_as_its_path(sample_dataset):
    history = rplacevit.open(sample_dataset)
    again = pickle.loads(pickle.dumps(history))
    ids = np.arange(0, len(history), 997, dtype=np.int64)
    np.testing.assert_array_equal(again.windows(ids), history.windows(ids))


CHILD = """
import hashlib, sys, numpy as np, rplacevit
h = rplacevit.open(sys.argv[1])
ids = np.random.default_rng(5).integers(0, len(h), 3000)
digest = hashlib.sha256()
for array in (h.windows(ids), h.color_targets(ids, "next_minute_majority"), h.time_targets(ids), h.canvas_at(h.time_range[1] - 3_600_000)):
    digest.update(np.ascontiguousarray(array).tobytes())
print(digest.hexdigest())
"""


def test_results_do_not_depend_on_the_number_of_threads(synthetic):
    digests = set()
    for threads in ("1", "4"):
        env = dict(os.environ, RAYON_NUM_THREADS=threads)
        result = subprocess.run([sys.executable, "-c", CHILD, str(synthetic)], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        digests.add(result.stdout)
    assert len(digests) == 1


def test_batch_calls_release_the_gil(sample_dataset):
    """While a long batch call runs in one thread, another thread keeps running Python: it could
    not if the call held the GIL. Behaviour, not speed: only the order of events is checked."""
    import threading
    import time

    history = rplacevit.open(sample_dataset)
    ids = np.random.default_rng(0).integers(0, len(history), 20_000)
    calls = {
        "windows": lambda: history.windows(ids, 64),
        "time_targets": lambda: history.time_targets(ids, 16),
        "recent_colors": lambda: history.recent_colors(np.tile(ids, 4)),
    }
    for name, call in calls.items():
        span = {}
        ticks = []

        def work():
            span["start"] = time.perf_counter()
            call()
            span["end"] = time.perf_counter()

        worker = threading.Thread(target=work)
        worker.start()
        while worker.is_alive():
            ticks.append(time.perf_counter())
        worker.join()
        start, end = span["start"], span["end"]
        middle = (start + (end - start) / 3, end - (end - start) / 3)
        assert any(middle[0] < tick < middle[1] for tick in ticks), f"{name}: no Python ran in the middle third of the call"


def plain_age_bucket(age: int) -> int:
    """The age buckets as the docs state them, one age at a time."""
    if age < 1 << 13:
        return 0
    if age >= 1 << 27:
        return 29
    high = age.bit_length() - 1
    return 1 + 2 * (high - 13) + ((age >> (high - 1)) & 1)


def test_age_buckets_last_placers_and_previous_colors_equal_the_replay(case):
    history, events, oracle, partition_size = case
    ids = interesting_ids(events, partition_size, np.random.default_rng(7), 150)
    size = 9
    ages, placers = history.age_buckets(ids, size), history.last_placers(ids, size)
    previous = history.previous_colors(ids, size)
    assert ages.shape == placers.shape == previous.shape == (len(ids), size, size)
    assert ages.dtype == previous.dtype == np.uint8 and placers.dtype == np.int64
    for k, i in enumerate(int(i) for i in ids):
        t, x, y = events[i, 1], events[i, 4], events[i, 5]
        for r in range(size):
            for c in range(size):
                px, py = x - size // 2 + c, y - size // 2 + r
                earlier = [j for j in oracle.at_pixel.get((px, py), []) if j < i]
                expected_previous = int(events[earlier[-2], 3]) if len(earlier) > 1 else history.white
                if not oracle.open(i, px, py):
                    expected_age, expected_placer, expected_previous = rplacevit.history.AGE_OUTSIDE, -1, rplacevit.OUTSIDE
                elif not earlier:
                    expected_age, expected_placer = rplacevit.history.AGE_NEVER, -1
                else:
                    expected_age, expected_placer = plain_age_bucket(int(t - events[earlier[-1], 1])), int(events[earlier[-1], 2])
                got = (ages[k, r, c], placers[k, r, c], previous[k, r, c])
                assert got == (expected_age, expected_placer, expected_previous), f"event {i}, cell {r},{c}"


def test_placement_times_and_previous_colors_at_equal_the_replay(case):
    history, events, _, _ = case
    rng = np.random.default_rng(8)
    first, last = history.time_range
    for t in [first - 1, first, int(events[len(events) // 2, 1]), *rng.integers(first, last, 3), last]:
        expected = np.full((2000, 2000), np.iinfo(np.int64).min)
        done = events[events[:, 1] <= t]
        np.maximum.at(expected, (done[:, 5], done[:, 4]), done[:, 1])  # times never decrease: the latest is the last
        np.testing.assert_array_equal(history.placement_times_at(int(t)), expected, err_msg=f"at {t}")
        # The color before each pixel's last placement: in each pixel's events in id order, the
        # color of the one before the last.
        before = np.full((2000, 2000), history.white, np.uint8)
        pixels = done[:, 5] * 2000 + done[:, 4]
        order = np.lexsort((done[:, 0], pixels))
        pixels, colors = pixels[order], done[order, 3]
        last = np.flatnonzero(np.r_[pixels[1:] != pixels[:-1], len(pixels) > 0])
        twice = last[(last > 0) & (pixels[last - 1] == pixels[last])]
        before.flat[pixels[twice]] = colors[twice - 1]
        np.testing.assert_array_equal(history.previous_colors_at(int(t)), before, err_msg=f"at {t}")


def test_age_buckets_of_the_rust_reader_the_torch_models_and_the_docs_agree():
    import torch

    from rplacevit import _core, models

    rng = np.random.default_rng(9)
    edges = [(1 << h) + d for h in range(11, 29) for d in (-1, 0, 1)] + [(3 << h) + d for h in range(11, 28) for d in (-1, 0, 1)]
    ages = np.array([-5, -1, 0, 1, 6143, 6144, 8191, 8192, *edges, *rng.integers(0, 1 << 30, 500), 2**62], dtype=np.int64)
    expected = [rplacevit.history.AGE_NEVER if a < 0 else plain_age_bucket(int(a)) for a in ages]
    np.testing.assert_array_equal(_core.age_buckets_of(ages), expected)
    np.testing.assert_array_equal(models.age_bucket(torch.from_numpy(ages)).numpy(), expected)
    assert _core.age_buckets_of(ages.reshape(-1, 1)).shape == (len(ages), 1)
    # models.py repeats the reader's constants so that it loads without the extension.
    assert (models.AGE_NEVER, models.AGE_OUTSIDE, models.AGE_VOCABULARY) == (
        rplacevit.history.AGE_NEVER, rplacevit.history.AGE_OUTSIDE, rplacevit.history.AGE_BUCKETS + 2)
    from rplacevit.users import SEED_WIDTH
    assert models.USER_FEATURES == SEED_WIDTH
    assert models.placer_count_bucket(torch.tensor([0, 1, 2, 3, 4, 7, 8, 2**15 - 1, 2**15, 2**40])).tolist() == [
        0, 1, 2, 2, 3, 3, 4, 15, 16, 16]
