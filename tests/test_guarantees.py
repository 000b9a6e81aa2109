"""The README's guarantees, tried as a hostile or unlucky user would: concurrent runs on one
output, signals at any moment, readers racing a re-ingest, damaged files, crafted checkpoints.
Each test names the point of issue 11 it covers."""

from __future__ import annotations

import builtins
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import rplacevit
import rplacevit.outputs
from conftest import DATA

QUIRKS = DATA / "quirks_2022.csv"
#: About 3 million rows: an ingest of a few seconds, long enough to be caught in the middle.
SLOW_INPUTS = [rplacevit.SAMPLE_CSV] * 30


def rplacevit_command(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rplacevit", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def run_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rplacevit", *map(str, args)], capture_output=True, text=True, **kwargs)


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def in_process(capsys, *args) -> Result:
    """``rplacevit ARGS`` run in this process (no interpreter and torch start-up per call)."""
    from rplacevit.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def wait_for(condition, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the command ended first: {process.communicate()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def one_line_error(result, code: int, *fragments: str) -> None:
    """The command failed with ``code`` and said so in one line holding every fragment."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# --- 1. loading a checkpoint never runs code ---------------------------------------------------


class CreatesAFile:
    """Unpickled, it creates the file ``path``: what a hostile checkpoint would do."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def test_1_a_crafted_pickle_runs_nothing_anywhere_a_checkpoint_is_read(sample_dataset, tmp_path, capsys):
    from rplacevit.models import ModelConfig, build_model, load_model, to_checkpoint

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"kind": "color", "config": {}, "state_dict": CreatesAFile(marker)}, evil)
    torch.load(evil, weights_only=False)  # the file is real: an unguarded load runs it
    assert marker.exists()
    marker.unlink()

    with pytest.raises(ValueError, match=f"{evil}: refused, it holds objects that are not plain data"):
        load_model(evil)
    good = tmp_path / "good.pt"
    torch.save(to_checkpoint(build_model(ModelConfig.preset("tiny", "color", window=16, centre=4))), good)
    for command in (["infer", "--color-model", evil, "--random-pixel", "--steps", "1", "--png", tmp_path / "a.png", "-o", tmp_path / "a.mp4"],
                    ["infer", "--color-model", good, "--time-model", evil, "--steps", "1", "-o", tmp_path / "a.mp4"],
                    ["evaluate", sample_dataset, "--color-model", evil, "--from", "0", "-o", tmp_path / "r"],
                    ["evaluate", sample_dataset, "--color-model", good, "--time-model", evil, "--from", "0", "-o", tmp_path / "r"]):
        one_line_error(in_process(capsys, *command), 1, str(evil), "refused")
    # --resume reads the newest periodic checkpoint.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.csv").write_text("step,train_loss,val_loss,val_accuracy\n")
    shutil.copy(evil, run / "checkpoints" / "step_00000010.pt")
    result = in_process(capsys, "train", "color", sample_dataset, "-o", run, "--steps", "20", "--resume")
    one_line_error(result, 1, "step_00000010.pt", "refused")
    assert not marker.exists()
    assert names(tmp_path) == ["evil.pt", "good.pt", "run"]


# --- 2. an ingest never deletes what it did not write ------------------------------------------


def test_2_a_folder_created_at_the_output_while_an_ingest_runs_is_kept(tmp_path):
    out = tmp_path / "d"
    process = rplacevit_command("ingest", *SLOW_INPUTS, "-o", out)
    wait_for(lambda: (tmp_path / ".d.staging").exists(), process)
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and f"{out}: is not empty and was not written by rplacevit" in stderr, stderr
    assert (out / "notes.txt").read_text() == "mine" and names(out) == ["notes.txt"]
    assert names(tmp_path) == ["d"]


def test_2_a_second_ingest_to_the_same_output_fails_at_once(tmp_path):
    out = tmp_path / "d"
    first = rplacevit_command("ingest", *SLOW_INPUTS, "-o", out)
    wait_for(lambda: (tmp_path / ".d.staging").exists(), first)
    clock = time.monotonic()
    second = run_cli("ingest", QUIRKS, "-o", out)
    assert time.monotonic() - clock < 30  # at once: it does not wait for the first one (which takes seconds)
    one_line_error(second, 1, f"{out}: another ingest (process {first.pid}) is writing it")
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert rplacevit.info(out)["events"] == 30 * 102_670  # the first one's dataset, whole
    assert names(tmp_path) == ["d"]


def test_2_force_never_replaces_a_folder_that_only_looks_like_a_dataset(tmp_path):
    for marker in ("manifest.json", "meta.sqlite"):
        project = tmp_path / marker.split(".")[0]
        project.mkdir()
        (project / marker).write_text("{}")
        (project / "code.py").write_text("keep me")
        one_line_error(run_cli("ingest", QUIRKS, "-o", project, "--force"), 2, f"{project}: is not empty and was not written by rplacevit")
        assert names(project) == sorted(["code.py", marker])


# --- 3. a replacement cut in the middle is undone or finished ----------------------------------


def test_3_the_leftovers_of_a_replacement_killed_midway_are_recovered(tmp_path):
    out = tmp_path / "d"
    rplacevit.ingest(rplacevit.SAMPLE_CSV, out)
    generation = rplacevit.open(out).generation
    # Killed between the two renames of a replacement: the old dataset is beside the output.
    os.rename(out, tmp_path / ".d.replaced")
    (tmp_path / ".d.staging").mkdir()
    (tmp_path / ".d.staging" / "meta.sqlite").write_text("half written")
    one_line_error(run_cli("ingest", QUIRKS, "-o", out), 2, f"{out}: already holds a dataset: pass --force")
    assert rplacevit.open(out).generation == generation and names(tmp_path) == ["d"]
    # Killed after them: the old dataset is still beside the new one; --force replaces cleanly.
    shutil.copytree(out, tmp_path / ".d.replaced")
    result = run_cli("ingest", QUIRKS, "-o", out, "--force")
    assert result.returncode == 0, result.stderr
    assert rplacevit.info(out)["events"] == 19 and names(tmp_path) == ["d"]


# --- 4 and 5. SIGTERM like Ctrl-C; SIGKILL leaves nothing that looks complete -------------------


def test_4_sigterm_stops_an_ingest_and_a_synth_leaving_nothing(tmp_path):
    for command, staging in ((["ingest", *SLOW_INPUTS, "-o", tmp_path / "d"], ".d.staging"),
                             (["synth", "--rows", "5000000", "-o", tmp_path / "s.csv.gz"], ".s.csv.gz.staging")):
        process = rplacevit_command(*command)
        wait_for(lambda: (tmp_path / staging).exists(), process)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 143 and "terminated" in stderr, (process.returncode, stderr)
        assert names(tmp_path) == []


def test_4_5_sigkill_at_any_moment_leaves_a_complete_dataset_or_none_and_the_next_run_cleans_up(tmp_path):
    inputs = SLOW_INPUTS[:10]
    clock = time.monotonic()
    assert run_cli("ingest", *inputs, "-o", tmp_path / "timing").returncode == 0
    seconds = time.monotonic() - clock
    shutil.rmtree(tmp_path / "timing")
    for fraction in (0.15, 0.35, 0.55, 0.75, 0.9, 0.97):
        folder = tmp_path / f"at{fraction}"
        folder.mkdir()
        process = rplacevit_command("ingest", *inputs, "-o", folder / "d")
        time.sleep(fraction * seconds)
        process.kill()
        process.communicate()
        left = names(folder)
        if "d" in left:  # it had finished: a complete dataset
            assert rplacevit.verify(folder / "d") == []
        # A staging folder is never a dataset, however far it got: renamed by hand, it is
        # refused unless complete (then it is intact).
        if ".d.staging" in left:
            os.rename(folder / ".d.staging", folder / "copy")
            try:
                rplacevit.open(folder / "copy")
                assert rplacevit.verify(folder / "copy") == []
            except rplacevit.DatasetError as error:
                assert "manifest.json is missing" in str(error)
            shutil.rmtree(folder / "copy")
            shutil.copytree(folder / "d" if "d" in left else DATA, folder / ".d.staging")  # a stale staging folder again
        result = run_cli("ingest", QUIRKS, "-o", folder / "d", "--force")
        assert result.returncode == 0, result.stderr
        assert names(folder) == ["d"], names(folder)


def test_4_a_killed_synth_leaves_a_staging_file_that_the_next_synth_removes(tmp_path):
    process = rplacevit_command("synth", "--rows", "5000000", "-o", tmp_path / "s.csv")
    wait_for(lambda: (tmp_path / ".s.csv.staging").exists(), process)
    process.kill()
    process.communicate()
    assert ".s.csv.staging" in names(tmp_path) and "s.csv" not in names(tmp_path)
    assert run_cli("synth", "--rows", "100", "-o", tmp_path / "s.csv").returncode == 0
    assert names(tmp_path) == ["s.csv"]


def test_5_a_folder_without_its_manifest_is_not_a_dataset(sample_dataset, tmp_path):
    copy = tmp_path / "d"
    shutil.copytree(sample_dataset, copy)
    (copy / "manifest.json").unlink()
    for read in (rplacevit.open, rplacevit.info):
        with pytest.raises(rplacevit.DatasetError, match="not a complete dataset: manifest.json is missing"):
            read(copy)
    one_line_error(run_cli("info", copy), 1, "manifest.json is missing")


# --- 6. readers never see two datasets ---------------------------------------------------------

READER = """
import json, sys, time, zlib
import numpy as np
import rplacevit
path, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
seen, errors = [], []
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        h = rplacevit.open(path)
        n = len(h)
        columns = h.events()
        ids = np.array([0, n // 2, n - 1], dtype=np.int64)
        parts = [np.int64(n).tobytes(), columns["color"].tobytes(), columns["timestamp"][-5:].tobytes(),
                 h.canvas_before(n).tobytes(), h.windows(ids, 16).tobytes()]
        seen.append([zlib.crc32(p) for p in parts])
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")
json.dump({"seen": seen, "errors": errors}, open(out, "w"))
"""

WRITER = """
import sys, time
import rplacevit
inputs = [[sys.argv[2]], [sys.argv[2], sys.argv[3]]]
path, seconds = sys.argv[1], float(sys.argv[4])
deadline, count = time.monotonic() + seconds, 0
while time.monotonic() < deadline:
    rplacevit.ingest(inputs[count % 2], path, force=True)
    count += 1
print(count)
"""


def signature(path: Path) -> list[int]:
    h = rplacevit.open(path)
    n = len(h)
    columns = h.events()
    ids = np.array([0, n // 2, n - 1], dtype=np.int64)
    parts = [np.int64(n).tobytes(), columns["color"].tobytes(), columns["timestamp"][-5:].tobytes(),
             h.canvas_before(n).tobytes(), h.windows(ids, 16).tobytes()]
    return [zlib.crc32(p) for p in parts]


def test_6_readers_racing_a_reingest_see_one_whole_dataset_each_time(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    rplacevit.ingest(rplacevit.SAMPLE_CSV, a)
    rplacevit.ingest([rplacevit.SAMPLE_CSV, QUIRKS], b)
    expected = {tuple(signature(a)): "a", tuple(signature(b)): "b"}
    assert len(expected) == 2
    shared = tmp_path / "shared"
    shutil.copytree(a, shared)
    seconds = 15
    (tmp_path / "reader.py").write_text(READER)
    (tmp_path / "writer.py").write_text(WRITER)
    readers = [subprocess.Popen([sys.executable, str(tmp_path / "reader.py"), str(shared), str(seconds), str(tmp_path / f"r{k}.json")])
               for k in range(2)]
    writer = subprocess.run([sys.executable, str(tmp_path / "writer.py"), str(shared), rplacevit.SAMPLE_CSV, str(QUIRKS), str(seconds)],
                            capture_output=True, text=True, timeout=120)
    assert writer.returncode == 0, writer.stderr
    ingests = int(writer.stdout)
    assert ingests >= 3
    for k, reader in enumerate(readers):
        assert reader.wait(timeout=120) == 0
        report = json.loads((tmp_path / f"r{k}.json").read_text())
        assert report["errors"] == []
        kinds = [expected.get(tuple(s), "mixed") for s in report["seen"]]
        assert "mixed" not in kinds and {"a", "b"} <= set(kinds), (len(kinds), kinds.count("a"), kinds.count("b"))
    assert names(tmp_path) == ["a", "b", "r0.json", "r1.json", "reader.py", "shared", "writer.py"]


def test_6_a_history_pickled_to_another_process_refuses_a_replaced_dataset(tmp_path):
    import pickle

    out = tmp_path / "d"
    rplacevit.ingest(QUIRKS, out)
    history = rplacevit.open(out)
    pickle.loads(pickle.dumps(history))  # same dataset: fine
    rplacevit.ingest(QUIRKS, out, force=True)
    with pytest.raises(rplacevit.DatasetError, match="replaced"):
        pickle.loads(pickle.dumps(history))
    assert len(history.events()["color"]) == 19  # the History itself still reads its own dataset


# --- 7. every stored byte verifiable -----------------------------------------------------------


@pytest.fixture(scope="module")
def intact(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "d"
    rplacevit.ingest(rplacevit.SAMPLE_CSV, out, partition_size=25_000)
    return out


def damaged_copy(intact: Path, folder: Path, file: str, offset_from_end: int, value: int | None = None) -> Path:
    """A copy of the dataset with one byte of ``file`` changed (same size)."""
    copy = folder / file.replace("/", "_")
    shutil.copytree(intact, copy)
    path = copy / file
    data = bytearray(path.read_bytes())
    at = len(data) - offset_from_end
    data[at] = value if value is not None else data[at] ^ 0x5A
    path.write_bytes(bytes(data))
    return copy


def test_7_verify_passes_an_intact_dataset(intact):
    assert rplacevit.verify(intact) == [] and rplacevit.open(intact).verify() == []
    result = run_cli("verify", intact)
    assert result.returncode == 0 and "every file matches" in result.stdout, result.stderr


@pytest.mark.parametrize("file", ["events/color.npy", "events/timestamp.npy", "events/x.npy", "index/tile_event_cells.npy",
                                  "index/tile_checkpoints.npy", "snapshots.npy", "partitions/partition_00002.sqlite", "meta.sqlite"])
def test_7_verify_names_each_file_damaged_in_place(intact, tmp_path, file):
    copy = damaged_copy(intact, tmp_path, file, offset_from_end=3000 if file.endswith("sqlite") else 5)
    problems = rplacevit.verify(copy)
    assert problems and all(p.startswith(str(copy)) for p in problems)
    assert any(p.startswith(f"{copy / file}: bytes ") and "checksum" in p for p in problems), problems
    result = run_cli("verify", copy)
    assert result.returncode == 1 and f"{copy / file}: " in result.stderr and "problem(s) found" in result.stderr


def test_7_a_deleted_partition_is_noticed_by_open_and_verify(intact, tmp_path):
    copy = tmp_path / "d"
    shutil.copytree(intact, copy)
    (copy / "partitions" / "partition_00001.sqlite").unlink()
    with pytest.raises(rplacevit.DatasetError, match="partition_00001.sqlite: missing"):
        rplacevit.open(copy)
    assert any("partition_00001.sqlite: missing" in p for p in rplacevit.verify(copy))


def test_7_a_fifo_or_a_path_outside_the_folder_is_refused_not_waited_on_or_read(intact, tmp_path):
    copy = tmp_path / "d"
    shutil.copytree(intact, copy)
    (copy / "events" / "x.npy").unlink()
    os.mkfifo(copy / "events" / "x.npy")
    script = f"import rplacevit\ntry:\n    rplacevit.open({str(copy)!r})\nexcept rplacevit.DatasetError as e:\n    print(e)\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "x.npy" in result.stdout and "not a regular file" in result.stdout, result
    shutil.rmtree(copy)
    shutil.copytree(intact, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"][0]["path"] = "../../etc/passwd"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(rplacevit.DatasetError, match="not a path inside the folder"):
        rplacevit.open(copy)


def test_7_a_color_outside_the_palette_is_reported_with_its_file_never_as_an_index_error(intact, tmp_path):
    event = 100_005  # in the last partition, replayed from its snapshot
    copy = damaged_copy(intact, tmp_path, "events/color.npy", offset_from_end=102_670 - event, value=200)
    history = rplacevit.open(copy)  # sizes and headers are right: it opens
    for read in (lambda: history.canvas_before(event + 1), lambda: history.events(),
                 lambda: history.color_targets(np.array([event]))):
        with pytest.raises(rplacevit.DatasetError, match=rf"events/color.npy: damaged: event {event} has color 200"):
            read()
    t = int(rplacevit.open(intact).events()["timestamp"][event])
    one_line_error(run_cli("render", copy, "--at", t, "-o", tmp_path / "x.png"), 1, "events/color.npy: damaged")
    assert any("color 200" in p for p in rplacevit.verify(copy))


@pytest.mark.parametrize("file, offset_from_end, value, says", [
    ("snapshots.npy", 4_000_000 + 10, 5, "snapshots.npy: snapshot 4 (before event 100000) differs from the replay"),
    ("index/age_change_ticks.npy", 2, None, "age_change_ticks.npy: checkpoint 789 (age tile 956) has ages other than its events give"),
    ("index/age_change_rests.npy", 1_001, None, "age_change_rests.npy: checkpoint 789 (age tile 956) has ages other than its events give"),
    ("index/age_tile_event_times.npy", 3, None, "age_tile_event_times.npy: age tile 956: the time of event 102608 differs from its timestamp"),
    ("index/age_tile_event_pixels.npy", 5, None, "age_tile_event_pixels.npy: age tile 956: the pixel of event 102564 differs from its own"),
    ("index/age_tile_event_ids.npy", 8, None, "age_tile_event_ids.npy: age tile 956: its events are not ascending ids of the history"),
    ("index/age_checkpoint_event_ids.npy", 4, None, "age_checkpoint_event_ids.npy: checkpoint 789 (age tile 956) names the wrong event"),
    ("index/tile_event_times.npy", 3, None, "tile_event_times.npy: tile 3898: the time of event 100444 differs from its timestamp"),
])
def test_7_verify_cross_checks_files_rewritten_with_matching_checksums(intact, tmp_path, file, offset_from_end, value, says):
    # A file changed and the manifest's checksums recomputed: only the replay tells.
    copy = damaged_copy(intact, tmp_path, file, offset_from_end=offset_from_end, value=value)
    recompute_checksums(copy)
    problems = rplacevit.verify(copy)
    assert len(problems) == 1 and says in problems[0], problems


def recompute_checksums(copy: Path) -> None:
    """Makes the manifest's checksums agree with the files as they are now."""
    manifest = json.loads((copy / "manifest.json").read_text())
    block = manifest["checksum_block"]
    for entry in manifest["files"]:
        data = (copy / entry["path"]).read_bytes()
        entry["crc32"] = [f"{zlib.crc32(data[k:k + block]):08x}" for k in range(0, len(data), block)]
    (copy / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("index, side, name", [("tile", 16, "tile"), ("age_tile", 32, "age tile")])
def test_7_verify_finds_a_tile_listing_an_event_of_another_tile(intact, tmp_path, index, side, name):
    # The last event of a tile replaced by a later one from elsewhere: its list still ascends.
    copy = tmp_path / index
    shutil.copytree(intact, copy)
    offsets = np.load(copy / f"index/{index}_offsets.npy")
    ids = np.load(copy / f"index/{index}_event_ids.npy")
    history = rplacevit.open(intact)
    columns = history.events()
    tiles_x = -(-history.canvas_width // side)
    tile = next(t for t in range(len(offsets) - 1) if offsets[t + 1] - offsets[t] >= 2)
    last = int(offsets[tile + 1]) - 1
    tile_of = columns["y"].astype(np.int64) // side * tiles_x + columns["x"].astype(np.int64) // side
    stranger = next(e for e in range(int(ids[last - 1]) + 1, len(tile_of)) if tile_of[e] != tile)
    ids[last] = stranger
    with open(copy / f"index/{index}_event_ids.npy", "r+b") as out:
        np.save(out, ids)
    recompute_checksums(copy)
    problems = rplacevit.verify(copy)
    says = f"{index}_event_ids.npy: {name} {tile} lists event {stranger}, which lies in another tile"
    assert len(problems) == 1 and says in problems[0], problems


# --- 8 and 9. bounded work for small inputs; no abort on a failed allocation --------------------


def rectangles_csv(path: Path, rows: int, rectangle: str = "0,0,1999,1999") -> Path:
    lines = ["timestamp,user_id,pixel_color,coordinate"]
    lines += [f"2022-04-04 22:47:{k % 60:02d}.000 UTC,mod==,#FFFFFF,\"{rectangle}\"" for k in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_8_rectangle_pixels_are_limited(tmp_path):
    hostile = rectangles_csv(tmp_path / "hostile.csv", 20)
    for mode in ("fail", "skip"):
        clock = time.monotonic()
        result = run_cli("ingest", hostile, "-o", tmp_path / "d", "--on-error", mode)
        assert time.monotonic() - clock < 60  # 8 M events expanded, not 80 M
        one_line_error(result, 1, f"{hostile}:4: ", "12000000 pixels, over the limit of 10000000 (--max-rectangle-pixels)")
    small = rectangles_csv(tmp_path / "small.csv", 2, "0,0,99,99")
    one_line_error(run_cli("ingest", small, "-o", tmp_path / "d", "--max-rectangle-pixels", "15000"), 1, f"{small}:3: ")
    assert rplacevit.ingest(small, tmp_path / "d", max_rectangle_pixels=20_000)["events"] == 20_000
    assert names(tmp_path) == ["d", "hostile.csv", "small.csv"]


def test_8_a_tiny_partition_size_is_refused(tmp_path):
    one_line_error(run_cli("ingest", QUIRKS, "-o", tmp_path / "d", "--partition-size", "1"), 2,
                   "--partition-size 1 is too small: at least 10000")
    assert names(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MB file system (tmpfs), where this process may mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_8_a_dataset_the_disk_cannot_hold_is_refused_before_writing(small_disk):
    result = run_cli("ingest", rplacevit.SAMPLE_CSV, "-o", small_disk / "d", "--partition-size", "10000")
    one_line_error(result, 1, "the dataset needs about", "MB of disk space", "but only", "is free there")
    assert names(small_disk) == []
    assert rplacevit.ingest(rplacevit.SAMPLE_CSV, small_disk / "d", partition_size=200_000)["events"] == 102_670  # 2 snapshots fit


def test_9_an_allocation_failure_is_an_error_not_an_abort(tmp_path):
    import resource

    hostile = rectangles_csv(tmp_path / "hostile.csv", 40)  # 160 M events: 2.6 GB

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))

    # Few threads and malloc arenas: the address space goes to the events, not to thread stacks.
    env = dict(os.environ, RAYON_NUM_THREADS="2", MALLOC_ARENA_MAX="2", OPENBLAS_NUM_THREADS="1")
    result = run_cli("ingest", hostile, "-o", tmp_path / "d", "--max-rectangle-pixels", "1000000000", preexec_fn=limit_memory, env=env)
    one_line_error(result, 1, "out of memory", "needs", "more bytes")
    assert names(tmp_path) == ["hostile.csv"]


# --- 10. times out of range ----------------------------------------------------------------------


def test_10_timestamps_outside_2000_to_2099_are_bad_rows(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,user_id,pixel_color,coordinate\n2022-04-01 12:00:00 UTC,a,#FFFFFF,\"1,1\"\n"
                   "0000-01-01 00:00:00 UTC,a,#FFFFFF,\"1,1\"\n")
    one_line_error(run_cli("ingest", bad, "-o", tmp_path / "d"), 1, f"{bad}:3: ", "outside the years 2000 to 2099")


def test_10_a_timelapse_plans_a_bounded_number_of_frames_and_times_print_exactly(intact, tmp_path):
    from rplacevit.times import format_time

    clock = time.monotonic()
    one_line_error(run_cli("timelapse", intact, "-o", tmp_path / "t.mp4", "--every", "1ms"), 2, "frames are more than 200,000", "choose a longer interval")
    assert time.monotonic() - clock < 30 and names(tmp_path) == []
    assert format_time(253_402_300_799_999) == "9999-12-31T23:59:59.999Z"
    assert format_time(1_648_817_050_001) == "2022-04-01T12:44:10.001Z"


# --- 11. one line instead of a traceback ----------------------------------------------------------


def broken_checkpoints(folder: Path) -> dict[str, Path]:
    from rplacevit.models import ModelConfig, build_model, to_checkpoint

    good = to_checkpoint(build_model(ModelConfig.preset("tiny", "color", window=16, centre=4)))
    variants = {
        "missing key": {**good, "state_dict": {k: v for k, v in list(good["state_dict"].items())[1:]}},
        "extra key": {**good, "state_dict": {**good["state_dict"], "surplus": torch.zeros(3)}},
        "wrong shape": {**good, "state_dict": {k: (torch.zeros(7) if i == 0 else v) for i, (k, v) in enumerate(good["state_dict"].items())}},
        "state_dict a list": {**good, "state_dict": list(good["state_dict"].values())},
        "training not a dict": {**good, "training": [1, 2, 3]},
        "13 TB": {**good, "config": {**good["config"], "d_model": 1 << 20, "d_ff": 1 << 22, "blocks": 64}},
    }
    paths = {}
    for k, (what, checkpoint) in enumerate(variants.items()):
        paths[what] = folder / f"broken{k}.pt"
        torch.save(checkpoint, paths[what])
    return paths


def test_11_broken_checkpoints_in_infer_and_evaluate_are_one_line(intact, tmp_path, capsys):
    for what, path in broken_checkpoints(tmp_path).items():
        infer = in_process(capsys, "infer", "--color-model", path, "--random-pixel", "--steps", "1", "--png", tmp_path / "a.png", "-o", tmp_path / "a.mp4")
        one_line_error(infer, 1, str(path))
        evaluate = in_process(capsys, "evaluate", intact, "--color-model", path, "--from", "0", "-o", tmp_path / "r")
        one_line_error(evaluate, 1, str(path))
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "r").exists()


def test_11_resume_from_files_that_are_not_training_states_is_one_line(sample_dataset, tmp_path, capsys):
    from rplacevit.models import ModelConfig, build_model, to_checkpoint

    run = rplacevit.outputs.create(tmp_path / "run", "run", False)  # a run folder, as train makes it
    (run / "checkpoints").mkdir()
    step = run / "checkpoints" / "step_00000010.pt"
    model = tmp_path / "model.pt"
    torch.save(to_checkpoint(build_model(ModelConfig.preset("tiny", "color", window=16, centre=4))), model)
    real = model.read_bytes()
    for what, content in {"random": os.urandom(3000), "empty": b"", "text": b"step,loss\n1,2\n", "truncated": real[: len(real) // 2],
                          "a model.pt": real}.items():
        step.write_bytes(content)
        result = in_process(capsys, "train", "color", sample_dataset, "-o", run, "--steps", "20", "--resume")
        one_line_error(result, 1, str(step))
    step.unlink()
    step.mkdir()  # "[Errno 21]/[Errno 22]" named no file
    one_line_error(in_process(capsys, "train", "color", sample_dataset, "-o", run, "--steps", "20", "--resume"), 1, str(step))


def test_11_render_at_a_huge_scale_is_a_usage_error(intact, tmp_path):
    one_line_error(run_cli("render", intact, "--at", "0", "--scale", "1000", "--region", "all", "-o", tmp_path / "x.png"), 2, "scale 1000", "at most scale 8")


# --- 12. the remaining papercuts -----------------------------------------------------------------


def test_12_resume_accepts_the_same_folder_spelled_differently(sample_dataset, tmp_path):
    common = ["train", "color", sample_dataset, "--steps", "20", "--checkpoint-every", "10", "--val-every", "10",
              "--window", "16", "--centre", "4", "--device", "cpu"]
    assert run_cli(*common, "-o", "run", cwd=tmp_path).returncode == 0
    (tmp_path / "run" / "model.pt").unlink()  # as if it had been stopped after its checkpoint
    result = run_cli(*common, "-o", "./run", "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resumed at step 10" in result.stdout


def test_12_an_unterminated_quote_rejects_its_line_alone(tmp_path):
    text = ("timestamp,user_id,pixel_color,coordinate\n"
            "2022-04-01 12:00:00 UTC,a==,#FFFFFF,\"1,1\n"
            "2022-04-01 12:00:01 UTC,b==,#FF4500,\"2,2\"\n"
            "2022-04-01 12:00:02 UTC,c==,#FF4500,\"3,3\"\n")
    (tmp_path / "q.csv").write_text(text)
    summary = rplacevit.ingest(tmp_path / "q.csv", tmp_path / "d", on_error="skip")
    assert (summary["rows"], summary["rejected_rows"], summary["events"]) == (3, 1, 2)
    rejects = (tmp_path / "d" / "rejects.csv").read_text().splitlines()
    assert len(rejects) == 2 and ",2,unterminated quote" in rejects[1]
    np.testing.assert_array_equal(rplacevit.open(tmp_path / "d").events()["x"], [2, 3])


def test_12_headers_and_hashes(tmp_path):
    header_only = tmp_path / "h.csv"
    header_only.write_text("timestamp,user_id,pixel_color,coordinate\n")
    one_line_error(run_cli("ingest", header_only, "-o", tmp_path / "d"), 1, f"{header_only}: no data rows")
    long_header = tmp_path / "long.csv"
    long_header.write_text("x" * 100_000 + "\n")
    result = run_cli("ingest", long_header, "-o", tmp_path / "d")
    one_line_error(result, 1, f"{long_header}: wrong header", "(more than 65536 bytes)")
    assert len(result.stderr) < 600
    # A first line of a gigabyte, or data without line ends, is refused without reading it all.
    endless = tmp_path / "endless.csv.gz"
    with gzip.open(endless, "wb", compresslevel=1) as f:
        f.write(b"timestamp,user_id,pixel_color,coordinate\n")
        f.write(b"2022-04-01 12:00:00 UTC,a,#FFFFFF,\"1,1\"\n")
        for _ in range(64):
            f.write(b"x" * (1 << 20))
    result = run_cli("ingest", endless, "-o", tmp_path / "d", "--on-error", "skip")
    one_line_error(result, 1, f"{endless}:3: no line end in 4 MiB: not r/place rows")
    for name in ("long.csv", "endless.csv.gz"):
        huge = tmp_path / ("g" + name)
        with gzip.open(huge, "wb", compresslevel=1) as f:
            for _ in range(64):
                f.write(b"y" * (1 << 20))
        one_line_error(run_cli("ingest", huge, "-o", tmp_path / "d"), 1, f"{huge}: wrong header", "(more than 65536 bytes)")
        huge.unlink()
    endless.unlink()
    hashes = tmp_path / "u.csv"
    hashes.write_bytes(b"timestamp,user_id,pixel_color,coordinate\n2022-04-01 12:00:00 UTC,\xff\xfe==,#FFFFFF,\"1,1\"\n")
    one_line_error(run_cli("ingest", hashes, "-o", tmp_path / "d"), 1, f"{hashes}:2: user_id is not valid UTF-8")
    assert names(tmp_path) == ["h.csv", "long.csv", "u.csv"]


def test_12_an_output_name_at_the_file_name_limit_works(tmp_path):
    out = tmp_path / ("d" * 250)
    assert rplacevit.ingest(QUIRKS, out)["events"] == 19
    rplacevit.synth(tmp_path / ("s" * 245 + ".csv"), 10)
    assert names(tmp_path) == sorted([out.name, "s" * 245 + ".csv"])


def test_12_a_caught_panic_prints_no_rust_noise(intact, tmp_path):
    copy = tmp_path / "d"
    shutil.copytree(intact, copy)
    ids = copy / "index" / "tile_event_ids.npy"
    data = bytearray(ids.read_bytes())
    first = len(data) - 4 * 102_670
    data[first:first + 4] = (10**9).to_bytes(4, "little")  # an id past the end: a read that meets it panics
    ids.write_bytes(bytes(data))
    script = ("import numpy as np, rplacevit\n"
              f"h = rplacevit.open({str(copy)!r})\n"
              "try:\n    h.last_change_times(np.arange(len(h), dtype=np.int64), 16)\nexcept rplacevit.DatasetError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0 and "index: damaged: its files contradict each other" in result.stdout, result
    assert result.stderr == ""
