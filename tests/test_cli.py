"""The command line as a whole: options derived from the settings dataclasses (one default each),
flags in messages, help for every argument, the version, and fast start for commands without
models."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import rplacevit
from rplacevit.cli import COMMANDS, build_parser
from rplacevit.infer import InferConfig
from rplacevit.options import as_flags, flags_of
from rplacevit.train import TrainConfig


def option_fields(config_class) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(config_class) if "option" in f.metadata]


@pytest.mark.parametrize(("command", "config_class", "required"), [
    ("train", TrainConfig, ["color", "DATA", "-o", "RUN", "--steps", "5"]),
    ("infer", InferConfig, ["--color-model", "C", "--random-pixel", "--steps", "5"]),
])
def test_every_setting_is_an_option_with_the_dataclass_default(command, config_class, required):
    _, parsers = build_parser(command)
    parser = parsers[command]
    names = flags_of(parser)
    fields = option_fields(config_class)
    assert fields and all(f.name in names for f in fields), [f.name for f in fields if f.name not in names]
    parsed = parser.parse_args(required)
    for field in fields:
        if field.default is not dataclasses.MISSING and field.name != "steps":
            assert getattr(parsed, field.name) == field.default, field.name


def test_library_messages_name_the_command_lines_flags():
    names = {"force": "--force", "t0": "--from", "dataset": "DATASET", "max_rectangle_pixels": "--max-rectangle-pixels"}
    assert as_flags("pass `force=True` to replace it", names) == "pass --force to replace it"
    assert as_flags("`t0` 2022-04-01 is before …; choose a later `t0`", names) == "--from 2022-04-01 is before …; choose a later --from"
    assert as_flags("needs both `dataset` and `at`", names) == "needs both DATASET and `at`"  # `at` is not an option here
    assert as_flags("`#FF4501` is not a color", names) == "`#FF4501` is not a color"


def test_every_argument_of_every_command_has_help():
    _, parsers = build_parser("all")
    for name, parser in parsers.items():
        for action in parser._actions:
            if action.dest != "help":
                assert action.help, (name, action.dest)


def test_version_and_a_fast_start_without_torch():
    version = subprocess.run([sys.executable, "-m", "rplacevit", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"rplacevit {rplacevit.__version__}"
    script = ("import sys, rplacevit.cli\n"
              "rplacevit.cli.build_parser('info')\n"
              "assert 'torch' not in sys.modules, 'torch imported'\n"
              "assert callable(rplacevit.load_model) and 'torch' in sys.modules\n")
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True).stderr == ""


def test_usage_errors_name_flags_and_exit_2(sample_dataset, tmp_path, capsys):
    from rplacevit.cli import main

    cases = [(["train", "color", sample_dataset, "-o", tmp_path / "r", "--steps", "0"], "--steps = 0"),
             (["infer", "--color-model", "x.pt", "--random-pixel", "--steps", "3", "--dataset", sample_dataset, "--png", tmp_path / "a.png"],
              "--dataset needs --at"),
             (["ingest", rplacevit.SAMPLE_CSV, "-o", tmp_path / "d", "--partition-size", "5"], "--partition-size 5 is too small")]
    for argv, message in cases:
        assert main([str(a) for a in argv]) == 2
        assert message in capsys.readouterr().err
    assert set(COMMANDS) >= {"train", "infer", "evaluate", "ingest", "verify"}
    assert list(tmp_path.iterdir()) == []
