"""The output folder rule (rplacevit.outputs), through every command that writes a folder: a
folder is a command's own only when it carries the marker the command wrote at creation (or,
made before the marker, its whole set of files); no other folder is written into or replaced,
with or without --force, and each refusal is the same error (exit status 2) naming the folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import rplacevit
from rplacevit.outputs import MARKER
from test_guarantees import QUIRKS, in_process, names, one_line_error

FOREIGN = "is not empty and was not written by rplacevit"


def users_folder(path: Path, *files: str) -> dict[str, str]:
    """A folder of a user's files (each holding its own name), returned as name → content."""
    written = {}
    for name in files:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(f"the user's {name}")
        written[name] = f"the user's {name}"
    return written


def unchanged(path: Path, written: dict[str, str]) -> None:
    assert sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) == sorted(written)
    for name, text in written.items():
        assert (path / name).read_text() == text


def marker_kind(folder: Path) -> str:
    marker = json.loads((folder / MARKER).read_text())
    assert marker["written_by"] == "rplacevit" and marker["version"] == rplacevit.__version__
    return marker["kind"]


def test_1_users_cluster_never_replaces_a_users_folder_that_holds_a_clusters_npy(sample_dataset, tmp_path, capsys):
    pytest.importorskip("sklearn")
    thesis = tmp_path / "thesis"
    written = users_folder(thesis, "thesis.tex", "src/main.py", "clusters.npy")
    for force in ([], ["--force"]):
        result = in_process(capsys, "users", "cluster", sample_dataset, "-o", thesis, "--clusters", "3", "--quiet", *force)
        one_line_error(result, 2, f"{thesis}: {FOREIGN}")
        unchanged(thesis, written)
    out = tmp_path / "clusters"
    assert in_process(capsys, "users", "cluster", sample_dataset, "-o", out, "--clusters", "3", "--quiet").returncode == 0
    assert marker_kind(out) == "clusters" and (out / "clusters.png").exists()
    one_line_error(in_process(capsys, "users", "cluster", sample_dataset, "-o", out, "--clusters", "3", "--quiet"), 2,
                   f"{out}: already holds a clusters: pass --force to replace it")
    result = in_process(capsys, "users", "cluster", sample_dataset, "-o", out, "--clusters", "4", "--quiet", "--force")
    assert result.returncode == 0 and result.stdout == result.stderr == ""  # --quiet: nothing but errors


def test_2_evaluate_force_never_replaces_a_users_folder_that_holds_a_report_json(sample_dataset, tmp_path, capsys):
    paper = tmp_path / "paper"
    written = users_folder(paper, "report.json", "data/measurements.txt", "paper.tex")
    missing = tmp_path / "no-model.pt"  # refused before any model is read
    for force in ([], ["--force"]):
        one_line_error(in_process(capsys, "evaluate", sample_dataset, "--color-model", missing, "-o", paper, *force), 2,
                       f"{paper}: {FOREIGN}")
        unchanged(paper, written)


def test_3_train_never_trains_into_a_users_folder_that_holds_a_metrics_csv(sample_dataset, tmp_path, capsys):
    mine = tmp_path / "measurements"
    written = users_folder(mine, "metrics.csv", "notes.txt")
    for resume in ([], ["--resume"]):
        one_line_error(in_process(capsys, "train", "color", sample_dataset, "-o", mine, "--preset", "tiny", "--steps", "2", *resume), 2,
                       f"{mine}: {FOREIGN}")
        unchanged(mine, written)


def test_every_command_that_writes_a_folder_refuses_a_users_folder_with_one_error(sample_dataset, tmp_path, capsys):
    mine = tmp_path / "mine"
    written = users_folder(mine, "notes.txt")
    commands = [
        (["ingest", QUIRKS, "-o", mine, "--force"], "with or without --force"),
        (["train", "time", sample_dataset, "-o", mine, "--preset", "tiny", "--steps", "2"], "with or without --resume"),
        (["evaluate", sample_dataset, "--color-model", tmp_path / "none.pt", "-o", mine, "--force"], "with or without --force"),
        (["demo", "-o", mine], "refusing to write into it or replace it"),
    ]
    for argv, says in commands:
        one_line_error(in_process(capsys, *argv), 2, f"{mine}: {FOREIGN}", says)
        unchanged(mine, written)
    with pytest.raises(rplacevit.OutputExistsError, match=f"{FOREIGN}.*with or without `force=True`"):
        rplacevit.ingest([QUIRKS], mine, force=True)
    assert issubclass(rplacevit.OutputExistsError, rplacevit.ArgumentError)


def test_force_replaces_only_an_output_of_the_same_kind(sample_dataset, tmp_path, capsys):
    dataset = tmp_path / "dataset"
    rplacevit.ingest([QUIRKS], dataset)
    assert marker_kind(dataset) == "dataset"
    assert rplacevit.verify(dataset, progress=False) == []  # the marker is one of its checked files
    before = names(dataset)
    one_line_error(in_process(capsys, "evaluate", sample_dataset, "--color-model", tmp_path / "none.pt", "-o", dataset, "--force"),
                   2, f"{dataset}: holds a rplacevit dataset ({MARKER}), not a report")
    one_line_error(in_process(capsys, "demo", "-o", dataset), 2, f"{dataset}: holds a rplacevit dataset")
    assert names(dataset) == before and rplacevit.info(dataset)["events"] > 0
    # A marker that is not one rplacevit wrote is refused too.
    mine = tmp_path / "mine"
    users_folder(mine, MARKER, "notes.txt")
    one_line_error(in_process(capsys, "ingest", QUIRKS, "-o", mine, "--force"), 2, f"{MARKER} in it is not a marker rplacevit wrote")


def test_outputs_made_before_the_marker_are_recognised_by_their_whole_set_of_files(tmp_path, capsys):
    dataset = tmp_path / "dataset"
    rplacevit.ingest([QUIRKS], dataset)
    # A dataset of the version before: the same files, no marker (its manifest lists none).
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if f["path"] != MARKER]
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    (dataset / MARKER).unlink()
    one_line_error(in_process(capsys, "ingest", QUIRKS, "-o", dataset), 2, "already holds a dataset: pass --force")
    assert in_process(capsys, "ingest", QUIRKS, "-o", dataset, "--force", "--quiet").returncode == 0
    assert marker_kind(dataset) == "dataset"
    # A demo folder of the version before carried a marker of its own.
    demo = tmp_path / "demo"
    users_folder(demo, ".rplacevit-demo", "final.png")
    from rplacevit.demo import prepare

    prepare(demo)
    assert names(demo) == [MARKER] and marker_kind(demo) == "demo"
    # A report folder: all of its files, and only those.
    report = tmp_path / "report"
    users_folder(report, "report.json", "report.md", "events.npy", "confusion.png", "examples.png")
    assert rplacevit.outputs.check(report, "report", True)
    (report / "paper.tex").write_text("mine")
    with pytest.raises(rplacevit.OutputExistsError, match=FOREIGN):
        rplacevit.outputs.check(report, "report", True)
    shutil.rmtree(report)


def test_4_a_history_answers_user_lookups_from_its_dataset_after_a_reingest_replaced_it(tmp_path):
    out = tmp_path / "d"
    rplacevit.ingest([QUIRKS], out)
    history = rplacevit.open(out)
    users, first = history.users, history.user_hash(0)
    rplacevit.ingest([rplacevit.SAMPLE_CSV], out, force=True)  # the folder it opened is removed
    assert not rplacevit.open(out).user_hash(0) == first
    assert history.users == users and history.user_hash(0) == first and history.user_id(first) == 0
    assert history.user_hash(users - 1) is not None and history.user_id("no such hash") is None
