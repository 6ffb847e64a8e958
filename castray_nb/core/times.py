"""How times are written for people: in UTC, always saying so.

Every face (reprs, the panel, the magics, the CLI's tables, the sidebar) writes a time the
same way, so a time in the panel's status, in a job's row and in a message can be read
side by side. JSON carries ISO 8601 with its offset instead.
"""

from __future__ import annotations

import datetime as dt

ZONE = "UTC"


def clock(when: dt.datetime | None) -> str:
    """``14:03:07 UTC``; ``?`` for no time."""
    return _in_utc(when).strftime("%H:%M:%S ") + ZONE if when else "?"


def stamp(when: dt.datetime | None) -> str:
    """``12-01 14:03:07 UTC``: a time with its day, for lists that span days; ``-`` for none."""
    return _in_utc(when).strftime("%m-%d %H:%M:%S ") + ZONE if when else "-"


def full(when: dt.datetime | None) -> str:
    """``2026-12-01 14:03:07 UTC``; ``-`` for none."""
    return _in_utc(when).strftime("%Y-%m-%d %H:%M:%S ") + ZONE if when else "-"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _in_utc(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def seconds(text: str | float | int) -> float:
    """A duration: a number of seconds, or ``30s``, ``10m``, ``2h``, ``1d``, ``1w``.
    Raises ValueError naming the accepted forms."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text).strip().lower()
        unit = _UNITS.get(raw[-1:]) if raw else None
        number = raw[:-1] if unit else raw
        try:
            value = float(number) * (unit or 1.0)
        except ValueError:
            raise ValueError(
                f"{text!r} is not a duration: give seconds, or a number with s, m, h, d or w (10m, 2h, 1d)"
            ) from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{text!r} is not a duration: it must be more than 0")
    return value


def moment(value: str | float | int | dt.datetime, now: float) -> float:
    """Unix seconds for ``since``/``until``: a duration ago (``10m``, ``2h``, ``1d``, or seconds),
    a :class:`datetime.datetime` (naive is UTC) or an ISO 8601 time."""
    if isinstance(value, dt.datetime):
        return _in_utc(value).timestamp()
    if isinstance(value, str) and ("-" in value[1:] or "T" in value or ":" in value):
        try:
            return _in_utc(dt.datetime.fromisoformat(value.strip())).timestamp()
        except ValueError:
            raise ValueError(f"{value!r} is neither a duration (10m, 2h, 1d) nor an ISO 8601 time") from None
    return now - seconds(value)
