"""How one cluster is read, without joining it: the dashboard first, the GCS as fallback."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .actors import ActorReading, read_actors
from .auth import Token
from .errors import AuthRequired, CastrayError, ClusterUnreachable
from .gcpause import gc_paused
from .gcs import read_gcs, version_note
from .http import BIG_REPLY_BYTES, get_bytes, get_json, parse_json
from .nodes import (
    NodeRecord,
    Physical,
    node_from_state,
    physical_by_node,
    reuse_unchanged,
    state_api_within_cap,
    usage_by_node,
)
from .settings import Settings

_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="castray-http")
BIG_READ_NODES = 500
# The node summary (physical usage) is about 12 KB a node (measured: 23.8 KB for 2): read
# for clusters up to this size.
PHYSICAL_MAX_NODES = 1000


@dataclass(frozen=True)
class Reading:
    """What one read of one cluster returned."""

    session_name: str | None
    nodes: list[NodeRecord]
    via: str  # "dashboard" or "gcs"
    elapsed_s: float
    total: int  # nodes the server has; more than len(nodes) when it truncated
    warnings: tuple[str, ...] = field(default=())
    seen: dt.datetime | None = None  # when it was read: every node's last_seen
    ray_version: str | None = None  # the cluster's, where the reader learnt it

    @property
    def truncated(self) -> bool:
        return self.total > len(self.nodes)


@dataclass
class ClusterClient:
    """Reads one cluster's nodes. Knows its GCS address and/or its dashboard URL."""

    gcs_address: str | None
    dashboard_url: str | None
    settings: Settings = field(default_factory=Settings)
    token: Token | None = field(default=None, repr=False)  # else Ray's sources, per request

    def version(self) -> dict[str, object]:
        """``/api/version`` of the dashboard; raises if it is not a Ray dashboard."""
        if not self.dashboard_url:
            raise ClusterUnreachable("no dashboard to ask")
        reply = get_json(f"{self.dashboard_url}/api/version", self.settings.http_timeout, token=self.token)
        if not isinstance(reply, dict) or "ray_version" not in reply:
            raise ClusterUnreachable(f"{self.dashboard_url} answers HTTP but is not a Ray dashboard")
        return reply

    def read(self, *, cluster: str, source: str = "external", previous: Sequence[NodeRecord] = ()) -> Reading:
        """Read every node. Falls back to the GCS when the dashboard does not answer.

        Nodes equal to one of ``previous`` (the last reading's) come back as that same
        record, for the caller to move its ``last_seen`` on (see :func:`reuse_unchanged`).
        """
        started = time.perf_counter()
        if self.dashboard_url:
            try:
                return self._read_dashboard(cluster, source, started, previous)
            except ClusterUnreachable:
                if not self.gcs_address:
                    raise
        if not self.gcs_address:
            raise ClusterUnreachable("nothing to read: no dashboard URL and no GCS address")
        return self._read_gcs(cluster, source, started, previous)

    def _read_dashboard(
        self, cluster: str, source: str, started: float, previous: Sequence[NodeRecord] = ()
    ) -> Reading:
        assert self.dashboard_url
        url, timeout, limit = self.dashboard_url, self.settings.http_timeout, self.settings.node_limit

        def nodes_url(size: int) -> str:
            return f"{url}/api/v0/nodes?detail=1&limit={size}"

        # The three requests go out together: a read costs the slowest, not the sum. Every
        # network wait ends before the decoding starts, so the burst of allocations that
        # decoding and building make is one stretch of CPU work (see gcpause).
        version = _POOL.submit(self.version)
        status = _POOL.submit(get_bytes, f"{url}/api/cluster_status", timeout, token=self.token)

        def ask_summary() -> concurrent.futures.Future[bytes]:
            return _POOL.submit(get_bytes, f"{url}/nodes?view=summary", timeout, token=self.token)

        # The summary is asked for beside the node list only when the last reading was small;
        # otherwise once the node list has told the size (below). 12,000 nodes' summary is
        # ~140 MB, and asked for blind on a first read it had starved the node list's own read.
        summary = ask_summary() if previous and len(previous) <= PHYSICAL_MAX_NODES else None
        first = get_bytes(nodes_url(limit), timeout, token=self.token)
        about = version.result()
        session = about.get("session_name")
        warnings = []
        mismatch = version_note(str(about.get("ray_version") or ""))
        if mismatch:
            warnings.append(mismatch)
        try:
            status_body: bytes | None = status.result()
        except (ClusterUnreachable, AuthRequired) as exc:  # usage is extra; the nodes stand without it
            status_body = None
            warnings.append(f"no usage: {exc}")
        summary_body = _wait(summary) if summary is not None else None
        big = False  # a node list big enough to pause the collector for (see gcpause)
        with contextlib.ExitStack() as pause:

            def fetch(size: int) -> Any:
                nonlocal big
                # A refused limit is a short reply, so a second request (at the server's
                # cap) is always made before the collector is paused.
                body = first if size == limit else get_bytes(nodes_url(size), timeout, token=self.token)
                if len(body) > BIG_REPLY_BYTES and not big:
                    big = True
                    pause.enter_context(gc_paused())
                return parse_json(body, url)

            try:
                raw_nodes, counts, _, _ = state_api_within_cap(fetch, limit, "node")
            except ValueError as exc:
                raise ClusterUnreachable(f"{url}: {exc}") from None
            usage = {}
            if status_body is not None:
                try:
                    usage = usage_by_node(parse_json(status_body, url))
                except ClusterUnreachable as exc:
                    warnings.append(f"no usage: {exc}")
            # One rule: a cluster of at most PHYSICAL_MAX_NODES nodes gets its summary, a
            # bigger one never does (its physical columns stay null every time).
            if len(raw_nodes) > PHYSICAL_MAX_NODES:
                physical: dict[str, Physical] = {}
            else:
                if summary is None:
                    # Asked for only now: its network wait runs with the collector on,
                    # which is paused again for the decoding and building.
                    pause.close()
                    summary_body = _wait(ask_summary())
                    if big:
                        pause.enter_context(gc_paused())
                physical = _physical(summary_body, url)
            seen = dt.datetime.now(dt.UTC)
            nodes = reuse_unchanged(
                (
                    node_from_state(
                        raw,
                        cluster=cluster,
                        source=source,
                        seen=seen,
                        dashboard_url=url,
                        usage=usage.get(raw["node_id"]),
                        physical=physical.get(raw["node_id"]),
                    )
                    for raw in raw_nodes
                ),
                previous,
            )
            del raw_nodes, usage, physical  # freed while the collector is still paused
        total = counts.total
        if total > len(nodes):
            warnings.append(
                f"the dashboard returned {len(nodes)} of {total} nodes (Ray's State API caps a reply; "
                "RAY_MAX_LIMIT_FROM_API_SERVER on the head raises the cap)"
            )
        return Reading(
            session_name=str(session) if session else None,
            nodes=nodes,
            via="dashboard",
            elapsed_s=time.perf_counter() - started,
            total=total,
            warnings=tuple(warnings),
            seen=seen,
            ray_version=str(about.get("ray_version") or "") or None,
        )

    def actors(self, *, cluster: str, node_ids: list[str], state: str | None = None) -> ActorReading:
        """The cluster's actors (of ``state``, if given) from the dashboard's State API."""
        if not self.dashboard_url:
            raise ClusterUnreachable(f"{cluster} has no dashboard, and actors come from its State API")
        url, timeout = self.dashboard_url, self.settings.http_timeout

        def fetch(query: str) -> Any:
            return get_json(query, timeout, token=self.token)

        try:
            return read_actors(
                fetch, url, cluster=cluster, node_ids=node_ids, state=state, max_limit=self.settings.node_limit
            )
        except ValueError as exc:
            raise ClusterUnreachable(f"{url}: {exc}") from None

    def _read_gcs(self, cluster: str, source: str, started: float, previous: Sequence[NodeRecord] = ()) -> Reading:
        assert self.gcs_address
        reading = read_gcs(self.gcs_address, self.settings.gcs_timeout, token=self.token)
        seen = dt.datetime.now(dt.UTC)
        with gc_paused(len(reading.nodes) > BIG_READ_NODES):
            nodes = reuse_unchanged(
                (node_from_state(raw, cluster=cluster, source=source, seen=seen) for raw in reading.nodes), previous
            )
        return Reading(
            session_name=reading.session_name,
            nodes=nodes,
            via="gcs",
            elapsed_s=time.perf_counter() - started,
            total=len(nodes),
            seen=seen,
            warnings=tuple(n for n in (reading.note, version_note(reading.ray_version)) if n),
            ray_version=reading.ray_version,
        )


def _wait(summary: concurrent.futures.Future[bytes]) -> bytes | None:
    """The node summary's body, or None when the dashboard did not serve it."""
    try:
        return summary.result()
    except CastrayError:
        return None


def _physical(body: bytes | None, url: str) -> dict[str, Physical]:
    """The node summary's physical usage; empty (no warning: the columns stay null) when a
    dashboard does not serve it."""
    if body is None:
        return {}
    try:
        return physical_by_node(parse_json(body, url))
    except CastrayError:
        return {}
