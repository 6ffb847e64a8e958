"""The session: attached clusters, their last rows, refresh, the merged table, events."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .actors import ActorRecord
from .address import Address, cluster_key, is_this_machine, parse_address, split_hostport
from .auth import Token
from .cards import card, one_line
from .client import ClusterClient, Reading
from .discovery import ClusterInfo, DiscoveryReport, discover_report
from .errors import (
    NAME_RULE,
    CastrayError,
    ClusterUnreachable,
    InvalidAddress,
    InvalidArgument,
    InvalidName,
    NameTaken,
    UnknownCluster,
    UnknownJob,
)
from .jobs import JobRecord, checked_status, follow_logs, ordered, read_job, read_jobs, read_logs, submission_client
from .jobs import stop as stop_submitted
from .jobs import submit as submit_job
from .links import dashboard_link
from .local import LOST_GCS_DONE, LOST_GCS_GRACE_S, local_runtime
from .nodes import ALIVE, NodeRecord, mark_unreachable, to_dataframe
from .settings import Settings, load_settings

Reader = Callable[[ClusterInfo, Settings, "Token | None"], "ClusterReader"]
Discoverer = Callable[[Settings], DiscoveryReport]

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
T = TypeVar("T")

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

    @property
    def dashboard_url(self) -> str | None:
        return self.info.dashboard_url

    @property
    def dashboard_link(self) -> str | None:
        """The link to show: through the Jupyter server under one (see :mod:`.links`)."""
        return dashboard_link(self.info.dashboard_url, self.session_name or self.info.name, self.name)

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
            when = self.last_refresh.strftime("%H:%M:%S UTC") if self.last_refresh else "?"
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
        }


class ClusterReader(Protocol):
    """What a session needs of a cluster reader (:class:`ClusterClient`, or a fake in tests)."""

    def read(self, *, cluster: str, previous: Sequence[NodeRecord] = ()) -> Reading: ...

    def actors(self, *, cluster: str, node_ids: list[str], state: str | None = None) -> Any: ...


def _client(info: ClusterInfo, settings: Settings, token: Token | None = None) -> ClusterReader:
    return ClusterClient(info.gcs_address, info.dashboard_url, settings, token=token)


@dataclass
class _Attachment:
    name: str
    info: ClusterInfo
    client: ClusterReader
    token: Token | None = field(default=None, repr=False)  # given on purpose (connect(token=...)), else None
    next_read: int = 0  # sequence of reads started; a reading older than the applied one is dropped
    applied_read: int = -1
    rows: list[NodeRecord] = field(default_factory=list)
    reachable: bool | None = None
    session_name: str | None = None
    via: str | None = None
    last_refresh: dt.datetime | None = None
    last_ok: dt.datetime | None = None
    read_s: float | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()
    actors: list[ActorRecord] | None = None  # ALIVE actors, read while a watch asks for them
    jobs: list[JobRecord] | None = None  # its jobs, read while a watch asks for them
    jobs_error: str | None = None  # why its jobs could not be read (no dashboard, ...)

    def state(self) -> ClusterState:
        return ClusterState(
            name=self.name,
            info=self.info,
            reachable=self.reachable,
            session_name=self.session_name or self.info.name,
            via=self.via,
            last_refresh=self.last_refresh,
            last_ok=self.last_ok,
            read_s=self.read_s,
            error=self.error,
            num_nodes=len(self.rows),
            alive_nodes=sum(r.state == ALIVE for r in self.rows),
            warnings=self.warnings,
        )


class Session:
    """Attached clusters and the kernel's own runtime, read together.

    Thread-safe: connect, refresh, attach and detach may be called from any thread.
    Every front end (the Python API, the magics, the panel, the CLI, the server) attaches
    through :meth:`connect` and :meth:`discover`. ``reader`` and ``discoverer`` replace how
    a cluster is read and how clusters are found (tests inject fakes there).

    >>> with Session() as s:                            # doctest: +SKIP
    ...     s.connect("127.0.0.1:6379")
    ...     s.nodes()
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        reader: Reader | None = None,
        discoverer: Discoverer | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self._reader: Reader = reader or _client
        self._discoverer: Discoverer = discoverer or discover_report
        self._lock = threading.RLock()
        self._attached: dict[str, _Attachment] = {}
        self._local: list[NodeRecord] = []
        self._local_name: str | None = None
        self._local_key: tuple[str, int] | None = None
        self._local_lost_since: float | None = None
        self._local_reads = 0  # sequence of local reads started, and the newest applied
        self._local_applied = -1
        self._subscribers: list[Callable[[Event], None]] = []
        self._watches: list[Watch] = []
        self._watch_wakeup = threading.Event()
        self._watch_thread: threading.Thread | None = None
        self._seen: set[tuple[str, int] | str] = set()
        self._report: DiscoveryReport | None = None
        self.closed = False

    # --- attaching: the one path every front end takes ------------------------------

    def connect(
        self,
        address: str | Address = "auto",
        *,
        name: str | None = None,
        driver: bool = False,
        refresh: bool = True,
        token: Token | str | None = None,
    ) -> ClusterState:
        """Resolve ``address`` to one verified cluster and attach it read-only; with
        ``driver=True`` also ``ray.init`` to it.

        ``address``: ``host:port`` (GCS), ``http(s)://host:port`` (dashboard), a host
        alone (Ray's default ports), ``ray://host:port`` (driver only), a discovered
        session name, or ``auto`` (this user's only live cluster on this machine). ``name``
        defaults to a short one (:func:`default_name`). ``token`` is a Ray auth token to
        send this cluster on purpose; without it Ray's own token is sent only where
        :func:`.auth.token_for` allows (never to another Unix user's processes).

        Raises :class:`InvalidAddress`, :class:`InvalidName`, :class:`AmbiguousAddress`
        (``auto`` with several clusters), :class:`NameTaken`, :class:`ClusterUnreachable`
        (:class:`ClusterTimeout`), :class:`AuthRequired` or :class:`DriverConflict`;
        nothing is attached when it raises.
        """
        from .connector import become_driver, resolve

        parsed = address if isinstance(address, Address) else parse_address(address)
        if name is not None:
            name = checked_name(name)
        given = given_token(token)
        if parsed.kind == "client":
            if not driver:
                raise InvalidAddress(parsed.text, "ray:// addresses only serve a driver connection (driver=True)")
            become_driver(parsed.url, token=given)
            self.refresh()
            return self._driver_state(parsed.url)
        info = resolve(parsed, self.settings, discover=self._discovered, token=given)
        with self._lock:
            self._check_free(info, name)
        if driver:
            if not info.gcs_address:
                raise CastrayError(f"{info.name}: no GCS address known, so it cannot be joined as a driver")
            become_driver(info.gcs_address, token=given)
        return self.attach(info, name, refresh=refresh, token=given)

    def discover(self, *, connect: bool = False, all_users: bool | None = None) -> list[ClusterInfo]:
        """Every live cluster on this machine (with this session's settings); subscribers
        hear of each the first time this session sees it. ``all_users`` (default: the
        setting) also lists other Unix users' clusters here, each with its ``owner``.

        With ``connect=True`` attach every one of them (this is the one way to attach them
        all): what can be attached is, and each failure is kept, with its reason, in
        :meth:`discover_report` (``attach_errors``) rather than stopping the rest. Other
        users' clusters (listed with the ``all_users`` setting) are never attached so: only
        by their address or session name, on purpose.
        """
        report = self._discoverer(self.settings.replace(all_users=all_users))
        self.note_discovered(report.clusters)
        attached: list[str] = []
        failures: list[tuple[str, str]] = []
        if connect:
            for info in report.clusters:
                if info.other_user:
                    failures.append((info.name, f"another user's cluster ({info.owner}): attach it by address"))
                    continue
                try:
                    attached.append(self.attach(info, refresh=False).name)
                except CastrayError as exc:
                    failures.append((info.name, str(exc)))
            self.refresh()
        report = dataclasses.replace(report, attached=tuple(attached), attach_errors=tuple(failures))
        with self._lock:
            self._report = report
        return list(report.clusters)

    def discover_report(self) -> DiscoveryReport | None:
        """What the last :meth:`discover` found, rejected and could not attach (and why)."""
        with self._lock:
            return self._report

    def _discovered(self, settings: Settings) -> list[ClusterInfo]:
        return list(self._discoverer(settings).clusters)

    def attach(
        self, info: ClusterInfo, name: str | None = None, *, refresh: bool = True, token: Token | None = None
    ) -> ClusterState:
        """Attach a verified cluster read-only. Re-attaching the same cluster is a no-op
        that returns its state. Most callers want :meth:`connect`, which verifies first."""
        if name is not None:
            name = checked_name(name)
        with self._lock:
            existing = self._check_free(info, name)
            if existing is not None:
                return existing.state()
            name = name or self._free_name(default_name(info))
            attachment = _Attachment(name, info, self._reader(info, self.settings, token), token)
            self._attached[name] = attachment
        self._emit([Event("cluster_attached", name, detail=info.gcs_address or info.dashboard_url or "")])
        if refresh:
            self._emit(self._read_all([attachment]))
        return attachment.state()

    def _check_free(self, info: ClusterInfo, name: str | None) -> _Attachment | None:
        """The attachment of the same cluster if there is one; raises :class:`NameTaken`
        when ``name`` belongs to a different cluster. Call with the lock held."""
        for existing in self._attached.values():
            if _same_cluster(existing.info, info):
                return existing
        if name is not None and name in self._attached:
            raise NameTaken(f"a different cluster is already attached as {name!r}; pick another name")
        return None

    def _free_name(self, base: str) -> str:
        name, n = base, 2
        while name in self._attached:
            name, n = f"{base[:60]}-{n}", n + 1
        return name

    def _driver_state(self, url: str) -> ClusterState:
        rows = self.rows(source="local")
        info = ClusterInfo(
            name=rows[0].cluster if rows else url,
            gcs_address=None,
            dashboard_url=None,
            ray_version=None,
            session_dir=None,
            num_nodes=len(rows),
            auth_required=False,
            sources=("address",),
        )
        return ClusterState(
            name=info.name,
            info=info,
            reachable=True,
            session_name=info.name,
            via="driver",
            last_refresh=None,
            last_ok=None,
            read_s=None,
            error=None,
            num_nodes=len(rows),
            alive_nodes=sum(r.state == ALIVE for r in rows),
        )

    def detach(self, name: str) -> None:
        with self._lock:
            if name not in self._attached:
                raise UnknownCluster(f"no attached cluster is called {name!r} (attached: {self._names_text()})")
            del self._attached[name]
        self._emit([Event("cluster_detached", name)])

    def detach_all(self) -> list[str]:
        with self._lock:
            names = list(self._attached)
            self._attached.clear()
        self._emit([Event("cluster_detached", n) for n in names])
        return names

    def clusters(self) -> list[ClusterState]:
        with self._lock:
            return [a.state() for a in self._attached.values()]

    def cluster(self, name: str) -> ClusterState:
        with self._lock:
            if name not in self._attached:
                raise UnknownCluster(f"no attached cluster is called {name!r} (attached: {self._names_text()})")
            return self._attached[name].state()

    def _names_text(self) -> str:
        return ", ".join(self._attached) or "none"

    def note_discovered(self, found: Sequence[ClusterInfo]) -> list[Event]:
        """Tell subscribers about clusters that a discovery found for the first time."""
        events = []
        with self._lock:
            for info in found:
                key = cluster_key(info.gcs_address) if info.gcs_address else info.name
                if key not in self._seen:
                    self._seen.add(key)
                    events.append(Event("cluster_discovered", info.name, detail=info.gcs_address or ""))
        self._emit(events)
        return events

    # --- the end -------------------------------------------------------------------

    def close(self) -> None:
        """Stop every watch, drop every subscriber and detach every cluster. Idempotent."""
        with self._lock:
            self.closed = True
            watches, self._watches = list(self._watches), []
            self._subscribers.clear()
            self._attached.clear()
        for watch in watches:
            watch.active = False
        self._watch_wakeup.set()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------

    def refresh(self) -> list[Event]:
        """Read every attached cluster (concurrently) and the local runtime; return the changes."""
        with self._lock:
            attachments = list(self._attached.values())
        events = self._read_local() + self._read_all(attachments)
        self._emit(events)
        return events

    def _read_all(self, attachments: Sequence[_Attachment]) -> list[Event]:
        if not attachments:
            return []
        workers = min(16, len(attachments))
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="castray-read") as pool:
            futures = [pool.submit(self._read_one, a) for a in attachments]
            return [event for f in futures for event in f.result()]

    def _read_one(self, attachment: _Attachment) -> list[Event]:
        with self._lock:
            seq = attachment.next_read
            attachment.next_read += 1
            previous = attachment.rows
        now = dt.datetime.now(dt.UTC)
        try:
            reading = attachment.client.read(cluster=attachment.name, previous=previous)
        except CastrayError as exc:
            return self._apply_failure(attachment, seq, now, str(exc))
        except Exception as exc:  # a reader bug must not stop the other clusters
            log.exception("reading %s failed", attachment.name)
            return self._apply_failure(attachment, seq, now, f"{type(exc).__name__}: {exc}")
        with self._lock:
            if not self._current(attachment, seq):
                return []
            events = _diff(attachment.name, attachment.rows, reading.nodes)
            if attachment.reachable is False:
                detail = "answering again"
                if reading.session_name and reading.session_name != attachment.session_name:
                    detail = f"answering again as a new session {reading.session_name}"
                events.insert(0, Event("cluster_recovered", attachment.name, detail=detail))
            if reading.seen is not None:
                for row in reading.nodes:
                    if row.last_seen != reading.seen:  # a record kept from the last reading
                        object.__setattr__(row, "last_seen", reading.seen)
            attachment.rows = reading.nodes
            attachment.reachable = True
            attachment.session_name = reading.session_name
            attachment.via = reading.via
            attachment.last_refresh = attachment.last_ok = now
            attachment.read_s = reading.elapsed_s
            attachment.error = None
            attachment.warnings = reading.warnings
        return events

    def _current(self, attachment: _Attachment, seq: int) -> bool:
        """Whether a reading started as ``seq`` may be applied, and if so mark it applied.

        Two refreshes may overlap (the watch, a button, a REST call): a reading that
        started before the one already applied is stale and dropped, so an older state
        never overwrites a newer one (and raises no false events). Call with the lock held.
        """
        if self._attached.get(attachment.name) is not attachment or seq < attachment.applied_read:
            return False  # detached while it was being read, or overtaken
        attachment.applied_read = seq
        return True

    def _apply_failure(self, attachment: _Attachment, seq: int, now: dt.datetime, error: str) -> list[Event]:
        with self._lock:
            if not self._current(attachment, seq):
                return []
            was = attachment.reachable
            attachment.reachable = False
            attachment.rows = mark_unreachable(attachment.rows)
            attachment.last_refresh = now
            attachment.error = error
            attachment.read_s = None
        return [Event("cluster_unreachable", attachment.name, detail=error)] if was is not False else []

    def _read_local(self) -> list[Event]:
        with self._lock:
            seq = self._local_reads
            self._local_reads += 1
        runtime = local_runtime(self.settings.gcs_timeout)
        with self._lock:
            if seq < self._local_applied:
                return []  # a newer reading already landed
            self._local_applied = seq
        if runtime is not None and not runtime.reachable:
            return self._local_lost(runtime.name)
        with self._lock:
            previous, previous_name = self._local, self._local_name
            self._local = runtime.nodes if runtime else []
            self._local_name = runtime.name if runtime else None
            self._local_key = cluster_key(runtime.gcs_address) if runtime and runtime.gcs_address else None
            self._local_lost_since = None
        if runtime is None:
            return [
                Event("node_removed", previous_name or "local", r.node_id, "local runtime shut down") for r in previous
            ]
        return _diff(runtime.name, previous, runtime.nodes)

    def _local_lost(self, name: str) -> list[Event]:
        """The kernel's own runtime lost its GCS: rows turn UNREACHABLE; if it stays lost,
        end the runtime (Ray would end the whole kernel process a minute later)."""
        now = time.monotonic()
        with self._lock:
            first = self._local_lost_since is None
            if first:
                self._local_lost_since = now
            self._local = mark_unreachable(self._local)
            lost_for = now - (self._local_lost_since or now)
        if first:
            return [Event("cluster_unreachable", name, detail="the kernel's Ray runtime lost its GCS")]
        if lost_for < LOST_GCS_GRACE_S:
            return []
        from .connector import leave_driver

        leave_driver()
        with self._lock:
            gone, self._local, self._local_name, self._local_key = self._local, [], None, None
            self._local_lost_since = None
        return [Event("node_removed", name, r.node_id, LOST_GCS_DONE) for r in gone] + [
            Event("cluster_detached", name, detail=LOST_GCS_DONE)
        ]

    def rows(self, *, source: str | None = None, alive_only: bool = False) -> list[NodeRecord]:
        """Every node as of the last refresh: local rows first, each cluster once."""
        with self._lock:
            rows = list(self._local)
            for attachment in self._attached.values():
                if (
                    self._local_key
                    and attachment.info.gcs_address
                    and cluster_key(attachment.info.gcs_address) == self._local_key
                ):
                    continue  # the kernel's own cluster is already there as "local"
                rows.extend(attachment.rows)
        if source:
            rows = [r for r in rows if r.source == source]
        if alive_only:
            rows = [r for r in rows if r.state == ALIVE]
        return rows

    def _is_local(self, info: ClusterInfo) -> bool:
        return bool(self._local_key and info.gcs_address and cluster_key(info.gcs_address) == self._local_key)

    def nodes(self, *, source: str | None = None, alive_only: bool = False) -> pd.DataFrame:
        """The merged node table as a pandas DataFrame (see :data:`~castray_nb.core.nodes.COLUMNS`)."""
        return to_dataframe(self.rows(source=source, alive_only=alive_only))

    # --- actors ------------------------------------------------------------------

    def actors(
        self, *, cluster: str | None = None, state: str | None = None
    ) -> tuple[list[ActorRecord], dict[str, str]]:
        """Read the actors of every attached cluster (or of ``cluster``) now, concurrently.

        Returns the actors and, per cluster that could not be read, why (a cluster without
        a dashboard has no State API to ask).
        """
        with self._lock:
            if cluster is not None and cluster not in self._attached:
                raise UnknownCluster(f"no attached cluster is called {cluster!r} (attached: {self._names_text()})")
            attachments = [a for a in self._attached.values() if cluster is None or a.name == cluster]
        if not attachments:
            return [], {}

        def read(a: _Attachment) -> list[ActorRecord]:
            node_ids = [r.node_id for r in a.rows if r.state == ALIVE]
            return a.client.actors(cluster=a.name, node_ids=node_ids, state=state).actors

        return _from_each(attachments, read, "castray-actors")

    def refresh_actors(self) -> None:
        """Read the ALIVE actors of every attached cluster into the session (for the panel)."""
        actors, skipped = self.actors(state=ALIVE)
        by_cluster: dict[str, list[ActorRecord]] = {}
        for actor in actors:
            by_cluster.setdefault(actor.cluster, []).append(actor)
        with self._lock:
            for name, attachment in self._attached.items():
                attachment.actors = None if name in skipped else by_cluster.get(name, [])

    def actor_counts(self) -> dict[tuple[str, str], int]:
        """ALIVE actors per (cluster, node_id), as of the last :meth:`refresh_actors`."""
        counts: dict[tuple[str, str], int] = {}
        with self._lock:
            for attachment in self._attached.values():
                for actor in attachment.actors or ():
                    if actor.node_id:
                        key = (actor.cluster, actor.node_id)
                        counts[key] = counts.get(key, 0) + 1
        return counts

    def cached_actors(self, cluster: str | None = None, node_id: str | None = None) -> list[ActorRecord]:
        """ALIVE actors as of the last :meth:`refresh_actors`, of one cluster and node if given."""
        with self._lock:
            return [
                actor
                for attachment in self._attached.values()
                if cluster is None or attachment.name == cluster
                for actor in attachment.actors or ()
                if node_id is None or actor.node_id == node_id
            ]

    # --- jobs --------------------------------------------------------------------

    def jobs(self, *, cluster: str | None = None, status: str | None = None) -> tuple[list[JobRecord], dict[str, str]]:
        """Read the jobs of every attached cluster (or of ``cluster``) now, concurrently:
        running first, then the most recent. Also returns, per cluster that could not be
        read, why (the job API is the dashboard's: a cluster without one is skipped)."""
        status = checked_status(status)
        attachments = self._chosen(cluster)
        if not attachments:
            return [], {}

        def read(a: _Attachment) -> list[JobRecord]:
            if not a.info.dashboard_url:
                raise ClusterUnreachable("it has no dashboard, and jobs are read from the dashboard's job API")
            return read_jobs(a.info.dashboard_url, self.settings.http_timeout, cluster=a.name, token=a.token)

        found, skipped = _from_each(attachments, read, "castray-jobs")
        return ordered([j for j in found if status is None or j.status == status]), skipped

    def refresh_jobs(self) -> list[Event]:
        """Read every attached cluster's jobs into the session; emit ``job_added`` and
        ``job_status_changed`` for what changed since the last read (not for the first)."""
        found, skipped = self.jobs()
        events: list[Event] = []
        with self._lock:
            for name, attachment in self._attached.items():
                if name in skipped:
                    attachment.jobs_error = skipped[name]
                    continue
                new = [j for j in found if j.cluster == name]
                if attachment.jobs is not None:
                    events += job_events(name, attachment.jobs, new)
                attachment.jobs, attachment.jobs_error = new, None
        self._emit(events)
        return events

    def cached_jobs(self, cluster: str | None = None) -> tuple[list[JobRecord], dict[str, str]]:
        """Jobs as of the last :meth:`refresh_jobs`, and why a cluster's could not be read."""
        chosen = self._chosen(cluster)
        with self._lock:
            jobs = [j for a in chosen for j in a.jobs or ()]
            skipped = {a.name: a.jobs_error for a in chosen if a.jobs_error}
        return ordered(jobs), skipped

    def job(self, job: str, *, cluster: str | None = None) -> tuple[JobRecord, str]:
        """A job by submission id (or job id) and its cluster's dashboard URL; looked for
        in ``cluster``, else in every attached cluster with a dashboard."""
        record, attachment = self._job(job, cluster)
        assert attachment.info.dashboard_url
        return record, attachment.info.dashboard_url

    def _job(self, job: str, cluster: str | None) -> tuple[JobRecord, _Attachment]:
        if not isinstance(job, str) or not job.strip():
            raise InvalidArgument("give a job's submission id (or job id)")
        attachments = [a for a in self._chosen(cluster) if a.info.dashboard_url]
        if cluster is not None and not attachments:
            raise InvalidArgument(f"{cluster} has no dashboard, and jobs are read from the dashboard's job API")
        errors = []
        for a in attachments:
            assert a.info.dashboard_url
            try:
                return read_job(a.info.dashboard_url, job, self.settings.http_timeout, cluster=a.name, token=a.token), a
            except UnknownJob:
                continue
            except CastrayError as exc:
                errors.append(f"{a.name}: {exc}")
        where = cluster or ", ".join(a.name for a in attachments) or "no attached cluster with a dashboard"
        unread = f" (could not ask {'; '.join(errors)})" if errors else ""
        raise UnknownJob(f"no job {job!r} in {where}{unread}")

    def job_logs(self, job: str, *, cluster: str | None = None) -> str:
        """The logs of a submission job (see :meth:`job`)."""
        record, a = self._job(job, cluster)
        return read_logs(str(a.info.dashboard_url), record, self.settings.http_timeout, token=a.token)

    def follow_job_logs(self, job: str, *, cluster: str | None = None) -> Generator[str, None, None]:
        """The logs of a submission job as they are written, until it ends."""
        record, a = self._job(job, cluster)
        return follow_logs(str(a.info.dashboard_url), record, self.settings.http_timeout, token=a.token)

    def submit(
        self, cluster: str, entrypoint: str, *, runtime_env: dict[str, Any] | None = None, **options: Any
    ) -> str:
        """Submit a job to an attached cluster; returns its submission id. Explicit only:
        nothing else in castray_nb changes a cluster."""
        if cluster is None:
            raise InvalidArgument("say which attached cluster to submit to (cluster=NAME)")
        (attachment,) = self._chosen(cluster)
        if not attachment.info.dashboard_url:
            raise InvalidArgument(f"{cluster} has no dashboard, and jobs are submitted through it")
        return submit_job(
            attachment.info.dashboard_url,
            entrypoint,
            runtime_env=runtime_env,
            client_factory=lambda url: submission_client(url, attachment.token),
            **options,
        )

    def stop_job(self, job: str, *, cluster: str | None = None) -> bool:
        """Ask the job's cluster to stop a submission job; True when it was running."""
        record, a = self._job(job, cluster)
        if not record.submission_id:
            raise InvalidArgument(f"job {record.key} is a DRIVER job: stop the process that runs it")
        return stop_submitted(
            str(a.info.dashboard_url), record.submission_id, client_factory=lambda url: submission_client(url, a.token)
        )

    def _chosen(self, cluster: str | None) -> list[_Attachment]:
        with self._lock:
            if cluster is not None and cluster not in self._attached:
                raise UnknownCluster(f"no attached cluster is called {cluster!r} (attached: {self._names_text()})")
            return [a for a in self._attached.values() if cluster is None or a.name == cluster]

    # --- live refresh ------------------------------------------------------------

    def watch(
        self,
        interval: float | None = None,
        on_refresh: Callable[[list[Event]], None] | None = None,
        *,
        actors: bool = False,
        jobs: bool = False,
    ) -> Watch:
        """Refresh in the background every ``interval`` seconds until the returned
        :class:`Watch` is stopped. All watches of a session share one thread, which runs
        at the shortest interval asked for and ends with the last watch. With
        ``actors=True`` each round also reads the ALIVE actors of every attached cluster
        (see :meth:`actor_counts`); with ``jobs=True`` it reads their jobs too (see
        :meth:`cached_jobs`), and job changes are events."""
        watch = Watch(self, max(0.2, interval or self.settings.refresh_interval), on_refresh, actors, jobs)
        with self._lock:
            if self.closed:
                raise CastrayError("this session is closed; make a new one")
            self._watches.append(watch)
            if self._watch_thread is None or not self._watch_thread.is_alive():
                self._watch_thread = threading.Thread(target=self._watch_loop, name="castray-refresh", daemon=True)
                self._watch_thread.start()
        self._watch_wakeup.set()
        return watch

    def _unwatch(self, watch: Watch) -> None:
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)
        self._watch_wakeup.set()

    def _watch_loop(self) -> None:
        while True:
            with self._lock:
                watches = list(self._watches)
                if not watches:
                    self._watch_thread = None
                    return
            # Clear before refreshing: a stop() that arrives during the refresh must still
            # cut the wait short.
            self._watch_wakeup.clear()
            started = time.monotonic()
            try:
                events = self.refresh()
                if any(w.actors for w in watches):
                    self.refresh_actors()
                if any(w.jobs for w in watches):
                    events = [*events, *self.refresh_jobs()]
            except Exception:  # never let the loop die on a bug; the next round tries again
                log.exception("castray background refresh failed")
                events = []
            for watch in watches:
                if watch.on_refresh is not None and watch.active:
                    try:
                        watch.on_refresh(events)
                    except Exception:
                        log.exception("castray refresh listener failed")
            # A refresh that takes long (thousands of nodes) stretches the wait, so the
            # background work stays under ~20 % of a core whatever the clusters' size.
            took = time.monotonic() - started
            self._watch_wakeup.wait(max(min(w.interval for w in watches), 4 * took))

    @property
    def watching(self) -> bool:
        with self._lock:
            return bool(self._watches)

    # --- events ------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every change; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            for event in events:
                try:
                    callback(event)
                except Exception:  # one broken subscriber must not starve the rest
                    log.exception("castray event subscriber failed")


class Watch:
    """A running background refresh; :meth:`stop` ends it (and the thread, if it was the last)."""

    def __init__(
        self,
        session: Session,
        interval: float,
        on_refresh: Callable[[list[Event]], None] | None,
        actors: bool = False,
        jobs: bool = False,
    ) -> None:
        self.session = session
        self.interval = interval
        self.on_refresh = on_refresh
        self.actors = actors
        self.jobs = jobs
        self.active = True

    def stop(self) -> None:
        self.active = False
        self.session._unwatch(self)


_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def given_token(token: Token | str | None) -> Token | None:
    """A token given on purpose, as a :class:`Token` (a string is the token itself)."""
    if token is None or isinstance(token, Token):
        return token
    if not isinstance(token, str) or not token.strip():
        raise InvalidArgument("token must be a non-empty string (the Ray auth token itself)")
    return Token(token.strip(), "the token given")


def checked_name(name: object) -> str:
    """A name to attach a cluster under; raises :class:`InvalidName`.

    Names go into URL paths and onto magic lines, so they are letters, digits, ``.``,
    ``_`` and ``-``, at most 64 characters (and not ``.`` or ``..``).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        shown = repr(name) if len(repr(name)) <= 40 else repr(name)[:37] + "..."
        shown = "".join(ch if ch.isprintable() else "?" for ch in shown)
        raise InvalidName(f"invalid cluster name {shown}: use {NAME_RULE}")
    return name


def default_name(info: ClusterInfo) -> str:
    """The short name a cluster is attached under when none is given.

    ``ray-<port>`` for a cluster on this machine (the GCS port, else the dashboard's),
    ``<host>-<port>`` for one elsewhere; a session that already uses it adds ``-2``,
    ``-3``, ... The session name stays in ``ClusterState.session_name``.
    """
    address = info.gcs_address
    if not address and info.dashboard_url:
        address = info.dashboard_url.partition("://")[2].split("/", 1)[0]
    try:
        host, port = split_hostport(address or "")
    except ValueError:
        return re.sub(r"[^A-Za-z0-9._-]", "-", info.name)[-64:] or "cluster"
    if is_this_machine(host):
        return f"ray-{port}"
    return re.sub(r"[^A-Za-z0-9.-]", "-", host.strip("[]"))[:50] + f"-{port}"


def _same_cluster(a: ClusterInfo, b: ClusterInfo) -> bool:
    if a.gcs_address and b.gcs_address:
        return cluster_key(a.gcs_address) == cluster_key(b.gcs_address)
    return bool(a.dashboard_url) and a.dashboard_url == b.dashboard_url


def _from_each(
    attachments: Sequence[_Attachment], read: Callable[[_Attachment], list[T]], thread_name: str
) -> tuple[list[T], dict[str, str]]:
    """``read`` each cluster concurrently: everything read, and why each failure failed."""
    found: list[T] = []
    skipped: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(min(16, len(attachments)), thread_name) as pool:
        futures = {a.name: pool.submit(read, a) for a in attachments}
        for name, future in futures.items():
            try:
                found.extend(future.result())
            except CastrayError as exc:
                skipped[name] = str(exc)
    return found, skipped


def job_events(cluster: str, before: Sequence[JobRecord], after: Sequence[JobRecord]) -> list[Event]:
    """``job_added`` for each new job, ``job_status_changed`` (``RUNNING -> SUCCEEDED``)."""
    old = {j.key: j for j in before}
    events = []
    for job in after:
        was = old.get(job.key)
        if was is None:
            events.append(Event("job_added", cluster, detail=job.status, job_id=job.key))
        elif was.status != job.status:
            events.append(Event("job_status_changed", cluster, detail=f"{was.status} -> {job.status}", job_id=job.key))
    return events


def _diff(cluster: str, before: Sequence[NodeRecord], after: Sequence[NodeRecord]) -> list[Event]:
    old = {r.node_id: r for r in before}
    new = {r.node_id: r for r in after}
    events = [Event("node_added", cluster, n, new[n].state) for n in new.keys() - old.keys()]
    events += [Event("node_removed", cluster, n) for n in old.keys() - new.keys()]
    for node_id in new.keys() & old.keys():
        if old[node_id].state != new[node_id].state:
            events.append(
                Event("node_state_changed", cluster, node_id, f"{old[node_id].state} -> {new[node_id].state}")
            )
    return events
