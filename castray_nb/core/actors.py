"""Actors of attached clusters, from the dashboard's State API (``/api/v0/actors``).

Every actor counts, named or not, whatever its class is called. The State API has no
offset. A reply says how many actors passed the filters (``num_filtered``) before
``limit`` cut it: when it was cut, the list is asked again at that size; past the
server's cap (10,000 unless ``RAY_MAX_LIMIT_FROM_API_SERVER`` raises it) it is asked
node by node (``node_id`` is a State API filter). The GCS itself hands the dashboard
at most 10,000 actors (``RAY_MAX_LIMIT_FROM_DATA_SOURCE``); past that a warning says
how many were left out.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .errors import CastrayError
from .nodes import StateCounts, jsonable, state_api_within_cap

if TYPE_CHECKING:
    import pandas as pd

ACTOR_STATES = ("DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD")


@dataclass(frozen=True)
class ActorRecord:
    """One actor of one cluster. Field order is the actor table's column order."""

    cluster: str
    actor_id: str
    class_name: str
    name: str | None  # None for an unnamed actor
    state: str
    node_id: str | None
    pid: int | None
    required_resources: Mapping[str, float] = field(default_factory=dict)
    job_id: str | None = None
    ray_namespace: str | None = None
    is_detached: bool | None = None
    repr_name: str | None = None
    death_cause: str | None = None
    last_seen: dt.datetime | None = None


ACTOR_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ActorRecord))


def checked_state(state: str | None) -> str | None:
    """An actor state as the State API spells it (any case accepted), or None for all."""
    if state is None:
        return None
    upper = state.strip().upper()
    if upper not in ACTOR_STATES:
        raise CastrayError(f"unknown actor state {state!r}; one of {', '.join(ACTOR_STATES)}")
    return upper


def actor_to_json(actor: ActorRecord) -> dict[str, Any]:
    """One actor as JSON-ready values, every column of :data:`ACTOR_COLUMNS`."""
    return {column: jsonable(getattr(actor, column)) for column in ACTOR_COLUMNS}


@dataclass(frozen=True)
class ActorReading:
    actors: list[ActorRecord]
    total: int  # actors that matched; more than len(actors) when some could not be had
    requests: int
    warnings: tuple[str, ...] = ()


def actor_from_state(raw: Mapping[str, Any], *, cluster: str, seen: dt.datetime) -> ActorRecord:
    resources = raw.get("required_resources") or {}
    pid = raw.get("pid")
    return ActorRecord(
        cluster=cluster,
        actor_id=str(raw.get("actor_id") or ""),
        class_name=str(raw.get("class_name") or ""),
        name=str(raw["name"]) if raw.get("name") else None,
        state=str(raw.get("state") or "UNKNOWN"),
        node_id=str(raw["node_id"]) if raw.get("node_id") else None,
        pid=int(pid) if isinstance(pid, int | float) and pid > 0 else None,
        required_resources={str(k): float(v) for k, v in resources.items() if isinstance(v, int | float)}
        if isinstance(resources, Mapping)
        else {},
        job_id=raw.get("job_id"),
        ray_namespace=raw.get("ray_namespace"),
        is_detached=raw.get("is_detached"),
        repr_name=raw.get("repr_name") or None,
        death_cause=_death_cause(raw.get("death_cause")),
        last_seen=seen,
    )


def _death_cause(value: Any) -> str | None:
    """The one line worth showing of Ray's nested death cause."""
    if not isinstance(value, Mapping):
        return None
    for context in value.values():
        if isinstance(context, Mapping) and context.get("error_message"):
            return str(context["error_message"]).strip().splitlines()[0][:300]
    return None


def actors_query(dashboard_url: str, limit: int, *, state: str | None = None, node_id: str | None = None) -> str:
    params: list[tuple[str, str]] = [("detail", "1"), ("limit", str(limit))]
    for key, value in (("state", state), ("node_id", node_id)):
        if value:
            params += [("filter_keys", key), ("filter_predicates", "="), ("filter_values", value)]
    return f"{dashboard_url}/api/v0/actors?{urllib.parse.urlencode(params)}"


def read_actors(
    fetch_url: Callable[[str], Any],
    dashboard_url: str,
    *,
    cluster: str,
    node_ids: Sequence[str],
    state: str | None = None,
    limit: int = 1000,
    max_limit: int = 10_000,
) -> ActorReading:
    """Every actor of a cluster (of ``state``, if given), in as few requests as it takes.

    ``fetch_url(url)`` returns the parsed JSON reply (it carries the timeout and the token);
    ``limit`` is the first request's size, ``max_limit`` the server's cap.
    """
    seen = dt.datetime.now(dt.UTC)
    requests = 0

    def page(size: int, node_id: str | None = None) -> tuple[list[dict[str, Any]], StateCounts]:
        nonlocal requests, max_limit

        def fetch(n: int) -> Any:
            return fetch_url(actors_query(dashboard_url, n, state=state, node_id=node_id))

        rows, counts, accepted, asked = state_api_within_cap(fetch, size, "actor")
        requests += asked
        if accepted < size:  # the server refused ``size``: its own cap is ``accepted``
            max_limit = accepted
        return rows, counts

    rows, counts = page(min(limit, max_limit))
    warnings = []
    if len(rows) < counts.num_filtered:
        if counts.num_filtered <= max_limit:
            rows, counts = page(counts.num_filtered)
        else:
            by_id = {str(r.get("actor_id")): r for r in rows}
            for node_id in node_ids:
                node_rows, node_counts = page(max_limit, node_id)
                by_id.update((str(r.get("actor_id")), r) for r in node_rows)
                if len(node_rows) < node_counts.num_filtered:
                    warnings.append(
                        f"node {node_id[:12]} has {node_counts.num_filtered} actors; the State API returned {max_limit}"
                    )
            rows = list(by_id.values())
    if counts.num_after_truncation < counts.total:
        warnings.append(
            f"the GCS handed over {counts.num_after_truncation} of {counts.total} actors "
            "(RAY_MAX_LIMIT_FROM_DATA_SOURCE on the head raises that)"
        )
    actors = [actor_from_state(r, cluster=cluster, seen=seen) for r in rows]
    return ActorReading(actors, max(counts.num_filtered, len(actors)), requests, tuple(warnings))


def actors_to_dataframe(actors: Sequence[ActorRecord]) -> pd.DataFrame:
    """The actor table: one row per actor, columns in :data:`ACTOR_COLUMNS` order."""
    import pandas as pd

    data = [tuple(getattr(a, c) for c in ACTOR_COLUMNS) for a in actors]
    frame = pd.DataFrame.from_records(data, columns=list(ACTOR_COLUMNS))
    frame["last_seen"] = pd.to_datetime(frame["last_seen"], utc=True)
    frame["pid"] = frame["pid"].astype("Int64")
    return frame
