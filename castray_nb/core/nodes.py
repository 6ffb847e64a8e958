"""The node model: one record shape for every reader, and the DataFrame users see."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

ALIVE, DEAD, UNREACHABLE = "ALIVE", "DEAD", "UNREACHABLE"


@dataclass(frozen=True)
class Usage:
    """Resources in use on one node, where the cluster reports it."""

    CPU: float | None = None
    GPU: float | None = None
    memory_bytes: float | None = None
    object_store_bytes: float | None = None


@dataclass(frozen=True)
class Physical:
    """What one node's machine uses, from the dashboard's node summary (``/nodes?view=summary``):
    not Ray's logical resources but the host's CPU, memory and GPUs as its agent measured them."""

    cpu_percent: float | None = None  # of all the host's CPUs
    host_memory_used_bytes: float | None = None
    host_memory_total_bytes: float | None = None
    gpu_percent: float | None = None  # mean utilisation of the node's GPUs
    gpu_memory_used_bytes: float | None = None  # all the node's GPUs together


@dataclass(frozen=True)
class NodeRecord:
    """One node of one cluster, as last read. Field order is the table's column order."""

    cluster: str
    source: str  # "local" (the kernel's own Ray runtime) or "external"
    node_id: str
    node_ip: str
    is_head: bool
    state: str  # ALIVE, DEAD, or UNREACHABLE when the cluster stopped answering
    CPU: float
    GPU: float
    memory_bytes: float
    object_store_bytes: float
    # When the session last read this node with exactly this content. A record whose node
    # is read unchanged is kept (not rebuilt) and its last_seen moves on, so it is left out
    # of equality and hashing: equal records are the same node state.
    last_seen: dt.datetime = field(compare=False)
    hostname: str | None = None
    node_name: str | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    state_message: str | None = None
    CPU_used: float | None = None
    GPU_used: float | None = None
    memory_used_bytes: float | None = None
    object_store_used_bytes: float | None = None
    cpu_percent: float | None = None
    host_memory_used_bytes: float | None = None
    host_memory_total_bytes: float | None = None
    gpu_percent: float | None = None
    gpu_memory_used_bytes: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    dashboard_url: str | None = None


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(NodeRecord))
_NO_USAGE = Usage()
_NO_PHYSICAL = Physical()


def ms_to_time(value: Any) -> dt.datetime | None:
    """A time in milliseconds since the epoch (Ray's ``*_time``/``*_time_ms``), None for 0 or junk."""
    try:
        ms = int(value or 0)
    except (TypeError, ValueError):
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC) if ms > 0 else None


def _number(resources: Mapping[str, Any], key: str) -> float:
    try:
        return float(resources.get(key) or 0.0)
    except (TypeError, ValueError):
        return 0.0


def node_from_state(
    raw: Mapping[str, Any],
    *,
    cluster: str,
    source: str,
    seen: dt.datetime,
    dashboard_url: str | None = None,
    usage: Usage | None = None,
    physical: Physical | None = None,
) -> NodeRecord:
    """A record from one State API node (``/api/v0/nodes``) or the GCS equivalent."""
    resources = raw.get("resources_total") or {}
    labels = raw.get("labels") or {}
    usage = usage or _NO_USAGE
    physical = physical or _NO_PHYSICAL
    return NodeRecord(
        cluster=cluster,
        source=source,
        node_id=str(raw.get("node_id") or ""),
        node_ip=str(raw.get("node_ip") or ""),
        is_head=bool(raw.get("is_head_node")),
        state=DEAD if str(raw.get("state", "")).upper() == DEAD else ALIVE,
        CPU=_number(resources, "CPU"),
        GPU=_number(resources, "GPU"),
        memory_bytes=_number(resources, "memory"),
        object_store_bytes=_number(resources, "object_store_memory"),
        last_seen=seen,
        hostname=raw.get("hostname") or raw.get("node_manager_hostname"),
        node_name=raw.get("node_name"),
        start_time=ms_to_time(raw.get("start_time_ms")),
        end_time=ms_to_time(raw.get("end_time_ms")),
        state_message=raw.get("state_message") or None,
        CPU_used=usage.CPU,
        GPU_used=usage.GPU,
        memory_used_bytes=usage.memory_bytes,
        object_store_used_bytes=usage.object_store_bytes,
        cpu_percent=physical.cpu_percent,
        host_memory_used_bytes=physical.host_memory_used_bytes,
        host_memory_total_bytes=physical.host_memory_total_bytes,
        gpu_percent=physical.gpu_percent,
        gpu_memory_used_bytes=physical.gpu_memory_used_bytes,
        labels=dict(labels) if isinstance(labels, Mapping) else {},
        dashboard_url=dashboard_url,
    )


def state_api_nodes(payload: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The node list and the server's total from a ``/api/v0/nodes`` reply.

    Raises ValueError when the reply is not that shape.
    """
    rows, counts = state_api_rows(payload, "node")
    return rows, counts.total


@dataclass(frozen=True)
class StateCounts:
    """What a State API list reply says about its own completeness."""

    total: int  # in the cluster
    num_after_truncation: int  # what the data source handed over (it caps too)
    num_filtered: int  # of those, how many passed the filters; ``limit`` then cuts the reply


def state_api_rows(payload: Mapping[str, Any], what: str) -> tuple[list[dict[str, Any]], StateCounts]:
    """The rows and counts of a State API list reply (``/api/v0/nodes``, ``/api/v0/actors``, ...).

    Raises ValueError when the reply is not that shape, or says it refused the request.
    """
    if not isinstance(payload, Mapping):
        raise ValueError(f"not a State API {what} list")
    if payload.get("result") is False:
        raise ValueError(str(payload.get("msg") or "the State API refused the request"))
    try:
        body = payload["data"]["result"]
        rows = body["result"]
        total = int(body.get("total", len(rows)))
        after = int(body.get("num_after_truncation", total))
        filtered = int(body.get("num_filtered", after))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"not a State API {what} list ({exc})") from None
    if not isinstance(rows, list):
        raise ValueError(f"not a State API {what} list")
    return [r for r in rows if isinstance(r, dict)], StateCounts(total, after, filtered)


def state_api_within_cap(
    fetch: Callable[[int], Any], limit: int, what: str
) -> tuple[list[dict[str, Any]], StateCounts, int, int]:
    """Ask a State API list at ``limit``; when the server refuses it ("... supported limit
    N"), ask once more at N. ``fetch(limit)`` returns the parsed reply.

    Returns (rows, counts, the limit that was accepted, requests made); raises ValueError
    when the reply is not a list or the server refuses every limit.
    """
    for requests in (1, 2):
        try:
            rows, counts = state_api_rows(fetch(limit), what)
            return rows, counts, limit, requests
        except ValueError as exc:
            allowed = re.search(r"supported limit (\d+)", str(exc))
            if not allowed or int(allowed.group(1)) >= limit:
                raise
            limit = int(allowed.group(1))
    raise ValueError("the State API refused every limit")


def usage_by_node(payload: Mapping[str, Any]) -> dict[str, Usage]:
    """Per-node usage from a ``/api/cluster_status`` reply; empty when absent."""
    try:
        report = payload["data"]["clusterStatus"]["loadMetricsReport"]["usageByNode"] or {}
    except (KeyError, TypeError):
        return {}
    return {
        str(node_id): Usage(
            _used(used, "CPU"), _used(used, "GPU"), _used(used, "memory"), _used(used, "objectStoreMemory")
        )
        for node_id, used in report.items()
        if isinstance(used, Mapping)
    }


def physical_by_node(payload: Mapping[str, Any]) -> dict[str, Physical]:
    """Per-node physical usage from a ``/nodes?view=summary`` reply (Ray's dashboard serves it
    without Prometheus); empty when absent. ``mem`` is ``[total, available, percent, used]``;
    each GPU reports ``utilizationGpu`` (percent) and ``memoryUsed`` (MiB)."""
    try:
        summary = payload["data"]["summary"]
    except (KeyError, TypeError):
        return {}
    found = {}
    for node in summary if isinstance(summary, list) else ():
        raylet = node.get("raylet") if isinstance(node, Mapping) else None
        node_id = raylet.get("nodeId") if isinstance(raylet, Mapping) else None
        if not node_id:
            continue
        mem = node.get("mem")
        total, used = (_float(mem[0]), _float(mem[3])) if isinstance(mem, list) and len(mem) >= 4 else (None, None)
        gpus = [g for g in node.get("gpus") or () if isinstance(g, Mapping)]
        utilisation = [u for u in (_float(g.get("utilizationGpu")) for g in gpus) if u is not None]
        gpu_memory = [m for m in (_float(g.get("memoryUsed")) for g in gpus) if m is not None]
        found[str(node_id)] = Physical(
            cpu_percent=_float(node.get("cpu")),
            host_memory_used_bytes=used,
            host_memory_total_bytes=total,
            gpu_percent=sum(utilisation) / len(utilisation) if utilisation else None,
            gpu_memory_used_bytes=sum(gpu_memory) * 2**20 if gpu_memory else None,
        )
    return found


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _used(used: Mapping[str, Any], key: str) -> float | None:
    pair = used.get(key)  # [in use, total]
    return float(pair[0]) if isinstance(pair, list | tuple) and pair else None


def reuse_unchanged(fresh: Iterable[NodeRecord], previous: Sequence[NodeRecord]) -> list[NodeRecord]:
    """``fresh`` records, with each one equal to a ``previous`` record of the same node
    replaced by that previous record (the caller moves its ``last_seen`` on).

    A refresh of an unchanged 10,000-node cluster then leaves no new long-lived objects
    behind, so it sets off no full garbage collection of the kernel (see gcpause).
    """
    if not previous:
        return list(fresh)
    before = {r.node_id: r for r in previous}
    return [old if (old := before.get(r.node_id)) is not None and old == r else r for r in fresh]


def mark_unreachable(rows: Iterable[NodeRecord]) -> list[NodeRecord]:
    """Last known rows of a cluster that stopped answering.

    Workers that died before stay DEAD (that is history worth keeping); every other row,
    the head included (a head drained by SIGTERM reports itself DEAD as it goes), becomes
    UNREACHABLE: the cluster as a whole no longer answers.
    """
    return [
        r if r.state == UNREACHABLE or (r.state == DEAD and not r.is_head) else replace(r, state=UNREACHABLE)
        for r in rows
    ]


def row_to_json(row: NodeRecord) -> dict[str, Any]:
    """One row as JSON-ready values, every column of :data:`COLUMNS` (times in ISO 8601)."""
    return {column: jsonable(getattr(row, column)) for column in COLUMNS}


_PLAIN = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    """A record field as a JSON-ready value: times in ISO 8601, mappings as dicts."""
    if type(value) in _PLAIN:  # most fields: no ABC check (Mapping's is slow, and runs per cell)
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    return value


def to_dataframe(rows: Sequence[NodeRecord]) -> pd.DataFrame:
    """The node table: one row per node, columns in :data:`COLUMNS` order."""
    import pandas as pd

    # Plain tuples are much cheaper than dataclasses.asdict for thousands of rows.
    data = [tuple(getattr(r, c) for c in COLUMNS) for r in rows]
    frame = pd.DataFrame.from_records(data, columns=list(COLUMNS))
    for column in ("last_seen", "start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
