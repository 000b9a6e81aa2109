"""Pictures: PNGs in the official colors, timelapses that decode, time and region arguments."""

from __future__ import annotations

import subprocess
import sys

import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
import pytest

import rplacevit
from rplacevit.options import parse_region
from rplacevit.render import frame_times, to_rgb
from rplacevit.times import format_time, parse_duration, parse_time

PALETTE = np.array(rplacevit.PALETTE_RGB, dtype=np.uint8)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "rplacevit", *map(str, args)], capture_output=True, text=True)


def test_render_png_is_the_real_canvas_in_official_colors(sample_dataset, real_snapshots, tmp_path):
    x0, y0 = int(real_snapshots["x0"]), int(real_snapshots["y0"])
    k = 20
    t_ms = int(real_snapshots["timestamp_s"][k]) * 1000
    out = tmp_path / "canvas.png"
    result = run_cli("render", sample_dataset, "--at", format_time(t_ms), "-o", out, "--region", f"{x0},{y0},{x0 + 128},{y0 + 128}")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(iio.imread(out)[..., :3], PALETTE[real_snapshots["canvas"][k]])
    scaled = tmp_path / "scaled.png"
    assert run_cli("render", sample_dataset, "--at", str(t_ms), "-o", scaled, "--region", f"{x0},{y0},{x0 + 10},{y0 + 20}", "--scale", "3").returncode == 0
    picture = iio.imread(scaled)[..., :3]
    assert picture.shape == (60, 30, 3)
    np.testing.assert_array_equal(picture[::3, ::3], PALETTE[real_snapshots["canvas"][k][:20, :10]])


def test_render_errors_name_the_argument(sample_dataset, tmp_path):
    for args, message in [(["--at", "yesterday"], "time 'yesterday'"), (["--at", "0", "--region", "1,2,3"], "region '1,2,3'"),
                          (["--at", "0", "--region", "0,0,3000,10"], "not inside the 2000x2000 canvas")]:
        result = run_cli("render", sample_dataset, "-o", tmp_path / "x.png", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr  # usage errors
    assert not (tmp_path / "x.png").exists()
    missing = run_cli("render", tmp_path / "none", "--at", "0", "-o", tmp_path / "x.png")
    assert missing.returncode == 1 and "no such dataset" in missing.stderr
    for command, message in [(["render", sample_dataset, "--at", "99999999999999999999", "-o", tmp_path / "x.png"], "outside years 1 to 9999"),
                             (["render", sample_dataset, "--at", "0", "-o", tmp_path / "x.txt"], "output " + str(tmp_path / "x.txt") + ": expected a .png file"),
                             (["timelapse", sample_dataset, "-o", tmp_path / "t.mp4", "--gif", tmp_path / "t.txt"], "expected a .gif file"),
                             (["timelapse", sample_dataset, "-o", tmp_path / "t.mp4", "--region", "0,0,3000,10"], "not inside the 2000x2000 canvas")]:
        result = run_cli(*command)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    for command, argument in [(["timelapse", sample_dataset, "-o", tmp_path / "t.mp4", "--fps", "0"], "--fps"),
                              (["synth", "-o", tmp_path / "s.csv", "--rows", "-5"], "--rows"),
                              (["ingest", tmp_path / "s.csv", "-o", tmp_path / "d", "--partition-size", "-1"], "--partition-size")]:
        result = run_cli(*command)
        assert result.returncode == 2 and f"argument {argument}: " in result.stderr and ">= 1" in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_timelapse_mp4_and_gif_decode_with_the_expected_frames(sample_dataset, tmp_path):
    history = rplacevit.open(sample_dataset)
    result = run_cli("timelapse", sample_dataset, "-o", tmp_path / "t.mp4", "--gif", tmp_path / "t.gif", "--every", "2h",
                     "--fps", "5", "--region", "250,375,377,502", "--scale", "2")
    assert result.returncode == 0, result.stderr
    expected = len(frame_times(history, 2 * 3_600_000))
    assert expected == 13  # 24 hours every 2 hours, plus the last event
    video = iio2.get_reader(tmp_path / "t.mp4")
    assert video.count_frames() == expected and video.get_data(0).shape == (254, 254, 3)  # 127·2 pixels a side
    video.close()
    gif = iio.imread(tmp_path / "t.gif", index=None)
    assert gif.shape[:3] == (expected, 254, 254)
    last = to_rgb(history.canvas_at(history.time_range[1]), (250, 375, 377, 502), 2)
    np.testing.assert_array_equal(gif[-1][..., :3], last)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.gif", "t.mp4"]


def test_times_durations_and_regions():
    assert parse_time("2022-04-03T12:00:00Z") == 1_648_987_200_000
    assert parse_time("2022-04-03T12:00:00.250+02:00") == 1_648_980_000_250
    assert parse_time("1648987200000") == 1_648_987_200_000
    assert format_time(1_648_987_200_000) == "2022-04-03T12:00:00.000Z"
    assert [parse_duration(d) for d in ("30m", "1h", "90s", "500ms", "2d", "1.5h")] == [1_800_000, 3_600_000, 90_000, 500, 172_800_000, 5_400_000]
    for bad in ("-5m", "0s", "soon", "5y"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_region("1,2,3,4") == (1, 2, 3, 4)
    with pytest.raises(ValueError):
        parse_region("3,2,1,4")
