"""The README's examples run as they stand: every ```bash and ```python block, in order, in one
fresh folder, on the shipped sample. A block whose first line is ``# needs: …`` (the official
data, a GPU, half an hour of CPU) is skipped, and so are the two install commands of the quick
start (``pip install …``: what CI itself runs)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```$", re.S | re.M)


def blocks() -> list[tuple[int, str, str]]:
    """(line, language, code) of every bash and python block of the README."""
    text = README.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def skipped(language: str, code: str) -> str | None:
    """Why a block is not run, or None. A block that needs an optional Python package (``#
    needs: the Python package duckdb``) runs where it is installed."""
    first = code.lstrip().splitlines()[0]
    package = re.fullmatch(r"# needs: the Python package (\w+)", first)
    if package:
        return None if importlib.util.find_spec(package.group(1)) else first[2:]
    if first.startswith("# needs:"):
        return first[2:]
    if language == "bash" and first.startswith("pip install"):
        return "installs the package"
    return None


def test_the_readme_marks_what_it_cannot_run():
    found = blocks()
    assert len(found) >= 15
    reasons = [skipped(language, code) for _, language, code in found]
    assert sum(reason is None for reason in reasons) >= 12
    allowed = ("needs: the official", "needs: about", "needs: the Python package", "needs: DuckDB's sqlite extension", "needs: a browser",
               "installs")
    assert all(reason is None or reason.startswith(allowed) for reason in reasons), reasons


def test_every_readme_block_runs_on_the_sample(tmp_path):
    if shutil.which("rplacevit") is None:
        pytest.skip("the rplacevit command is not installed (pip install .)")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("RPLACEVIT_DATA", None)
    for line, language, code in blocks():
        if skipped(language, code):
            continue
        command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"README.md:{line} ({language}) failed:\n{code}\n--- stderr:\n{done.stderr[-3000:]}"
    # What the examples promise to write is there.
    for name in ["sample/manifest.json", "canvas.png", "whole.png", "place.mp4", "place.gif", "runs/color/model.pt",
                 "runs/time/model.pt", "paint.mp4", "paint.png", "white.png", "report/report.json", "user.png",
                 "clusters/clusters.csv", "synthetic.csv.gz", "events.parquet", "evening.png"]:
        assert (tmp_path / name).exists(), name


def test_ci_runs_the_readme_test_command():
    readme = README.read_text()
    ci_command = (README.parent / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```bash\n{ci_command}\n```" in readme


def test_readme_opens_with_the_demo_command():
    readme = README.read_text()
    assert readme.index("rplacevit demo") < readme.index("python -m pytest")
