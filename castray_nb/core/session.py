"""The session: attached clusters, their last rows, refresh, and the merged table.

It is the middle of the flow (sources -> candidates -> verified clusters -> **attachments
-> node records** -> views) and hands the rest to collaborators of its own:

- :mod:`.model`: the value types it returns (:class:`ClusterState`, :class:`Event`);
- :mod:`.naming`: what an attachment is called;
- :mod:`.runtime`: the kernel's own Ray runtime ("local" rows);
- :mod:`.workload`: the attached clusters' actors and jobs;
- :mod:`.watch`: the one background refresh, and publish/subscribe.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
import sys
import threading
import time
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from .actors import ActorRecord
from .address import Address, cluster_key, host_of, is_this_machine, parse_address
from .attachment import Attachment, ClusterReader
from .auth import Token, given_token, withheld, withhold
from .changes import node_events
from .client import ClusterClient
from .discovery import ClusterInfo, DiscoveryReport, Found, discover_report
from .errors import CastrayError, ClusterTimeout, ClusterUnreachable, InvalidAddress, NameTaken, UnknownCluster
from .jobs import JobRecord
from .links import dashboard_link
from .model import ClusterState, Event, Snapshot
from .naming import checked_name, default_name, free_name, same_cluster
from .nodes import ALIVE, NodeRecord, mark_unreachable, to_dataframe
from .recorder import Recorder
from .runtime import GCS_LOST, LocalTracker, Outcome
from .settings import Settings, load_settings
from .store import Recent, Remembered
from .watch import Bus, Scheduler, Watch
from .workload import Workload

Reader = Callable[[ClusterInfo, Settings, "Token | None"], ClusterReader]
Discoverer = Callable[[Settings], DiscoveryReport]

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SEEN_EVERY_S = 60.0  # how often a reachable attachment's last_seen is written to the user's store


def _gone(exc: CastrayError) -> bool:
    """Whether a failed read says nothing listens at the cluster's address any more."""
    return isinstance(exc, ClusterUnreachable) and not isinstance(exc, ClusterTimeout) and "refused" in str(exc)


def _is_runtime(attachment: Attachment, runtime_key: tuple[str, int] | None) -> bool:
    """Whether ``attachment`` is the cluster of the kernel's own runtime (its GCS's
    :func:`.address.cluster_key` is ``runtime_key``)."""
    address = attachment.info.gcs_address
    return runtime_key is not None and address is not None and cluster_key(address) == runtime_key


def _client(info: ClusterInfo, settings: Settings, token: Token | None = None) -> ClusterReader:
    return ClusterClient(info.gcs_address, info.dashboard_url, settings, token=token)


class Session:
    """Attached clusters and the kernel's own runtime, read together.

    Thread-safe: connect, refresh, attach and detach may be called from any thread.
    Every front end (the Python API, the magics, the panel, the CLI, the server) attaches
    through :meth:`connect` and :meth:`discover`. ``reader`` and ``discoverer`` replace how
    a cluster is read and how clusters are found (tests inject fakes there). Every cluster
    attached is remembered in ``recent`` (default: the user's store, :class:`.store.Recent`).
    With a ``recorder`` (:class:`.recorder.Recorder`) every reading, failure and change is
    also written into the user's history; ``castray_nb.session()`` gives it one.

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
        recent: Recent | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.recent = recent or Recent()
        self.recorder = recorder
        self._reader: Reader = reader or _client
        self._discoverer: Discoverer = discoverer or discover_report
        self._lock = threading.RLock()
        self._attached: dict[str, Attachment] = {}
        self._seen: set[tuple[str, int] | str] = set()
        self.local = LocalTracker(self.settings.gcs_timeout, self.settings)
        self.workload = Workload(self.settings, self._chosen)
        self.bus = Bus()
        self.scheduler = Scheduler(self._round)
        self.closed = False
        if recorder is not None:
            self.bus.subscribe(recorder.event)

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
        defaults to a short one (:func:`.naming.default_name`). ``token`` is a Ray auth
        token to send this cluster on purpose; without it Ray's own token is sent only where
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
        if given is None:
            self._keep_token_from_plugin_hosts(parsed)
        info = resolve(parsed, self.settings, discover=self._discovered, token=given)
        with self._lock:
            self._check_free(info, name)
        if driver:
            if not info.gcs_address:
                raise CastrayError(f"{info.name}: no GCS address known, so it cannot be joined as a driver")
            become_driver(info.gcs_address, token=given)
        return self.attach(info, name, refresh=refresh, token=given)

    def _keep_token_from_plugin_hosts(self, parsed: Address) -> None:
        """A remembered cluster whose host only a plug-in named keeps getting no Ray token
        when it is attached again (the sidebar's Recent, the server's restore), as at first."""
        if not parsed.host or is_this_machine(parsed.host):
            return
        for entry in self.recent.entries():
            if not entry.token and host_of(entry.address) == parsed.host.lower():
                withhold(
                    parsed.host, f"{entry.name} was found by a discovery plug-in that did not say it is meant for it"
                )

    def remembered(self) -> list[Remembered]:
        """The clusters attached before, from any front end (the user's store), newest first."""
        return self.recent.entries()

    def forget(self, name: str) -> list[Remembered]:
        """Drop a remembered cluster (by its name or address); raises :class:`UnknownCluster`."""
        return self.recent.forget(name)

    def discover(self, *, connect: bool = False, all_users: bool | None = None) -> Found:
        """Every live cluster on this machine (with this session's settings), as a list
        whose ``report`` says what this discovery rejected and why; subscribers hear of each
        cluster the first time this session sees it. ``all_users`` (default: the setting)
        also lists other Unix users' clusters here, each with its ``owner``.

        With ``connect=True`` attach every one of them (this is the one way to attach them
        all): what can be attached is, and each failure is kept, with its reason, in the
        report's ``attach_errors`` rather than stopping the rest. Other users' clusters
        (listed with the ``all_users`` setting) are never attached so: only by their address
        or session name, on purpose.
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
        return Found(dataclasses.replace(report, attached=tuple(attached), attach_errors=tuple(failures)))

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
                return self._state(existing)
            name = name or free_name(default_name(info), self._attached)
            attachment = Attachment(name, info, self._reader(info, self.settings, token), token)
            self._attached[name] = attachment
        self._remember(attachment)
        self.bus.emit([Event("cluster_attached", name, detail=info.gcs_address or info.dashboard_url or "")])
        if refresh:
            self.bus.emit(self._read_all([attachment]))
        with self._lock:
            return self._state(attachment)

    def _remember(self, attachment: Attachment) -> None:
        if not attachment.address:
            return
        attachment.remembered = time.monotonic()
        self.recent.remember(
            attachment.name,
            attachment.address,
            session_name=attachment.info.name,
            sources=attachment.info.sources,
            token=withheld(host_of(attachment.address) or "") is None,
        )

    def _check_free(self, info: ClusterInfo, name: str | None) -> Attachment | None:
        """The attachment of the same cluster if there is one; raises :class:`NameTaken`
        when ``name`` belongs to a different cluster. Call with the lock held."""
        for existing in self._attached.values():
            if same_cluster(existing.info, info):
                return existing
        if name is not None and name in self._attached:
            raise NameTaken(f"a different cluster is already attached as {name!r}; pick another name")
        return None

    def _state(self, a: Attachment) -> ClusterState:
        """Its state, with the dashboard link made with this session's settings."""
        key = a.session_name or a.info.name
        return a.state(dashboard_link(a.info.dashboard_url, key, a.name, template=self.settings.dashboard_link))

    def _driver_state(self, url: str) -> ClusterState:
        rows = self.local.rows
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
            gone = self._attached.pop(name)
        self._seen_last(gone)
        self.workload.forget(name)
        self.bus.emit([Event("cluster_detached", name)])

    def detach_all(self) -> list[str]:
        with self._lock:
            gone = list(self._attached.values())
            names = list(self._attached)
            self._attached.clear()
        for attachment in gone:
            self._seen_last(attachment)
        self.workload.forget()
        self.bus.emit([Event("cluster_detached", n) for n in names])
        return names

    def _seen_last(self, attachment: Attachment) -> None:
        if attachment.last_ok is not None and attachment.address:
            self.recent.seen(attachment.address, attachment.last_ok.timestamp())

    def clusters(self) -> list[ClusterState]:
        with self._lock:
            return [self._state(a) for a in self._attached.values()]

    def cluster(self, name: str) -> ClusterState:
        with self._lock:
            if name not in self._attached:
                raise UnknownCluster(f"no attached cluster is called {name!r} (attached: {self._names_text()})")
            return self._state(self._attached[name])

    def _names_text(self) -> str:
        return ", ".join(self._attached) or "none"

    def _chosen(self, cluster: str | None) -> list[Attachment]:
        with self._lock:
            if cluster is not None and cluster not in self._attached:
                raise UnknownCluster(f"no attached cluster is called {cluster!r} (attached: {self._names_text()})")
            return [a for a in self._attached.values() if cluster is None or a.name == cluster]

    def note_discovered(self, found: Sequence[ClusterInfo]) -> list[Event]:
        """Tell subscribers about clusters that a discovery found for the first time."""
        events = []
        with self._lock:
            for info in found:
                key = cluster_key(info.gcs_address) if info.gcs_address else info.name
                if key not in self._seen:
                    self._seen.add(key)
                    events.append(Event("cluster_discovered", info.name, detail=info.gcs_address or ""))
        self.bus.emit(events)
        return events

    # --- the end -------------------------------------------------------------------

    def close(self) -> None:
        """Stop every watch, drop every subscriber and detach every cluster. Idempotent."""
        with self._lock:
            self.closed = True
            self._attached.clear()
        self.scheduler.stop_all()
        self.bus.clear()
        self.workload.forget()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------

    def refresh(self) -> list[Event]:
        """Read every attached cluster (concurrently) and the local runtime; return the changes."""
        with self._lock:
            attachments = list(self._attached.values())
        events, outcome = self.local.read()
        if outcome is not None and self.recorder is not None:
            self._record_local(outcome, events)
        events = events + self._read_all(attachments)
        self.bus.emit(events)
        return events

    def _record_local(self, outcome: Outcome, events: list[Event]) -> None:
        """The kernel's own runtime into the history, under its session name (as its rows'
        ``cluster``), unless it is attached too: then the attachment records it."""
        assert self.recorder is not None
        runtime = outcome.runtime
        key = cluster_key(runtime.gcs_address) if runtime.gcs_address else None
        with self._lock:
            if any(_is_runtime(a, key) for a in self._attached.values()):
                return
        info = ClusterInfo(
            name=runtime.name,
            gcs_address=runtime.gcs_address,
            dashboard_url=runtime.dashboard_url,
            ray_version=getattr(sys.modules.get("ray"), "__version__", None),
            session_dir=None,
            num_nodes=len(runtime.nodes),
            auth_required=False,
            sources=("local",),
        )
        if outcome.kind == "read":
            self.recorder.reading(runtime.name, info, runtime.name, runtime.nodes, events)
        elif outcome.kind == "lost":
            self.recorder.failure(runtime.name, info, runtime.name, GCS_LOST, gone=False)
        else:
            self.recorder.left(runtime.name, info, runtime.name, ended=outcome.ended, why=outcome.why)

    def _read_all(self, attachments: Sequence[Attachment]) -> list[Event]:
        if not attachments:
            return []
        workers = min(16, len(attachments))
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="castray-read") as pool:
            futures = [pool.submit(self._read_one, a) for a in attachments]
            return [event for f in futures for event in f.result()]

    def _read_one(self, attachment: Attachment) -> list[Event]:
        with self._lock:
            seq = attachment.next_read
            attachment.next_read += 1
            previous = attachment.rows
        now = dt.datetime.now(dt.UTC)
        try:
            reading = attachment.client.read(cluster=attachment.name, previous=previous)
        except CastrayError as exc:
            return self._apply_failure(attachment, seq, now, str(exc), gone=_gone(exc))
        except Exception as exc:  # a reader bug must not stop the other clusters
            log.exception("reading %s failed", attachment.name)
            return self._apply_failure(attachment, seq, now, f"{type(exc).__name__}: {exc}")
        with self._lock:
            if not self._current(attachment, seq):
                return []
            events = node_events(attachment.name, attachment.rows, reading.nodes)
            if attachment.reachable is False:
                detail = "answering again"
                if reading.session_name and reading.session_name != attachment.session_name:
                    detail = f"answering again as a new session {reading.session_name}"
                events.insert(0, Event("cluster_recovered", attachment.name, detail=detail))
            attachment.rows = reading.nodes
            attachment.seen = reading.seen
            attachment.reachable = True
            attachment.session_name = reading.session_name
            attachment.via = reading.via
            attachment.last_refresh = attachment.last_ok = now
            attachment.read_s = reading.elapsed_s
            attachment.error = None
            attachment.warnings = reading.warnings
            due = time.monotonic() - attachment.remembered >= SEEN_EVERY_S
            if due:
                attachment.remembered = time.monotonic()
        if due:
            self.recent.seen(attachment.address)
        if self.recorder is not None:
            try:
                jobs, _ = self.workload.cached_jobs(attachment.name)  # this cluster's only, not every one's
            except UnknownCluster:  # detached meanwhile
                jobs = []
            self.recorder.reading(attachment.name, attachment.info, reading.session_name, reading.nodes, events, jobs)
        return events

    def _current(self, attachment: Attachment, seq: int) -> bool:
        """Whether a reading started as ``seq`` may be applied, and if so mark it applied.

        Two refreshes may overlap (the watch, a button, a REST call): a reading that
        started before the one already applied is stale and dropped, so an older state
        never overwrites a newer one (and raises no false events). Call with the lock held.
        """
        if self._attached.get(attachment.name) is not attachment or seq < attachment.applied_read:
            return False  # detached while it was being read, or overtaken
        attachment.applied_read = seq
        return True

    def _apply_failure(
        self, attachment: Attachment, seq: int, now: dt.datetime, error: str, *, gone: bool = False
    ) -> list[Event]:
        with self._lock:
            if not self._current(attachment, seq):
                return []
            was = attachment.reachable
            if was is not False:  # the rows keep the time they were last seen
                attachment.rows = mark_unreachable(attachment.current_rows())
            attachment.reachable = False
            attachment.last_refresh = now
            attachment.error = error
            attachment.read_s = None
        if self.recorder is not None:
            self.recorder.failure(attachment.name, attachment.info, attachment.session_name, error, gone=gone)
        return [Event("cluster_unreachable", attachment.name, detail=error)] if was is not False else []

    def rows(self, *, source: str | None = None, alive_only: bool = False) -> list[NodeRecord]:
        """Every node as of the last refresh: local rows first, each cluster once; each
        row's ``last_seen`` is the time of the reading that saw it."""
        rows = self._merged(fresh=True)
        if source:
            rows = [r for r in rows if r.source == source]
        if alive_only:
            rows = [r for r in rows if r.state == ALIVE]
        return rows

    def _merged(self, *, fresh: bool) -> list[NodeRecord]:
        """The rows of the runtime and of every attachment; ``fresh=False`` gives the stored
        records themselves (no copy: see :class:`.model.Snapshot`)."""
        local_key = self.local.key
        rows = self.local.rows
        with self._lock:
            for attachment in self._attached.values():
                if _is_runtime(attachment, local_key):
                    continue  # the kernel's own cluster is already there as "local"
                rows.extend(attachment.current_rows() if fresh else attachment.rows)
        return rows

    def snapshot(self) -> Snapshot:
        """The clusters, every row, the actor counts and the jobs, read together: nothing
        is applied between them (a view drawn from it never disagrees with itself). It
        copies no row, so a view may take one every second of a 10,000-node cluster."""
        with self._lock:
            clusters = tuple(self._state(a) for a in self._attached.values())
            rows = tuple(self._merged(fresh=False))
            seen = {a.name: a.seen for a in self._attached.values()}
            counts = self.workload.actor_counts()
            jobs, skipped = self.workload.cached_jobs()
        return Snapshot(clusters, rows, counts, tuple(jobs), skipped, seen)

    def nodes(self, *, source: str | None = None, alive_only: bool = False) -> pd.DataFrame:
        """The merged node table as a pandas DataFrame (see :data:`~castray_nb.core.nodes.COLUMNS`)."""
        return to_dataframe(self.rows(source=source, alive_only=alive_only))

    # --- actors and jobs (see :class:`.workload.Workload`) ---------------------------

    def actors(
        self, *, cluster: str | None = None, state: str | None = None
    ) -> tuple[list[ActorRecord], dict[str, str]]:
        """Read the actors of every attached cluster (or of ``cluster``) now; see :meth:`.Workload.actors`."""
        return self.workload.actors(cluster=cluster, state=state)

    def refresh_actors(self) -> None:
        """Read the ALIVE actors of every attached cluster and keep them (what a watch with
        ``actors=True`` does each round)."""
        self.workload.refresh_actors()

    def actor_counts(self) -> dict[tuple[str, str], int]:
        """ALIVE actors per (cluster, node_id), as of a watch's last round that read them."""
        return self.workload.actor_counts()

    def cached_actors(self, cluster: str | None = None, node_id: str | None = None) -> list[ActorRecord]:
        return self.workload.cached_actors(cluster, node_id)

    def jobs(self, *, cluster: str | None = None, status: str | None = None) -> tuple[list[JobRecord], dict[str, str]]:
        """Read the jobs of every attached cluster (or of ``cluster``) now; see :meth:`.Workload.jobs`."""
        return self.workload.jobs(cluster=cluster, status=status)

    def refresh_jobs(self) -> list[Event]:
        """Read the jobs into the session; job changes are events (see :meth:`.Workload.refresh_jobs`)."""
        events = self.workload.refresh_jobs()
        self.bus.emit(events)
        return events

    def cached_jobs(self, cluster: str | None = None) -> tuple[list[JobRecord], dict[str, str]]:
        return self.workload.cached_jobs(cluster)

    def job(self, job: str, *, cluster: str | None = None) -> tuple[JobRecord, str]:
        return self.workload.job(job, cluster=cluster)

    def job_logs(self, job: str, *, cluster: str | None = None) -> str:
        return self.workload.job_logs(job, cluster=cluster)

    def follow_job_logs(self, job: str, *, cluster: str | None = None) -> Generator[str, None, None]:
        return self.workload.follow_job_logs(job, cluster=cluster)

    def submit(
        self, cluster: str, entrypoint: str, *, runtime_env: dict[str, Any] | None = None, **options: Any
    ) -> str:
        """Submit a job to an attached cluster; returns its submission id (see :meth:`.Workload.submit`)."""
        return self.workload.submit(cluster, entrypoint, runtime_env=runtime_env, **options)

    def stop_job(self, job: str, *, cluster: str | None = None) -> bool:
        return self.workload.stop_job(job, cluster=cluster)

    # --- live refresh and events (see :mod:`.watch`) --------------------------------

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
        with self._lock:
            if self.closed:
                raise CastrayError("this session is closed; make a new one")
        return self.scheduler.add(max(0.2, interval or self.settings.refresh_interval), on_refresh, actors, jobs)

    def _round(self, actors: bool, jobs: bool) -> list[Event]:
        events = self.refresh()
        if actors:
            self.workload.refresh_actors()
        if jobs:
            events = [*events, *self.refresh_jobs()]
        return events

    @property
    def watching(self) -> bool:
        return bool(self.scheduler.watches)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every change; returns a function that unsubscribes."""
        return self.bus.subscribe(callback)
