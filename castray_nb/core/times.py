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
