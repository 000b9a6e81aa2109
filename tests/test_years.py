"""Every r/place year: the format told by the header, 2023's centred coordinates, rectangles and
circles, one year per dataset (see tests/data/formats-README.md for the fixture's answers)."""

from __future__ import annotations

import csv
import re
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pytest

import rplacevit
import rplacevit.users
from conftest import DATA, GROWTH, plain_bounds, utc_ms
from rplacevit.times import format_time

FIXTURE_2023 = DATA / "place2023_fixture.csv"
ORIGIN_2023 = (-1500, -1000)
WIDTH, HEIGHT = 3000, 2000


def plain_events_2023(path) -> list[tuple[int, int, int, int, bool]]:
    """``(timestamp ms, x, y, palette index, moderation)`` of a 2023 file, stored coordinates,
    time order (ties in file order), read with nothing of rplacevit but its palette."""
    palette = {hex_.upper(): i for i, hex_ in enumerate(rplacevit.PALETTE_HEX)}
    events = []
    with open(path, newline="") as f:
        rows = csv.reader(f)
        assert next(rows) == ["timestamp", "user", "coordinate", "pixel_color"]
        for stamp, _user, coordinate, hex_ in rows:
            when = datetime.strptime(stamp.removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S.%f" if "." in stamp else "%Y-%m-%d %H:%M:%S")
            ms = int(when.replace(tzinfo=timezone.utc).timestamp() * 1000 + 0.5)
            color = palette[hex_.upper()]
            if coordinate.startswith("{"):
                cx, cy, r = map(int, re.fullmatch(r"\{X: (-?\d+), Y: (-?\d+), R: (\d+)\}", coordinate).groups())
                cells = [(x, y) for y in range(cy - r, cy + r + 1) for x in range(cx - r, cx + r + 1) if (x - cx) ** 2 + (y - cy) ** 2 <= r * r]
                moderation = True
            else:
                numbers = [int(n) for n in coordinate.split(",")]
                if len(numbers) == 2:
                    cells, moderation = [tuple(numbers)], False
                else:
                    xa, ya, xb, yb = numbers
                    cells = [(x, y) for y in range(min(ya, yb), max(ya, yb) + 1) for x in range(min(xa, xb), max(xa, xb) + 1)]
                    moderation = True
            for x, y in cells:
                sx, sy = x - ORIGIN_2023[0], y - ORIGIN_2023[1]
                if 0 <= sx < WIDTH and 0 <= sy < HEIGHT:
                    events.append((ms, sx, sy, color, moderation))
    events.sort(key=lambda e: e[0])  # stable: ties keep the file's order
    return events


@pytest.fixture(scope="module")
def dataset_2023(tmp_path_factory):
    out = tmp_path_factory.mktemp("y2023") / "d"
    rplacevit.ingest(FIXTURE_2023, out, progress=False)
    return out


def test_2023_fixture_has_the_documented_answers(dataset_2023):
    info = rplacevit.info(dataset_2023)
    assert (info["year"], info["canvas_width"], info["canvas_height"], tuple(info["canvas_origin"])) == (2023, WIDTH, HEIGHT, ORIGIN_2023)
    assert (info["rows"], info["events"], info["moderation_events"], info["users"]) == (14, 48, 40, 4)
    assert format_time(info["first_timestamp_ms"]) == "2023-07-20T13:00:25.000Z"
    assert format_time(info["last_timestamp_ms"]) == "2023-07-20T13:00:37.000Z"
    h = rplacevit.open(dataset_2023)
    assert (h.year, h.canvas_origin) == (2023, ORIGIN_2023)
    final = h.canvas_before(len(h))
    assert final.shape == (HEIGHT, WIDTH)
    assert final[765, 1301] == rplacevit.PALETTE_HEX.index("#FF4500")  # (-199, -235): the earlier row came first
    assert final[1999, 2999] == rplacevit.PALETTE_HEX.index("#00CCC0")  # the tie at (1499, 999): the file's order
    assert final[0, 0] == rplacevit.PALETTE_HEX.index("#51E9F4")  # (-1500, -1000)
    assert rplacevit.verify(dataset_2023, progress=False) == []


def test_2023_events_and_replay_equal_a_plain_reading(dataset_2023):
    h = rplacevit.open(dataset_2023)
    expected = plain_events_2023(FIXTURE_2023)
    columns = h.events()
    got = list(zip(*(np.asarray(columns[k]).tolist() for k in ("timestamp", "x", "y", "color"))))
    assert got == [e[:4] for e in expected]
    canvas = np.full((HEIGHT, WIDTH), rplacevit.WHITE, np.uint8)
    times = sorted({e[0] for e in expected})
    done = 0
    for t in times:
        while done < len(expected) and expected[done][0] <= t:
            _, x, y, color, _ = expected[done]
            canvas[y, x] = color
            done += 1
        np.testing.assert_array_equal(h.canvas_at(t), canvas, err_msg=f"t={t}")


def write_rows(path, header: str, rows: list[str]) -> None:
    path.write_text(header + "\n" + "".join(row + "\n" for row in rows))


def test_one_dataset_holds_one_year(tmp_path):
    with pytest.raises(rplacevit.FormatError, match=r"place2023_fixture\.csv: an r/place 2023 file among 2022 ones: one dataset holds one year"):
        rplacevit.ingest([DATA / "quirks_2022.csv", FIXTURE_2023], tmp_path / "d", progress=False)
    assert not (tmp_path / "d").exists()


def test_headers_name_the_known_formats(tmp_path):
    unknown = tmp_path / "unknown.csv"
    write_rows(unknown, "time,who,where,what", ['2023-07-20 13:00:26 UTC,a,"1,1",#FFFFFF'])
    with pytest.raises(rplacevit.FormatError) as error:
        rplacevit.ingest(unknown, tmp_path / "d", progress=False)
    message = str(error.value)
    assert message.startswith(f"{unknown}: wrong header `time,who,where,what`")
    for year, header in rplacevit.store.KNOWN_HEADERS:
        assert f"`{header}` ({year})" in message


def test_year_forces_the_format_of_a_copy_with_another_header(tmp_path):
    renamed = tmp_path / "renamed.csv"
    lines = FIXTURE_2023.read_text().splitlines()
    write_rows(renamed, "time,user_hash,coord,color", lines[1:])
    with pytest.raises(rplacevit.FormatError, match="wrong header"):
        rplacevit.ingest(renamed, tmp_path / "d", progress=False)
    rplacevit.ingest(renamed, tmp_path / "d", progress=False, year=2023)
    assert rplacevit.info(tmp_path / "d")["events"] == 48
    with pytest.raises(rplacevit.ArgumentError, match="no r/place format for the year 2019: rplacevit reads 2017, 2022, 2023"):
        rplacevit.ingest(renamed, tmp_path / "e", progress=False, year=2019)


def test_bad_2023_rows_name_file_line_and_reason(tmp_path):
    bad = tmp_path / "bad_2023.csv"
    write_rows(bad, "timestamp,user,coordinate,pixel_color", [
        '2023-07-20 13:00:26 UTC,a,"1,1",#FFFFFF',
        '2023-07-20 13:00:27 UTC,a,"1500,0",#FFFFFF',
        '2023-07-20 13:00:28 UTC,a,"{X: 0, Y: -1001, R: 4}",#FFFFFF',
        '2023-07-20 13:00:29 UTC,a,"{X: 0, Y: 0}",#FFFFFF',
        '2023-07-20 13:00:30 UTC,a,"2,2",#FF4501',
        '2023-07-20 13:00:31 UTC,a,#FFFFFF,"3,3"',
    ])
    with pytest.raises(rplacevit.FormatError, match=r"bad_2023\.csv:3: coordinate `1500,0`: 1500 is outside the 3000x2000 canvas \(-1500 to 1499\)"):
        rplacevit.ingest(bad, tmp_path / "d", progress=False)
    summary = rplacevit.ingest(bad, tmp_path / "d", progress=False, on_error="skip")
    assert (summary["events"], summary["rejected_rows"]) == (1, 5)
    with open(tmp_path / "d" / "rejects.csv", newline="") as f:
        rejects = {int(row["line"]): row["reason"] for row in csv.DictReader(f)}
    assert sorted(rejects) == [3, 4, 5, 6, 7]
    assert "-1001 is outside" in rejects[4] and "expected `X: x, Y: y, R: r`" in rejects[5]
    assert "not a color of the 2023 palette" in rejects[6] and "not a color" in rejects[7]


def test_info_command_shows_the_year_and_origin(dataset_2023):
    result = subprocess.run([sys.executable, "-m", "rplacevit", "info", str(dataset_2023)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "year               2023" in result.stdout
    assert "3000×2000 (official coordinates from -1500, -1000)" in result.stdout


def test_canvas_bounds_follow_each_years_growth(dataset_2023, tmp_path):
    rplacevit.ingest(DATA / "quirks_2022.csv", tmp_path / "d", progress=False)
    for year, h in ((2022, rplacevit.open(tmp_path / "d")), (2023, rplacevit.open(dataset_2023))):
        for start, *box in GROWTH[year][1:]:
            t = utc_ms(start)
            for moment in (t - 1, t, t + 1):
                assert h.canvas_bounds_at(moment) == plain_bounds(year, moment), (year, start, moment)
            assert h.canvas_bounds_at(t) == tuple(box)
        assert h.canvas_bounds_at(-(2**63)) == tuple(GROWTH[year][0][1:])


def test_windows_mark_cells_not_yet_open_as_outside(tmp_path):
    """Events on both sides of each 2022 expansion, next to its edge: the windows, ages and
    time targets against a plain replay that applies the documented growth."""
    rows = [
        ("2022-04-01 13:00:00.000", "a", "#FF4500", "998,10"),
        ("2022-04-01 13:00:01.000", "b", "#2450A4", "10,998"),
        ("2022-04-02 16:24:55.999", "a", "#000000", "999,500"),
        ("2022-04-02 16:24:56.000", "c", "#FFD635", "1000,500"),
        ("2022-04-02 16:24:57.000", "b", "#00A368", "999,999"),
        ("2022-04-03 19:03:52.999", "a", "#6D001A", "1500,999"),
        ("2022-04-03 19:03:53.000", "c", "#811E9F", "1500,1000"),
        ("2022-04-03 19:03:54.000", "b", "#FFFFFF", "1501,999"),
    ]
    source = tmp_path / "edges.csv"
    write_rows(source, "timestamp,user_id,pixel_color,coordinate", [f'{t} UTC,{u},{c},"{xy}"' for t, u, c, xy in rows])
    rplacevit.ingest(source, tmp_path / "d", progress=False)
    h = rplacevit.open(tmp_path / "d")
    size = 8
    ids = np.arange(len(h), dtype=np.int64)
    windows, ages, times = h.windows(ids, size), h.age_buckets(ids, size), h.time_targets(ids, size)
    e = h.events()
    canvas = np.full((h.canvas_height, h.canvas_width), rplacevit.WHITE, np.uint8)
    outside_cells = 0
    for i in ids:
        x, y, t = int(e["x"][i]), int(e["y"][i]), int(e["timestamp"][i])
        x0, y0, x1, y1 = plain_bounds(2022, t)
        for r in range(size):
            for c in range(size):
                px, py = x - size // 2 + c, y - size // 2 + r
                if x0 <= px < x1 and y0 <= py < y1:
                    assert windows[i, r, c] == canvas[py, px], (i, r, c)
                    assert ages[i, r, c] != rplacevit.history.AGE_OUTSIDE
                else:
                    outside_cells += 1
                    assert windows[i, r, c] == rplacevit.OUTSIDE, (i, r, c)
                    assert ages[i, r, c] == rplacevit.history.AGE_OUTSIDE
                    assert times[i, r, c] == 1.0
        canvas[y, x] = e["color"][i]
    assert outside_cells > 0
    # The event at (1000, 500) one millisecond before the canvas grew would see only OUTSIDE on
    # its right: its window at the moment of growth sees the opened cells.
    assert windows[3, size // 2, size // 2 + 1] != rplacevit.OUTSIDE
    assert windows[2, size // 2, size // 2 + 1] == rplacevit.OUTSIDE


def test_2023_windows_see_the_first_square_only_at_the_start(dataset_2023):
    h = rplacevit.open(dataset_2023)
    e = h.events()
    ids = np.arange(len(h), dtype=np.int64)
    windows = h.windows(ids, 4)
    for i in ids:
        x, y = int(e["x"][i]), int(e["y"][i])
        inside = 1000 <= x < 2000 and 500 <= y < 1500
        assert (windows[i, 2, 2] != rplacevit.OUTSIDE) == inside, (i, x, y)


def test_exact_duplicates_are_kept_or_dropped_and_counted(tmp_path):
    source = DATA / "duplicates_2022.csv"
    kept = rplacevit.ingest(source, tmp_path / "kept", progress=False)
    assert (kept["rows"], kept["events"], kept["duplicates_dropped"]) == (9, 57, 0)
    dropped = rplacevit.ingest(source, tmp_path / "dropped", progress=False, dedupe=True)
    assert (dropped["rows"], dropped["events"], dropped["duplicates_dropped"], dropped["moderation_events"]) == (9, 30, 27, 25)
    assert rplacevit.info(tmp_path / "dropped")["duplicates_dropped"] == 27
    # Against a plain dedupe of the kept events: the first of each (time, user, pixel, color, kind).
    h = rplacevit.open(tmp_path / "kept")
    e = h.events()
    meta = sqlite3.connect(f"file:{tmp_path / 'kept' / 'meta.sqlite'}?mode=ro", uri=True)
    moderation = {event for (event,) in meta.execute("SELECT event_id FROM moderation")}
    keys = list(zip(*(np.asarray(e[k]).tolist() for k in ("timestamp", "user_id", "x", "y", "color"))))
    keys = [key + (i in moderation,) for i, key in enumerate(keys)]
    first = [key for i, key in enumerate(keys) if key not in keys[:i]]
    d = rplacevit.open(tmp_path / "dropped").events()
    got = list(zip(*(np.asarray(d[k]).tolist() for k in ("timestamp", "user_id", "x", "y", "color"))))
    assert got == [key[:5] for key in first]
    result = subprocess.run([sys.executable, "-m", "rplacevit", "ingest", str(source), "-o", str(tmp_path / "cli"), "--dedupe"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "9 (0 rejected, 27 exact duplicates dropped)" in result.stdout


PALETTE_2017 = ["#FFFFFF", "#E4E4E4", "#888888", "#222222", "#FFA7D1", "#E50000", "#E59500", "#A06A42",
                "#E5D900", "#94E044", "#02BE01", "#00E5F0", "#0083C7", "#0000EA", "#E04AFF", "#820080"]


@pytest.fixture(scope="module")
def dataset_2017(tmp_path_factory):
    out = tmp_path_factory.mktemp("y2017") / "d"
    rplacevit.ingest(DATA / "tile_placements_2017.csv", out, progress=False)
    return out


def test_2017_has_its_canvas_palette_and_answers(dataset_2017, tmp_path):
    info = rplacevit.info(dataset_2017)
    assert (info["year"], info["canvas_width"], info["canvas_height"], info["rows"], info["events"], info["users"]) == (2017, 1000, 1000, 6, 6, 3)
    h = rplacevit.open(dataset_2017)
    assert (h.palette, h.white) == (PALETTE_2017, 0)
    final = h.canvas_before(len(h))
    assert (final[258, 326], final[0, 0], final[999, 999], final[0, 500]) == (5, 3, 13, 1)
    assert np.count_nonzero(final) == 4  # the rest is white: index 0
    assert h.canvas_bounds_at(0) == (0, 0, 1000, 1000)
    assert rplacevit.verify(dataset_2017, progress=False) == []
    # The picture is in 2017's colors; the palette table of meta.sqlite says them too.
    import imageio.v3 as iio

    from rplacevit.render import render

    render(h, h.time_range[1], tmp_path / "final.png", region=(320, 250, 330, 260))
    picture = iio.imread(tmp_path / "final.png")
    assert tuple(picture[8, 6]) == (0xE5, 0x00, 0x00) and tuple(picture[0, 0]) == (255, 255, 255)
    meta = sqlite3.connect(f"file:{dataset_2017 / 'meta.sqlite'}?mode=ro", uri=True)
    assert [hex_ for (hex_,) in meta.execute("SELECT hex FROM palette ORDER BY id")] == PALETTE_2017


def test_2017_mirror_rejects_its_quirks_by_line(tmp_path):
    source = DATA / "place_tiles_2017.csv"
    with pytest.raises(rplacevit.FormatError, match=r"place_tiles_2017\.csv:3: empty x_coordinate"):
        rplacevit.ingest(source, tmp_path / "d", progress=False)
    summary = rplacevit.ingest(source, tmp_path / "d", progress=False, on_error="skip")
    assert (summary["year"], summary["events"], summary["rejected_rows"]) == (2017, 2, 5)
    with open(tmp_path / "d" / "rejects.csv", newline="") as f:
        rejects = {int(row["line"]): row["reason"] for row in csv.DictReader(f)}
    assert rejects == {3: "empty x_coordinate", 4: "x_coordinate: 1000 is outside the 1000x1000 canvas (0 to 999)",
                       5: "y_coordinate: 1000 is outside the 1000x1000 canvas (0 to 999)", 6: "empty color",
                       7: "color `16` is not an index of the 2017 palette (0 to 15)"}
    e = rplacevit.open(tmp_path / "d").events()
    assert [int(e["timestamp"][0]) % 1000, int(e["color"][0]), int(e["color"][1])] == [500, 5, 12]
    # Both 2017 variants are one year: they go into one dataset.
    both = rplacevit.ingest([DATA / "tile_placements_2017.csv", source], tmp_path / "both", progress=False, on_error="skip")
    assert (both["year"], both["events"]) == (2017, 8)


def write_2017_from(history: rplacevit.History, path) -> None:
    """The events of a 2022 history as a 2017 file: colors folded into the 16 indices."""
    e = history.events()
    with open(path, "w") as f:
        f.write("ts,user,x_coordinate,y_coordinate,color\n")
        for t, u, x, y, c in zip(*(np.asarray(e[k]).tolist() for k in ("timestamp", "user_id", "x", "y", "color"))):
            f.write(f"{t},u{u},{x},{y},{c % 16}\n")


def test_a_2017_model_trains_evaluates_paints_and_refuses_another_palette(sample_dataset, tmp_path):
    from rplacevit.evaluate import evaluate
    from rplacevit.infer import InferConfig, infer
    from rplacevit.models import load_model
    from rplacevit.train import TrainConfig, train

    write_2017_from(rplacevit.open(sample_dataset), tmp_path / "s2017.csv")
    rplacevit.ingest(tmp_path / "s2017.csv", tmp_path / "d2017", progress=False)
    h = rplacevit.open(tmp_path / "d2017")
    first, last = h.time_range
    until = first + (last - first) * 3 // 4
    train(TrainConfig(task="color", dataset=str(tmp_path / "d2017"), out=str(tmp_path / "run"), preset="tiny", steps=20, batch_size=32,
                      val_every=10, val_samples=256, device="cpu", until=until, model=dict(window=16, centre=4, patch=4)), progress=False)
    model = load_model(tmp_path / "run" / "model.pt")
    assert model.config.palette == tuple(PALETTE_2017)
    report = evaluate(tmp_path / "d2017", str(tmp_path / "run" / "model.pt"), t0=until, samples=200, device="cpu", progress=False)
    assert report["color"]["n"] == 200
    with pytest.raises(ValueError, match="trained on a palette of 16 colors .* has another of 32"):
        evaluate(sample_dataset, str(tmp_path / "run" / "model.pt"), t0=until, samples=50, device="cpu", progress=False)
    other = evaluate(sample_dataset, str(tmp_path / "run" / "model.pt"), t0=until, samples=50, device="cpu", progress=False,
                     allow_other_palette=True)
    assert other["color"]["n"] == 50
    # Painting from white: 2017's white is index 0, and every color placed is one of its 16.
    run = infer(tmp_path / "run" / "model.pt", None, InferConfig(steps=300, canvas_size=(32, 32), temperature=1.0, png=str(tmp_path / "p.png"),
                                                                 progress=False))
    assert run.canvas.max() < 16
    import imageio.v3 as iio

    colors = {tuple(c) for c in iio.imread(tmp_path / "p.png").reshape(-1, 3)}
    assert colors <= {tuple(int(h_[i:i + 2], 16) for i in (1, 3, 5)) for h_ in PALETTE_2017}
    with pytest.raises(ValueError, match="palette"):
        infer(tmp_path / "run" / "model.pt", None, InferConfig(steps=1, dataset=str(sample_dataset), at=until, progress=False))


def test_timelapse_users_and_export_work_on_2017_and_2023(dataset_2017, dataset_2023, tmp_path):
    """The commands downstream of ingest, on each year's fixture: the timelapse in its colors, the
    users' features and table, the export in official coordinates."""
    import imageio.v3 as iio

    for year, dataset, palette, region in ((2017, dataset_2017, PALETTE_2017, "250,200,400,300"),
                                           (2023, dataset_2023, rplacevit.PALETTE_HEX, "1250,700,1350,800")):
        out = tmp_path / str(year)
        done = subprocess.run([sys.executable, "-m", "rplacevit", "timelapse", str(dataset), "-o", str(out / "t.mp4"),
                               "--gif", str(out / "t.gif"), "--every", "2s", "--region", region, "--quiet"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        last = iio.imread(out / "t.gif", index=None)[-1][..., :3].reshape(-1, 3)
        allowed = {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in palette}
        assert {tuple(int(v) for v in c) for c in np.unique(last, axis=0)} <= allowed
        h = rplacevit.open(dataset)
        features = rplacevit.users.features(h)
        assert int(features["count"].sum()) == len(h) and len(features["count"]) == h.users
        done = subprocess.run([sys.executable, "-m", "rplacevit", "users", str(dataset)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        try:
            from rplacevit.export import export
            import pyarrow.parquet as pq
        except ImportError:
            continue
        export(h, out / "e.parquet", progress=False)
        table = pq.read_table(out / "e.parquet")
        assert table.num_rows == len(h) and set(table.column("color_hex").to_pylist()) <= set(palette)


@pytest.fixture(scope="module")
def synthetic_2023(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth2023")
    summary = rplacevit.synth(folder / "s.csv.gz", 60_000, seed=5, progress=False, year=2023)
    rplacevit.ingest(folder / "s.csv.gz", folder / "d", progress=False)
    return folder / "d", summary


def test_a_2023_synthetic_history_grows_like_the_event(synthetic_2023):
    dataset, summary = synthetic_2023
    h = rplacevit.open(dataset)
    info = rplacevit.info(dataset)
    assert (h.year, h.canvas_width, h.canvas_height, info["rows"]) == (2023, 3000, 2000, 60_000)
    assert summary["moderation_rows"] > 0 and info["events"] == summary["events"]
    e = h.events()
    t, x, y, color = (np.asarray(e[k]).astype(np.int64) for k in ("timestamp", "x", "y", "color"))
    # Every event lies on the canvas open at its time, and each stage of the growth is used.
    stages = [utc_ms(start) for start, *_ in GROWTH[2023][1:]]
    for k, (start, end) in enumerate(zip([t[0]] + stages, stages + [t[-1] + 1])):
        x0, y0, x1, y1 = plain_bounds(2023, start)
        inside = (t >= start) & (t < end)
        assert inside.any(), k
        assert ((x[inside] >= x0) & (x[inside] < x1) & (y[inside] >= y0) & (y[inside] < y1)).all(), k
    # 8 colors until 2023-07-21 21:30:25, all 32 by the end.
    assert len(np.unique(color[t < utc_ms("2023-07-21 21:30:25.000")])) <= 8
    assert len(np.unique(color)) == 32
    # Replay: canvas_at at many times against a plain replay of the events.
    canvas = np.full((2000, 3000), rplacevit.WHITE, np.uint8)
    done = 0
    for moment in np.linspace(t[0], t[-1], 12).astype(np.int64):
        while done < len(t) and t[done] <= moment:
            canvas[y[done], x[done]] = color[done]
            done += 1
        np.testing.assert_array_equal(h.canvas_at(int(moment)), canvas, err_msg=str(moment))
    # Windows: OUTSIDE exactly off the canvas open at the event's time.
    ids = np.random.default_rng(2).integers(0, len(h), 300)
    size = 32
    windows = h.windows(ids, size)
    for w, i in zip(windows, ids):
        x0, y0, x1, y1 = plain_bounds(2023, int(t[i]))
        cols = np.arange(size) + x[i] - size // 2
        rows = np.arange(size) + y[i] - size // 2
        open_ = ((rows >= y0) & (rows < y1))[:, None] & ((cols >= x0) & (cols < x1))[None, :]
        np.testing.assert_array_equal(w == rplacevit.OUTSIDE, ~open_, err_msg=str(i))


def test_2023_synthetic_files_hold_circles_and_centred_coordinates(synthetic_2023, tmp_path):
    dataset, _ = synthetic_2023
    import gzip

    lines = gzip.decompress((dataset.parent / "s.csv.gz").read_bytes()).decode().splitlines()
    assert lines[0] == "timestamp,user,coordinate,pixel_color"
    assert any('"{X: ' in line or line.count(",") == 6 for line in lines)  # its moderation row: a circle or a rectangle
    assert any(",\"-" in line for line in lines)  # negative (centred) coordinates


def test_a_2017_synthetic_history(tmp_path):
    summary = rplacevit.synth(tmp_path / "s.csv", 20_000, seed=2, progress=False, year=2017)
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "ts,user,x_coordinate,y_coordinate,color"
    assert summary["moderation_rows"] == 0 and summary["events"] == 20_000
    rplacevit.ingest(tmp_path / "s.csv", tmp_path / "d", progress=False)
    h = rplacevit.open(tmp_path / "d")
    e = h.events()
    assert (h.year, h.canvas_width, int(np.asarray(e["color"]).max()) < 16, len(h)) == (2017, 1000, True, 20_000)
    first, last = h.time_range
    assert utc_ms("2017-03-31 17:00:00.000") <= first and last <= utc_ms("2017-04-03 17:00:00.000")
