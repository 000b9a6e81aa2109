"""Times and durations as users type them, to and from integer milliseconds since the Unix epoch
(UTC), the unit of every timestamp in rplacevit."""

from __future__ import annotations

import numbers
import re
from datetime import datetime, timedelta, timezone

from ._core import ArgumentError
from .options import quoted

_DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


#: Milliseconds of the first and last instants of years 1 to 9999, the times ISO 8601 can write.
EARLIEST_MS, LATEST_MS = -62_135_596_800_000, 253_402_300_799_999


def parse_time(text: str | int) -> int:
    """``2022-04-03T12:00:00Z`` (ISO 8601; no zone means UTC) or integer milliseconds → ms, of
    years 1 to 9999."""
    if isinstance(text, numbers.Integral) and not isinstance(text, bool):
        return _in_range(int(text), text)
    if not isinstance(text, str):
        raise ArgumentError(f"time {quoted(text)}: expected ISO 8601 text or integer milliseconds")
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        # int() refuses texts of 4,300 digits and more; 20 already hold any int64.
        return _in_range(int(text) if len(text) <= 21 else None, text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ArgumentError(f"time {quoted(text)}: expected ISO 8601 like 2022-04-03T12:00:00Z or integer milliseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return round(moment.timestamp() * 1000)


def _in_range(ms: int | None, text) -> int:
    """``ms`` when it lies in years 1 to 9999 (None: a number too long to)."""
    if ms is None or not EARLIEST_MS <= ms <= LATEST_MS:
        raise ArgumentError(f"time {quoted(text)}: milliseconds outside years 1 to 9999")
    return ms


def parse_duration(text: str | int) -> int:
    """``30m``, ``1h``, ``90s``, ``500ms``, ``2d`` (or integer milliseconds) → ms."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", text)
    if not match:
        raise ArgumentError(f"duration {text!r}: expected a number with a unit ms, s, m, h or d, like 30m")
    value, unit = match.groups()
    milliseconds = float(value) * _DURATION_UNITS_MS[unit or "ms"]
    if milliseconds <= 0:
        raise ArgumentError(f"duration {text!r} must be positive")
    return round(milliseconds)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def format_time(ms: int) -> str:
    """ISO 8601 UTC text of a timestamp in milliseconds (of years 1 to 9999), exactly: integer
    arithmetic, no float seconds."""
    moment = _EPOCH + timedelta(milliseconds=int(ms))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
