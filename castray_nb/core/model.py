"""The session's value types: what changed (:class:`Event`), an attached cluster as of
its last refresh (:class:`ClusterState`), and all a view draws at one moment
(:class:`Snapshot`), with their reprs and JSON."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from .discovery import ClusterInfo
from .jobs import JobRecord
from .nodes import NodeRecord
from .render import card, one_line
from .times import clock

EVENT_KINDS = (
    "cluster_discovered",
    "cluster_attached",
    "cluster_detached",
    "cluster_unreachable",
    "cluster_recovered",
    "node_added",
    "node_removed",
    "node_state_changed",
    "job_added",
    "job_status_changed",
)


@dataclass(frozen=True)
class Event:
    """Something that changed, as subscribers see it."""

    kind: str
    cluster: str
    node_id: str | None = None
    detail: str = ""
    time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    job_id: str | None = None  # job events: the submission id, else the job id

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "cluster": self.cluster,
            "node_id": self.node_id,
            "job_id": self.job_id,
            "detail": self.detail,
            "time": self.time.isoformat(),
        }


@dataclass(frozen=True)
class ClusterState:
    """An attached cluster as of its last refresh."""

    name: str
    info: ClusterInfo
    reachable: bool | None  # None until the first read
    session_name: str | None
    via: str | None
    last_refresh: dt.datetime | None
    last_ok: dt.datetime | None
    read_s: float | None
    error: str | None
    num_nodes: int
    alive_nodes: int
    warnings: tuple[str, ...] = ()
    link: str | None = None  # the dashboard link to show, made with the session's settings

    @property
    def dashboard_url(self) -> str | None:
        return self.info.dashboard_url

    @property
    def dashboard_link(self) -> str | None:
        """The link to show: through the Jupyter server under one (see :mod:`.links`)."""
        return self.link or self.info.dashboard_link

    @property
    def notes(self) -> tuple[str, ...]:
        """What is worth knowing about it: its last reading's warnings, then the note it was
        found with (another Ray version, how it is read), each once."""
        return tuple(dict.fromkeys([*self.warnings, *([self.info.note] if self.info.note else [])]))

    def __repr__(self) -> str:
        return one_line("ClusterState", self.name, self._facts())

    def _repr_html_(self) -> str:
        return card(self.name, self._facts(), self.dashboard_link, self.error)

    def _facts(self) -> list[tuple[str, str]]:
        if self.reachable is None:
            health = "not read yet"
        elif self.reachable:
            took = f" in {self.read_s * 1000:.0f} ms" if self.read_s is not None else ""
            when = clock(self.last_refresh)
            health = f"via {self.via}, read {when}{took}"
        else:
            health = "unreachable"
        where = ("gcs", self.info.gcs_address) if self.info.gcs_address else ("dashboard", self.dashboard_url or "-")
        return [
            where,
            ("nodes", f"{self.alive_nodes}/{self.num_nodes} alive"),
            ("read", health),
            ("session", self.session_name or "?"),
        ]

    def to_json(self) -> dict[str, object]:
        def when(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "name": self.name,
            "gcs_address": self.info.gcs_address,
            "dashboard_url": self.info.dashboard_url,
            "ray_version": self.info.ray_version,
            "reachable": self.reachable,
            "session_name": self.session_name,
            "via": self.via,
            "last_refresh": when(self.last_refresh),
            "last_ok": when(self.last_ok),
            "read_s": self.read_s,
            "error": self.error,
            "num_nodes": self.num_nodes,
            "alive_nodes": self.alive_nodes,
            "warnings": list(self.warnings),
            "note": self.info.note,
            "owner": self.info.owner,
            "other_user": self.info.other_user,
            "location": self.info.location,
        }


@dataclass(frozen=True)
class Snapshot:
    """Everything a view draws, read at one moment (:meth:`.session.Session.snapshot`):
    the status, the table and the picture drawn from one snapshot always agree."""

    clusters: tuple[ClusterState, ...]
    # Local rows first, each cluster once: the session's own records, not copies, so a row
    # read unchanged keeps the last_seen of the reading that first saw it so; ``seen``
    # says when each attached cluster was last read (Session.rows() gives that time on
    # every row).
    rows: tuple[NodeRecord, ...]
    actor_counts: Mapping[tuple[str, str], int]  # ALIVE actors per (cluster, node_id), last round that read them
    jobs: tuple[JobRecord, ...]  # last round that read them: running first, then the most recent
    jobs_skipped: Mapping[str, str]  # why a cluster's jobs could not be read
    seen: Mapping[str, dt.datetime | None] = field(default_factory=dict)
    taken: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def local_rows(self) -> tuple[NodeRecord, ...]:
        return tuple(r for r in self.rows if r.source == "local")
