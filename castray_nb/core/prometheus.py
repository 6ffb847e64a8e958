"""History read from a Prometheus server that scrapes the clusters (``prometheus_url``).

Ray's metrics agents export Prometheus metrics, and Ray writes
``prom_metrics_service_discovery.json`` into its temp dir for a Prometheus server to find
them (``file_sd_configs``). Where the user runs one, ``history()`` reads it through its HTTP
API (``/api/v1/query_range``) instead of the user's store, and returns the same long
DataFrame (:data:`.history.FRAME_COLUMNS`), so a user who outgrows a week on one machine
keeps the same calls.

What maps to what (seen on Ray 2.60):

- a cluster is a Ray session: every Ray series has a ``SessionName`` label. The ``cluster``
  column is the name the store recorded the session under, or the session name where the
  store never saw it;
- a node's physical series (``ray_node_cpu_utilization``, ``ray_node_mem_used``, ...) carry
  its ``ip`` and ``IsHeadNode``; its logical ones (``ray_resources``) its ``NodeAddress``.
  Prometheus adds ``instance``, the node's metrics agent, which tells the node apart. A
  node's ``node_id`` is found in the store's last snapshot of the session, by its IP and
  whether it is the head; a node it cannot tell apart that way (several workers on one IP,
  or a session the store never saw) keeps its ``instance`` as its ``node_id``;
- ``alive`` and ``nodes_total`` have no Prometheus series (a node that is gone just stops
  being scraped): only the store has them.

The steps are the store's (:func:`.history.resolution`), and a point is, as in the store,
the mean of its bucket's samples, stamped with the bucket's start: both backends give as
many points for the same span, and a node that lived less than a step is not missed.
Errors are one line: a server that does not answer, an answer that is not Prometheus's;
the URL itself (it may hold credentials) is never shown.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgument, PrometheusError
from .history import FRAME_COLUMNS, History, empty_frame, resolution

if TYPE_CHECKING:
    import pandas as pd

TIMEOUT_S = 10.0


# Each metric of the store, as PromQL over the sessions' series (``$S``: their matcher),
# per node (grouped by session and metrics agent) and for a cluster's totals. Ray reports
# GPU memory in MiB (the same figure the dashboard's node summary gives).
#
# A store point is the mean of the readings in its bucket, so each series is read as the
# mean of its samples over the step before the evaluation time (``$R``: the step), which
# :meth:`PrometheusHistory.frame` puts at the bucket's end. A plain selector instead would
# see one sample a step: a node that lived a few seconds between two evaluations would be
# missing altogether. Where a step holds no sample (a scrape interval longer than the
# step), the plain selector's value stands in; it honours Prometheus's staleness, so a node
# that is gone is not carried on as a range over the last minutes would.
def _sampled(selector: str, over: str = "avg") -> str:
    return f"({over}_over_time({selector}[$R]) or {selector})"


def _used(resource: str) -> str:
    selector = f'ray_resources{{Name="{resource}",State="USED",$S}}'
    return f"sum by (SessionName, instance) {_sampled(selector)}"


def _had(resource: str) -> str:  # USED and AVAILABLE: what the nodes have
    selector = f'ray_resources{{Name="{resource}",$S}}'
    return f"sum by (SessionName) {_sampled(selector)}"


NODE_QUERIES: dict[str, str] = {
    "cpu_percent": f"avg by (SessionName, instance) {_sampled('ray_node_cpu_utilization{$S}')}",
    "host_memory_used_bytes": f"sum by (SessionName, instance) {_sampled('ray_node_mem_used{$S}')}",
    "host_memory_total_bytes": f"sum by (SessionName, instance) {_sampled('ray_node_mem_total{$S}')}",
    "gpu_percent": f"avg by (SessionName, instance) {_sampled('ray_node_gpus_utilization{$S}')}",
    "gpu_memory_used_bytes": f"sum by (SessionName, instance) {_sampled('ray_node_gram_used{$S}')} * 1048576",
    "CPU_used": _used("CPU"),
    "GPU_used": _used("GPU"),
    "memory_used_bytes": _used("memory"),
    "object_store_used_bytes": _used("object_store_memory"),
}
TOTAL_QUERIES: dict[str, str] = {
    "nodes_alive": f"sum by (SessionName) {_sampled('ray_cluster_active_nodes{$S}')}",
    "CPU": _had("CPU"),
    "GPU": _had("GPU"),
    "memory_bytes": _had("memory"),
    "object_store_bytes": _had("object_store_memory"),
    **{
        metric: query.replace("by (SessionName, instance)", "by (SessionName)")
        for metric, query in NODE_QUERIES.items()
    },
}
# Which node each metrics agent reports for: any sample in the step counts.
_WHO = f"max by (SessionName, instance, ip, IsHeadNode) {_sampled('ray_node_cpu_count{$S}', 'max')}"
_SESSION = re.compile(r"[A-Za-z0-9_.\-]+")

Opener = Callable[[urllib.request.Request, float], Any]


def _open(request: urllib.request.Request, timeout: float) -> Any:
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - the user's own setting


class Prometheus:
    """A Prometheus server's HTTP API at ``url`` (the ``prometheus_url`` setting)."""

    def __init__(self, url: str, *, timeout: float = TIMEOUT_S, opener: Opener = _open) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._open = opener

    def query_range(self, query: str, start: float, end: float, step: int) -> list[dict[str, Any]]:
        """The matrix ``query`` gives from ``start`` to ``end``: ``[{"metric": labels,
        "values": [[t, "v"], ...]}, ...]``, or PrometheusError with one line."""
        params = urllib.parse.urlencode({"query": query, "start": start, "end": end, "step": step})
        request = urllib.request.Request(
            f"{self.url}/api/v1/query_range?{params}", headers={"Accept": "application/json"}
        )
        try:
            with self._open(request, self.timeout) as reply:
                body = reply.read()
        except urllib.error.HTTPError as exc:  # Prometheus says why in its JSON
            body = exc.read()
            if not body:
                raise PrometheusError(f"the Prometheus server answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusError(f"the Prometheus server (prometheus_url) does not answer: {reason}") from None
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise PrometheusError(
                "the prometheus_url server's answer is not JSON: is it a Prometheus server?"
            ) from None
        if not isinstance(data, dict) or data.get("status") != "success":
            why = data.get("error") if isinstance(data, dict) else None
            raise PrometheusError(f"Prometheus refused the query: {str(why or data)[:200]}")
        result = data.get("data", {}).get("result")
        if not isinstance(result, list):
            raise PrometheusError("the prometheus_url server's answer is not a range query's matrix")
        return result


def _matcher(sessions: Sequence[str] | None) -> str:
    if sessions is None:
        return 'SessionName!=""'
    return 'SessionName=~"' + "|".join(re.escape(s).replace("\\", "\\\\") for s in sessions) + '"'


class PrometheusHistory:
    """``history()`` read from Prometheus, its clusters and nodes named as the store names
    them (see the module's text)."""

    def __init__(self, prometheus: Prometheus, store: History) -> None:
        self.prometheus = prometheus
        self.store = store

    def frame(
        self,
        *,
        cluster: str | None = None,
        since: float,
        until: float | None = None,
        metrics: Iterable[str] | None = None,
        node: str | None = None,
    ) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        end = self.store.store.clock() if until is None else until
        step = resolution(since, end)
        start = math.floor(since / step) * step
        seen = self.store.seen()
        names = {s.session_name: s.cluster for s in seen}
        sessions: list[str] | None = None
        if cluster is not None:
            sessions = sorted({s.session_name for s in seen if cluster in (s.cluster, s.session_name)})
            if not sessions:
                if not _SESSION.fullmatch(cluster):
                    raise InvalidArgument(f"no cluster {cluster!r} recorded, and it is not a Ray session name")
                sessions = [cluster]  # a session Prometheus may know though the store never saw it
        wanted = list(metrics) if metrics is not None else [*NODE_QUERIES, *TOTAL_QUERIES]
        s, window = _matcher(sessions), f"{step}s"

        def ask(query: str) -> list[dict[str, Any]]:
            # Evaluated at each bucket's end, over the bucket (see _sampled); the rows are
            # stamped with the bucket's start, as the store stamps its points.
            return self.prometheus.query_range(query.replace("$S", s).replace("$R", window), start + step,
                                               end + step, step)  # fmt: skip

        nodes = _node_ids(ask(_WHO), seen)
        rows: list[tuple[float, str, str | None, str, float]] = []
        for metric in dict.fromkeys(wanted):
            queries = []
            if node != "" and metric in NODE_QUERIES:
                queries.append((NODE_QUERIES[metric], True))
            if node in (None, "") and metric in TOTAL_QUERIES:
                queries.append((TOTAL_QUERIES[metric], False))
            for query, per_node in queries:
                for series in ask(query):
                    labels = series.get("metric", {})
                    session = labels.get("SessionName", "")
                    node_id = (
                        nodes.get((session, labels.get("instance", "")), labels.get("instance")) if per_node else None
                    )
                    if node is not None and node != "" and node_id != node:
                        continue
                    for t, value in series.get("values", []):
                        number = float(value)
                        if math.isfinite(number):
                            rows.append((float(t) - step, names.get(session, session), node_id, metric, number))
        if not rows:
            return empty_frame(FRAME_COLUMNS)
        rows.sort(key=lambda row: row[0])
        times, clusters, node_ids, names_, values = zip(*rows, strict=True)
        # Built as the store builds its frame, so both give the same dtypes.
        return pd.DataFrame(
            {
                "time": pd.to_datetime(np.array(times, dtype=np.int64), unit="s", utc=True),
                "cluster": np.array(clusters, dtype=object),
                "node_id": np.array(node_ids, dtype=object),
                "metric": np.array(names_, dtype=object),
                "value": np.array(values, dtype=float),
            }
        )


def _node_ids(who: list[dict[str, Any]], seen: Iterable[Any]) -> dict[tuple[str, str], str]:
    """(session, instance) to node id, where the store's last snapshot of the session has
    exactly one node with that agent's IP and head-ness."""
    known: dict[str, dict[tuple[str, bool], list[str]]] = {}
    for s in seen:
        by_place: dict[tuple[str, bool], list[str]] = {}
        for n in s.snapshot.get("nodes", []) if isinstance(s.snapshot, Mapping) else []:
            by_place.setdefault((str(n.get("node_ip")), bool(n.get("is_head"))), []).append(str(n.get("node_id")))
        known[s.session_name] = by_place
    out: dict[tuple[str, str], str] = {}
    for series in who:
        labels = series.get("metric", {})
        session, instance = labels.get("SessionName", ""), labels.get("instance", "")
        place = (labels.get("ip", ""), labels.get("IsHeadNode", "").lower() == "true")
        ids = known.get(session, {}).get(place, [])
        if len(ids) == 1:
            out[(session, instance)] = ids[0]
    return out
