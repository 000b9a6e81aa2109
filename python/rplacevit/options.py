"""Settings dataclasses as command-line options, so that a setting is written once: its name,
type, default and help live on the dataclass field (:func:`option`), and the command line is
derived from them (:func:`add_options`, :func:`from_options`).

Messages of the library name arguments by their Python names in backquotes (`` `force=True` ``,
`` `batch_size` ``); the command line turns them into its flags (:func:`as_flags`), so no flag
name is written outside the command line. Values as users type them: :func:`parse_region`
(times and durations: :mod:`rplacevit.times`).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any, Callable

from ._core import ArgumentError


def option(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None, short: str | None = None,
           metavar: str | None = None, parse: Callable[[str], Any] | None = None, choices=None, nargs: int | None = None,
           positional: bool = False, exclusive: str | None = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is also a command-line option: ``--name-with-dashes`` (or
    ``flag``), typed by the field's annotation (or ``parse``), required when it has no default.
    ``exclusive`` names a group of options of which exactly one is given."""
    metadata = dict(help=help, flag=flag, short=short, metavar=metavar, parse=parse, choices=choices, nargs=nargs,
                    positional=positional, exclusive=exclusive)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"option": metadata})


#: The types an option's annotation may start with (``int | None`` is an int option).
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _base_type(field: dataclasses.Field) -> type | None:
    """The option type of a field's annotation: its first name (``int`` of ``int | None``);
    read from the annotation's text, which ``from __future__ import annotations`` leaves
    unevaluated (and Python 3.9 could not evaluate)."""
    text = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    match = re.match(r"\s*(\w+)", text)
    return _TYPES.get(match.group(1)) if match else None


def argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` as an argparse ``type``: its ArgumentError message becomes argparse's usage
    error for the argument (argparse would replace it by "invalid value")."""

    def typed(text: str):
        try:
            return parse(text)
        except ArgumentError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    typed.__name__ = parse.__name__
    return typed


def add_options(parser: argparse.ArgumentParser, config_class, *, skip: tuple[str, ...] = ()) -> None:
    """Adds one argument per :func:`option` field of ``config_class`` (fields in ``skip``
    excepted), in the order of the fields."""
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for field in dataclasses.fields(config_class):
        spec = field.metadata.get("option")
        if spec is None or field.name in skip:
            continue
        kind = _base_type(field)
        default = field.default if field.default is not dataclasses.MISSING else None
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        kwargs: dict[str, Any] = {"help": spec["help"]}
        if kind is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = argument_type(spec["parse"]) if spec["parse"] else kind
            if spec["choices"] is not None:
                kwargs["choices"] = spec["choices"]
            if spec["metavar"] is not None:
                kwargs["metavar"] = spec["metavar"]
            if spec["nargs"] is not None:
                kwargs["nargs"] = spec["nargs"]
            if default is not None:
                kwargs["help"] += " (default: %(default)s)"
        if spec["positional"]:
            parser.add_argument(field.name, **kwargs)
            continue
        names = [n for n in (spec["short"], spec["flag"] or "--" + field.name.replace("_", "-")) if n]
        kwargs.update(dest=field.name, default=default)
        if spec["exclusive"]:
            if spec["exclusive"] not in groups:
                groups[spec["exclusive"]] = parser.add_mutually_exclusive_group(required=True)
            groups[spec["exclusive"]].add_argument(*names, **kwargs)
        else:
            parser.add_argument(*names, required=required and kind is not bool, **kwargs)


def from_options(args: argparse.Namespace, config_class, **others):
    """The ``config_class`` of the parsed options (see :func:`add_options`), with ``others``
    for the fields the command line sets another way."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)
              if "option" in f.metadata and hasattr(args, f.name)}
    return config_class(**{**values, **others})


def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Python name → what the command line calls it: ``--flag``, or ``METAVAR`` for a
    positional argument."""
    names = {}
    for action in parser._actions:
        if action.dest in ("help", argparse.SUPPRESS):
            continue
        if action.option_strings:
            names[action.dest] = max(action.option_strings, key=len)
        else:
            names[action.dest] = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return names


_MENTION = re.compile(r"`([a-z_][a-z0-9_]*)(=True)?`")


def as_flags(message: str, names: dict[str, str]) -> str:
    """``message`` with every backquoted argument it knows (`` `force=True` ``, `` `t0` ``)
    written as the command line's flag (``--force``, ``--from``)."""
    return _MENTION.sub(lambda m: names.get(m.group(1), m.group(0)) if m.group(1) in names else m.group(0), message)


def quoted(value, limit: int = 30) -> str:
    """``value`` as a message quotes what a user typed: its repr, cut after ``limit``
    characters, so that a hostile megabyte of input makes a one-line message."""
    text = value if isinstance(value, str) else str(value)
    return repr(value) if len(text) <= limit else f"{text[:limit]!r}…"


def parse_region(text: str | None) -> tuple[int, int, int, int] | None:
    """``x0,y0,x1,y1`` (x1, y1 exclusive) → a tuple; None stays None."""
    if text is None:
        return None
    try:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
    except ValueError:
        raise ArgumentError(f"region {quoted(text)}: expected x0,y0,x1,y1 (four integers)") from None
    if not (x0 < x1 and y0 < y1):
        raise ArgumentError(f"region {quoted(text)}: needs x0 < x1 and y0 < y1")
    return x0, y0, x1, y1
