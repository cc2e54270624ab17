"""Times and durations as the CLI accepts them: ISO 8601 or relative
(``10m``, ``2h``, ``3d``, ``1h30m``). Errors are ``BadInput`` naming the option."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import BadInput

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?\s*[a-z]+\s*)+$")


def _relative_seconds(text: str) -> float | None:
    t = text.strip().lower()
    if t.endswith(" ago"):
        t = t[:-4].strip()
    if not t or not _WHOLE.match(t):
        return None
    total = 0.0
    for num, unit in _PART.findall(t):
        if unit not in _UNITS:
            return None
        total += float(num) * _UNITS[unit]
    return total


def parse_duration(text: str, option: str = "--timeout", *, allow_zero: bool = False) -> float:
    """Seconds (> 0) from ``30``, ``2.5``, ``30s``, ``10m``, ``1h30m``.

    Zero, negative and non-finite values get one message naming the option
    (a zero timeout would cancel or give up at once: never what was meant);
    ``allow_zero``: zero is a duration too (an age: ``wf gc --older-than 0``)."""
    t = text.strip()
    try:
        seconds = float(t)
    except ValueError:
        rel = _relative_seconds(t)
        if rel is None:
            raise BadInput(
                f"{option}: {text!r} is not a duration (seconds, or e.g. 30s, 10m, 2h)"
            ) from None
        seconds = rel
    if allow_zero and seconds == 0:
        return 0.0
    if not 0 < seconds < float("inf"):  # also false for NaN
        zero = "zero or " if allow_zero else ""
        raise BadInput(
            f"{option}: {text!r} must be {zero}a positive number of seconds (or e.g. 30s, 10m, 2h)"
        )
    return seconds


def parse_time(text: str, option: str = "--since", now: datetime | None = None) -> datetime:
    """An aware datetime (UTC) from ISO 8601 or a relative form meaning 'that long ago'.

    A naive ISO time is local time."""
    t = text.strip()
    now = now or datetime.now(UTC)
    if t.lower() == "now":
        return now
    rel = _relative_seconds(t)
    if rel is not None:
        return now - timedelta(seconds=rel)
    iso = t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise BadInput(
            f"{option}: {text!r} is not a time (use ISO 8601 like 2025-01-31T12:00:00Z, or 10m, 2h, 3d)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time
    return dt.astimezone(UTC)
