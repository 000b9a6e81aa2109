"""What a hostile or unlucky user found in the second round of probing (issue 29), beside the
output folder rule (test_output_folders.py), downloads (test_download.py) and the viewer
(test_view.py): work bounded before it starts, leftovers of a killed run cleaned up, and one-line
messages that name the argument or the file."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import rplacevit
from rplacevit.files import atomic_path
from rplacevit.render import MAX_GIF_BYTES
from test_guarantees import in_process, names, one_line_error, small_disk  # noqa: F401 (a fixture)


def png_of_size(path: Path, width: int, height: int) -> Path:
    """A valid grey PNG of any size in a few kB: its rows are all zero, deflated by zlib."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def color_model(tmp_path_factory) -> Path:
    """A tiny untrained color model's checkpoint: what infer needs to get to its start canvas."""
    import torch

    from rplacevit.models import ModelConfig, build_model, to_checkpoint

    path = tmp_path_factory.mktemp("model") / "color.pt"
    torch.save(to_checkpoint(build_model(ModelConfig.preset("tiny", "color", window=16, centre=4))), path)
    return path


def peak_rss_of(code: str) -> tuple[subprocess.CompletedProcess, int]:
    """Runs ``code`` in a fresh interpreter; its result and its peak resident memory in bytes."""
    script = code + "\nimport resource, sys\nprint('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, file=sys.stderr)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    peak = [int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("peak ")]
    return result, peak[0] if peak else -1


# --- 11. infer --init: the image's size is checked from its header ---------------------------


def test_11_a_huge_start_image_is_refused_from_its_header(color_model, tmp_path, capsys):
    for side in (6000, 20000):  # 20000² also trips Pillow's own bomb check
        image = png_of_size(tmp_path / f"huge{side}.png", side, side)
        assert image.stat().st_size < 1 << 20
        result = in_process(capsys, "infer", "--color-model", color_model, "--random-pixel", "--steps", "1", "--init", image,
                            "--png", tmp_path / "out.png")
        one_line_error(result, 2, f"--init {image}", "pixels a canvas may have")
    from rplacevit.infer import MAX_CANVAS_PIXELS, InferConfig, image_to_canvas

    with pytest.raises(rplacevit.ArgumentError, match="`canvas_size` 8192×4096: more than the 16,777,216 pixels"):
        InferConfig(steps=1, canvas_size=(1 << 13, 1 << 12))
    assert MAX_CANVAS_PIXELS == 1 << 24
    # A large image that is allowed converts a band at a time: memory near the image's own size.
    large = png_of_size(tmp_path / "large.png", 4000, 4000)
    _, imported = peak_rss_of("from rplacevit.infer import image_to_canvas")
    result, peak = peak_rss_of(f"from rplacevit.infer import image_to_canvas\nc = image_to_canvas({str(large)!r})\n"
                               "assert c.shape == (4000, 4000) and (c == 27).all()")
    assert result.returncode == 0, result.stderr
    # The old conversion took about 88 bytes a pixel (1.4 GB here); now the image, the canvas
    # and a 32 MB color table, 4 to 5 bytes a pixel with a band's worth besides.
    assert peak - imported < 200 << 20, (peak, imported)
    assert image_to_canvas(large).shape == (4000, 4000)


def test_11_the_banded_conversion_equals_the_whole_image_one(tmp_path):
    from PIL import Image

    from rplacevit.infer import image_to_canvas

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (300, 70, 4), dtype=np.uint8)  # more distinct colors than a band
    path = tmp_path / "noise.png"
    Image.fromarray(rgba, "RGBA").save(path)
    # The oracle: every pixel blended onto white in floats, then the nearest palette color.
    alpha = rgba[..., 3:].astype(np.float64) / 255
    rgb = np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.int64)
    palette = np.array(rplacevit.PALETTE_RGB, dtype=np.int64)
    expected = ((rgb[..., None, :] - palette) ** 2).sum(axis=-1).argmin(axis=-1)
    import rplacevit.infer as infer_module

    for band_pixels in (70, 7 * 70, 1 << 18):
        infer_module.CONVERT_PIXELS, saved = band_pixels, infer_module.CONVERT_PIXELS
        try:
            np.testing.assert_array_equal(image_to_canvas(path), expected)
        finally:
            infer_module.CONVERT_PIXELS = saved


# --- 12. infer --gif: frames × pixels bounded before the run ----------------------------------


def test_12_a_gif_too_large_to_keep_is_refused_before_painting(color_model, tmp_path, capsys):
    common = ["infer", "--color-model", color_model, "--random-pixel", "--canvas-size", "64", "64"]
    clock = time.monotonic()
    one_line_error(in_process(capsys, *common, "--steps", "2000000", "--frame-every", "1", "--gif", tmp_path / "a.gif"), 2,
                   "2,000,001 frames are more than 200,000", "choose a larger --frame-every")
    frames = MAX_GIF_BYTES // (512 * 512 * 3) + 1  # each within the frame limit, too many bytes together
    one_line_error(in_process(capsys, *common, "--steps", str(frames - 1), "--frame-every", "1", "--scale", "8", "--gif", tmp_path / "a.gif"),
                   2, "would keep", "in memory, more than")
    assert time.monotonic() - clock < 30 and names(tmp_path) == []
    # The same frames into an mp4 alone are streamed: allowed (checked, not run here).


# --- 13. users cluster: the picture is bounded whatever --clusters is ------------------------


def test_13_many_clusters_draw_a_bounded_picture(sample_dataset, tmp_path):
    pytest.importorskip("sklearn")
    from PIL import Image

    from rplacevit.users import MOSAIC_CLUSTERS, cluster

    history = rplacevit.open(sample_dataset)
    written = cluster(history, tmp_path / "c", clusters=400, until=history.time_range[0] + 3_600_000, progress=False)
    with Image.open(written["clusters.png"]) as picture:
        width, height = picture.size
    assert width * height < 2_000_000, picture.size  # 100 tiles; 400 made 1066×5200 before, 2,963 made 1066×38648
    labels = np.load(written["clusters.npy"])
    assert labels.max() == 399 and MOSAIC_CLUSTERS == 100


def test_13_few_users_and_seeds_scikit_learn_refuses_are_our_messages(sample_dataset, tmp_path, capsys):
    pytest.importorskip("sklearn")
    history = rplacevit.open(sample_dataset)
    first = int(history.events(0, 3)["timestamp"][2]) + 1  # two or three users so far
    result = in_process(capsys, "users", "cluster", sample_dataset, "-o", tmp_path / "c", "--clusters", "2", "--until", str(first), "--quiet")
    assert result.returncode == 0, result.stderr  # PCA of two users: no "n_components=3" error
    one_line_error(in_process(capsys, "users", "cluster", sample_dataset, "-o", tmp_path / "d", "--seed", str(2**32)), 2,
                   "--seed", "expected an integer from 0 to 4294967295")
    assert "random_state" not in capsys.readouterr().err


# --- 14. export: a killed run's partial file is cleaned, and never ends in .parquet -----------


def test_14_a_killed_exports_partial_file_is_removed_by_the_next_and_never_globbed(sample_dataset, tmp_path):
    pytest.importorskip("pyarrow")
    out = tmp_path / "events.parquet"
    script = (f"import os, signal, rplacevit.export as e\n"
              f"real = e.progress_bar\n"
              f"class Killed:\n"
              f"    def __init__(self, *a, **k): self.bar = real(*a, **k)\n"
              f"    def __enter__(self): self.bar.__enter__(); return self\n"
              f"    def __exit__(self, *a): return self.bar.__exit__(*a)\n"
              f"    def update(self, n): os.kill(os.getpid(), signal.SIGKILL)\n"
              f"e.progress_bar = Killed\n"
              f"e.export({str(sample_dataset)!r}, {str(out)!r}, row_group_events=20_000, progress=False)\n")
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    left = names(tmp_path)
    assert len(left) == 1 and left[0].startswith(".events.parquet.partial-") and not left[0].endswith(".parquet"), left
    assert not list(tmp_path.glob("*.parquet"))
    # What an older version left (the suffix kept) goes too.
    (tmp_path / ".events.partial-999999999.parquet").write_bytes(b"PAR1 half")
    from rplacevit.export import export

    export(sample_dataset, out, progress=False)
    assert names(tmp_path) == ["events.parquet"]
    import duckdb

    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/*.parquet'").fetchall()[0][0] == len(rplacevit.open(sample_dataset))


def test_14_a_live_writers_partial_file_is_kept(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = tmp_path / f".out.png.partial-{sleeper.pid}"
        theirs.write_bytes(b"being written")
        with atomic_path(tmp_path / "out.png", keep_suffix=False) as temporary:
            temporary.write_bytes(b"mine")
        assert theirs.exists() and (tmp_path / "out.png").read_bytes() == b"mine"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_14_an_export_onto_a_full_disk_names_the_file(sample_dataset, small_disk, capsys):  # noqa: F811 - the fixture
    pytest.importorskip("pyarrow")
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # the disk full but for 64 kB
        f.write(b"\0" * ((32 << 20) - (64 << 10)))
    out = small_disk / "events.parquet"
    result = in_process(capsys, "export", sample_dataset, "-o", out, "--quiet")
    one_line_error(result, 1, f"{out}: ", "No space left on device")
    assert names(small_disk) == ["filler"]


# --- 15. messages -----------------------------------------------------------------------------


def test_15_an_ingest_that_rejects_every_row_is_a_runtime_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text('timestamp,user_id,pixel_color,coordinate\n2022-04-04 00:53:51.577 UTC,abc,#ZZZZZZ,"1,2"\n')
    one_line_error(in_process(capsys, "ingest", bad, "-o", tmp_path / "d", "--on-error", "skip"), 1,
                   f"{bad}: no events to ingest: 1 data rows, 1 rejected", f"{bad}:2:")
    assert names(tmp_path) == ["bad.csv"]


def test_15_a_negative_seed_names_its_flag(tmp_path, capsys):
    one_line_error(in_process(capsys, "infer", "--color-model", tmp_path / "none.pt", "--random-pixel", "--steps", "1", "--seed", "-1",
                              "--png", tmp_path / "a.png"), 2, "--seed", "-1", "expected an integer >= 0")


def test_15_get_into_the_current_folder_names_it_before_any_download(tmp_path, capsys, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    one_line_error(in_process(capsys, "get", "-o", ".", "--base-url", "http://127.0.0.1:9/"), 2,
                   f"{tmp_path}: is not empty and was not written by rplacevit")
    assert names(tmp_path) == ["notes.txt"] and not (tmp_path.parent / f"{tmp_path.name}-files").exists()
