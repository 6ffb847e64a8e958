"""Reading the past: the one place every front end (Python, magics, CLI, REST) asks for
history, events and ended clusters, with their arguments checked the same way.

The history comes from the user's store (:mod:`.history`), or, with a ``prometheus_url``
setting, from that Prometheus server (:mod:`.prometheus`): the same DataFrame either way.
Events, ended clusters and the sidebar's sparklines always come from the store.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .errors import InvalidArgument
from .history import METRICS, History, Seen
from .settings import Settings
from .store import Store
from .times import moment

if TYPE_CHECKING:
    import pandas as pd

When = str | float | int | dt.datetime


def store_history(settings: Settings, clock: Callable[[], float] = time.time) -> History:
    return History(Store(clock=clock), retention_s=settings.history_retention)


def checked_metrics(metrics: str | Iterable[str] | None) -> list[str] | None:
    """The metrics asked for (a name, a comma-separated list or a list), or InvalidArgument."""
    if metrics is None:
        return None
    wanted = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else [str(m) for m in metrics]
    wanted = [m for m in wanted if m]
    unknown = sorted(set(wanted) - set(METRICS))
    if unknown or not wanted:
        raise InvalidArgument(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(METRICS)}")
    return wanted


def span(since: When, until: When | None, now: float) -> tuple[float, float | None]:
    """``since`` and ``until`` as Unix seconds, or InvalidArgument with one clear line."""
    try:
        start = moment(since, now)
        end = None if until is None else moment(until, now)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if end is not None and end < start:
        raise InvalidArgument("'until' is before 'since'")
    return start, end


def history(
    settings: Settings,
    *,
    cluster: str | None = None,
    since: When = "1h",
    until: When | None = None,
    metrics: str | Iterable[str] | None = None,
    node: str | None = None,
    clock: Callable[[], float] = time.time,
) -> pd.DataFrame:
    """The long DataFrame of ``castray_nb.history()`` (columns ``time``, ``cluster``,
    ``node_id``, ``metric``, ``value``)."""
    wanted = checked_metrics(metrics)
    start, end = span(since, until, clock())
    store = store_history(settings, clock)
    if settings.prometheus_url:
        from .prometheus import Prometheus, PrometheusHistory

        source = PrometheusHistory(Prometheus(settings.prometheus_url, timeout=settings.http_timeout), store)
        return source.frame(cluster=cluster, since=start, until=end, metrics=wanted, node=node)
    return store.frame(cluster=cluster, since=start, until=end, metrics=wanted, node=node)


def events(
    settings: Settings,
    *,
    cluster: str | None = None,
    since: When = "1h",
    until: When | None = None,
    clock: Callable[[], float] = time.time,
) -> pd.DataFrame:
    """The DataFrame of ``castray_nb.events()`` (``time``, ``cluster``, ``kind``, ``node_id``,
    ``job``, ``message``), oldest first."""
    start, end = span(since, until, clock())
    return store_history(settings, clock).events_frame(cluster=cluster, since=start, until=end)


def sparklines(
    settings: Settings, *, since: When = "1h", clock: Callable[[], float] = time.time
) -> dict[str, dict[str, object]]:
    """Each recorded cluster's CPU, GPU and memory percentages since ``since``, a minute
    apart (:meth:`.history.History.sparklines`): what the sidebar's cards draw."""
    now = clock()
    start, _ = span(since, None, now)
    return store_history(settings, clock).sparklines(since=start, until=now)


def ended(settings: Settings) -> list[Seen]:
    """The cluster sessions that ended within the retention, each with its last snapshot."""
    return store_history(settings).seen(ended=True)


def rows_json(frame: pd.DataFrame) -> list[dict[str, object]]:
    """A history or events DataFrame as JSON-ready rows: times in ISO 8601, nulls as None."""
    if frame.empty:
        return []
    out = frame.astype(object).where(frame.notna(), None)
    out["time"] = [t.isoformat() for t in frame["time"]]
    return out.to_dict(orient="records")
