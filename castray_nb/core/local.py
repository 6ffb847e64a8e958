"""The kernel's own Ray runtime (``ray.init`` in this process), read without starting one."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import AuthRequired, ClusterUnreachable
from .gcs import read_gcs
from .nodes import NodeRecord, node_from_state
from .settings import Settings


@dataclass(frozen=True)
class LocalRuntime:
    name: str  # its session name
    gcs_address: str | None  # None for a Ray Client (ray://) connection
    nodes: list[NodeRecord]
    reachable: bool = True
    dashboard_url: str | None = None
    started_here: bool = False  # this process's ray.init() started the cluster: it ends with ray.shutdown()


# Seen with Ray 2.60: a driver whose GCS has gone is ended by Ray (exit 1) about 60 s
# later, busy or idle; ray.shutdown() within that time keeps the process.
LOST_GCS_GRACE_S = 5.0
LOST_GCS_DONE = (
    "this kernel's Ray runtime lost its GCS; castray called ray.shutdown() so that Ray "
    "does not end this kernel (it does so about 60 s after losing the GCS)"
)


def initialized_ray() -> Any | None:
    """The ``ray`` module if this process imported it and ``ray.init`` ran, else None.

    Never imports Ray. A module another thread is still importing (a fallback GCS read imports
    Ray in the background) has no ``is_initialized`` yet: that counts as not initialized.
    """
    ray = sys.modules.get("ray")
    is_initialized = getattr(ray, "is_initialized", None)
    if not callable(is_initialized):
        return None
    try:
        return ray if is_initialized() else None
    except Exception:  # a half-initialised module may fail in other ways too
        return None


def local_runtime(
    gcs_timeout: float = 5.0, *, settings: Settings | None = None, previous: Sequence[NodeRecord] = ()
) -> LocalRuntime | None:
    """This process's Ray runtime, or None. Never imports or starts Ray itself.

    With ``settings``, a runtime with a dashboard is read as an attached cluster is
    (:class:`.client.ClusterClient`: logical and physical usage, the GCS as fallback);
    ``previous`` are the last reading's rows. Otherwise, or where that dashboard wants a
    token castray_nb may not send it, the nodes are read with a GCS client of our own under
    ``gcs_timeout``, not with ``ray.nodes()``: a ``ray.nodes()`` call that is under way
    when the GCS dies never returns, and Ray ends the process a minute later even after
    ``ray.shutdown()``. A GCS that refuses or stays silent gives the runtime with
    ``reachable=False`` and no nodes.
    """
    ray = initialized_ray()
    if ray is None:
        return None
    try:
        gcs_address = ray.get_runtime_context().gcs_address
    except Exception:  # a Ray Client connection has no local GCS address
        gcs_address = None
    name = _session_name(ray) or "local"
    dashboard_url, started_here = _node_facts(ray)

    def made(nodes: list[NodeRecord], reachable: bool = True) -> LocalRuntime:
        return LocalRuntime(name, gcs_address, nodes, reachable, dashboard_url, started_here)

    if gcs_address and dashboard_url and settings is not None:
        from .client import ClusterClient

        try:
            reading = ClusterClient(gcs_address, dashboard_url, settings).read(
                cluster=name, source="local", previous=previous
            )
            return made(reading.nodes)
        except AuthRequired:
            pass  # read below, as Ray's own driver may
        except ClusterUnreachable:  # neither the dashboard nor the GCS answers
            return made([], reachable=False)
    seen = dt.datetime.now(dt.UTC)
    raw: list[dict[str, Any]] | None
    if gcs_address:
        try:
            raw = read_gcs(gcs_address, gcs_timeout).nodes
        except AuthRequired:  # cannot happen to a driver that is connected; ask Ray itself
            raw = _ray_nodes(ray)
        except ClusterUnreachable:  # ClusterTimeout included
            return made([], reachable=False)
    else:  # Ray Client: its nodes come through the client's own channel
        raw = _ray_nodes(ray)
    if raw is None:
        return None
    nodes = [node_from_state(r, cluster=name, source="local", seen=seen) for r in raw]
    return made(nodes)


def _ray_nodes(ray: Any) -> list[dict[str, Any]] | None:
    try:
        return [_state_shape(raw) for raw in ray.nodes()]
    except Exception:  # the runtime went away meanwhile
        return None


def _session_name(ray: Any) -> str | None:
    try:
        return str(ray._private.worker.global_worker.node.session_name)
    except Exception:
        return None


def _node_facts(ray: Any) -> tuple[str | None, bool]:
    """The runtime's dashboard URL (None without one) and whether this process started
    the cluster (Ray's ``Node.head``: a ``ray.init()`` with no address to join)."""
    try:
        node = ray._private.worker.global_worker.node
        url, head = node.webui_url, bool(node.head)
    except Exception:  # a Ray Client connection, or a Ray that keeps these elsewhere
        return None, False
    if not url:
        return None, head
    url = str(url)
    return (url if "://" in url else f"http://{url}"), head


def _state_shape(raw: dict[str, Any]) -> dict[str, Any]:
    """A ``ray.nodes()`` entry in the State API's shape."""
    resources = raw.get("Resources") or {}
    return {
        "node_id": raw.get("NodeID"),
        "node_ip": raw.get("NodeManagerAddress"),
        "is_head_node": "node:__internal_head__" in resources,
        "state": "ALIVE" if raw.get("Alive") else "DEAD",
        "state_message": raw.get("DeathReasonMessage") or None,
        "node_name": raw.get("NodeName"),
        "hostname": raw.get("NodeManagerHostname"),
        "resources_total": resources,
        "labels": raw.get("Labels") or {},
    }
