"""The public functions, over one default session per process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from .core.connector import driver_address, leave_driver
from .core.discovery import DiscoveryReport, Found
from .core.errors import CastrayError, InvalidArgument
from .core.history import Seen
from .core.links import jupyter_context
from .core.model import ClusterState, Event
from .core.past import When, store_history
from .core.recorder import Recorder
from .core.registry import KernelRegistry
from .core.session import Session
from .core.settings import load_settings
from .core.store import Remembered

if TYPE_CHECKING:
    import pandas as pd

_default: Session | None = None
_last_report: DiscoveryReport | None = None
_default_lock = threading.Lock()
log = logging.getLogger(__name__)


def session(*, server: bool = False) -> Session:
    """The process-wide session that the functions below, the magics and the panel share.

    Creating it is instant: the clusters of the ``attach`` setting (``CASTRAY_ATTACH``)
    are attached by a background thread, so a server's event loop never waits on them.
    It records what it reads into the user's history (unless the ``history`` setting is
    false); ``server=True`` is the Jupyter server's own, which records before any kernel.
    """
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            settings = load_settings()
            recorder = Recorder(store_history(settings), server=server) if settings.history else None
            _default = Session(settings, recorder=recorder)
            _register_with_server(_default)
            if _default.settings.attach:
                threading.Thread(
                    target=_attach_on_start, args=(_default,), name="castray-attach-on-start", daemon=True
                ).start()
        return _default


def _register_with_server(s: Session) -> None:
    """In a kernel of a Jupyter server, keep the server told which clusters are attached
    here, so that the dashboard links this kernel shows resolve there (:mod:`.core.registry`)."""
    if jupyter_context() is None:
        return
    registry = KernelRegistry()
    writing = threading.Lock()  # one write at a time, each of the state in its turn: the newest lands last

    def rewrite(event: Event | None = None) -> None:
        if event is None or event.kind in ("cluster_attached", "cluster_detached"):
            with writing:
                registry.write((c.session_name or c.info.name, c.name, c.dashboard_url) for c in s.clusters())

    s.subscribe(rewrite)
    rewrite()


def _attach_on_start(s: Session) -> None:
    for address in s.settings.attach:
        try:
            if address.strip().lower() == "auto":
                s.discover(connect=True)
            else:
                s.connect(address, refresh=False)
        except CastrayError as exc:
            log.warning("could not attach %s on start: %s", address, exc)


def discover(*, connect: bool = False, all_users: bool | None = None) -> Found:
    """Every live Ray cluster on this machine that is yours, and those on the machines of
    the ``hosts`` setting, an installed plug-in or your recent attachments (see each one's
    ``location``); with ``connect=True`` attach them all.

    It is a list, and its ``report`` says what this discovery rejected and why, which
    sources failed, and which clusters could not be attached (attaching goes on past
    them); :func:`discover_report` gives the report of this process's last call.
    ``all_users=True`` (or the ``all_users`` setting) also lists other Unix users'
    clusters on this machine, each with its ``owner``; those are never attached
    by ``connect=True`` and never sent your Ray token.

    >>> import castray_nb
    >>> [c.name for c in castray_nb.discover()]     # doctest: +SKIP
    ['session_2026-11-28_10-00-00_123456_4242']
    """
    global _last_report
    found = session().discover(connect=connect, all_users=all_users)
    _last_report = found.report
    return found


def discover_report() -> DiscoveryReport | None:
    """What this process's last :func:`discover` found, rejected, attached and failed to
    attach: a convenience for the notebook; code that discovers uses ``found.report``.

    >>> castray_nb.discover(connect=True); castray_nb.discover_report().attach_errors  # doctest: +SKIP
    ()
    """
    return _last_report


def connect(
    address: str = "auto", *, name: str | None = None, driver: bool = False, token: str | None = None
) -> ClusterState:
    """Attach a cluster read-only (and, with ``driver=True``, also ``ray.init`` to it).

    ``address``: ``host:port`` (GCS), ``http(s)://host:port`` (dashboard), a host alone,
    ``ray://host:port`` (driver only), a discovered session name, or ``auto`` (your only
    live cluster here; with several, :class:`AmbiguousAddress`: use
    ``discover(connect=True)`` to attach them all). ``name`` defaults to a short one such
    as ``ray-6379``. ``token`` is a Ray auth token to send this cluster on purpose: without
    it, your Ray token goes to your own processes and to other machines, never to another
    Unix user's process here.

    >>> castray_nb.connect("127.0.0.1:6379", name="lab")    # doctest: +SKIP
    ClusterState(lab · gcs 127.0.0.1:6379 · nodes 1/1 alive · read via dashboard, ... )
    """
    return session().connect(address, name=name, driver=driver, token=token)


def disconnect(name: str | None = None, *, all: bool = False, driver: bool = False) -> list[str]:
    """Detach one cluster by name, or all of them; ``driver=True`` also ends ``ray.init``.

    Returns the names detached.
    """
    s = session()
    if name is None and not all and not driver:
        raise InvalidArgument("say which cluster to disconnect: a name, all=True, or driver=True")
    gone: list[str] = []
    if all:
        gone = s.detach_all()
    elif name is not None:
        s.detach(name)
        gone = [name]
    if driver:
        current = driver_address()
        if leave_driver():
            gone.append(f"driver:{current}")
        s.refresh()
    return gone


def clusters(*, ended: bool = False) -> list[ClusterState] | list[Seen]:
    """The attached clusters as of their last refresh. With ``ended=True``, instead, the
    clusters that ended within the history's retention (stopped, restarted as a new Ray
    session, or gone for long), each with ``ended_at``, ``ended_reason`` and its last
    ``snapshot`` (nodes, totals, jobs): no live cluster is behind them.

    >>> [(c.cluster, c.ended_at) for c in castray_nb.clusters(ended=True)]   # doctest: +SKIP
    [('train', 1796000000.0)]
    """
    if ended:
        from .core.past import ended as ended_clusters

        return ended_clusters(session().settings)
    return session().clusters()


def history(
    cluster: str | None = None,
    since: When = "1h",
    until: When | None = None,
    metrics: str | list[str] | None = None,
    node: str | None = None,
) -> pd.DataFrame:
    """What was recorded of the clusters' usage, as a long DataFrame: ``time`` (UTC),
    ``cluster``, ``node_id`` (None for a cluster's totals), ``metric`` and ``value``.

    ``since``/``until``: a duration ago (``"10m"``, ``"2h"``, ``"1d"``, seconds), a datetime
    or an ISO time. ``cluster``: the name it was attached under or its Ray session name.
    ``metrics``: some of :data:`castray_nb.core.history.METRICS` (per node: ``alive``,
    ``CPU_used``, ``cpu_percent``, ``host_memory_used_bytes``, ``gpu_percent``, ...; per
    cluster: ``nodes_alive``, ``CPU``, ...). Points are averaged to a step that suits the
    range (10 s for an hour, 5 minutes for a day), from the user's store.

    >>> castray_nb.history("train", since="2h", metrics="cpu_percent")   # doctest: +SKIP
    """
    from .core import past

    return past.history(session().settings, cluster=cluster, since=since, until=until, metrics=metrics, node=node)


def events(cluster: str | None = None, since: When = "1h", until: When | None = None) -> pd.DataFrame:
    """What happened, oldest first: ``time`` (UTC), ``cluster``, ``kind`` (``node_joined``,
    ``node_died``, ``cluster_unreachable``, ``cluster_recovered``, ``cluster_ended``,
    ``job_status``, ``cluster_attached``, ``cluster_detached``, ...), ``node_id``, ``job``
    and ``message`` (a node's death reason, a job's ``RUNNING -> FAILED``)."""
    from .core import past

    return past.events(session().settings, cluster=cluster, since=since, until=until)


def recent() -> list[Remembered]:
    """Every cluster you attached before, from any front end (kernels, the sidebar, the
    command line), the most recently seen first: its name, address and ``last_seen``.
    Discovery offers the live ones again (source ``recent``).

    >>> [(c.name, c.address) for c in castray_nb.recent()]   # doctest: +SKIP
    [('gpu', '10.1.2.3:6379')]
    """
    return session().remembered()


def forget(name: str) -> list[Remembered]:
    """Drop a remembered cluster, by the name it was attached under or its address; returns
    what was dropped. Raises :class:`UnknownCluster` when none is remembered so. An attached
    cluster stays attached (and is remembered again when next attached)."""
    return session().forget(name)


def nodes(*, source: str | None = None, alive_only: bool = False, refresh: bool = True) -> pd.DataFrame:
    """The merged node table (local and external) as a DataFrame, refreshed first by default.

    >>> castray_nb.nodes(source="external", alive_only=True)   # doctest: +SKIP
    """
    if source not in (None, "local", "external"):
        raise InvalidArgument("source must be 'local', 'external' or None")
    s = session()
    if refresh:
        s.refresh()
    return s.nodes(source=source, alive_only=alive_only)


def actors(*, cluster: str | None = None, state: str | None = None) -> pd.DataFrame:
    """The actors of every attached cluster (or of one), named or not, as a DataFrame.

    Columns: see :data:`~castray_nb.core.actors.ACTOR_COLUMNS` (cluster, actor_id,
    class_name, name, state, node_id, pid, required_resources, ...). ``state`` keeps one
    state (``ALIVE``, ``DEAD``, ...). Clusters that could not be read (no dashboard, not
    answering) are listed with the reason in ``df.attrs["skipped"]``.

    >>> castray_nb.actors(state="ALIVE")                  # doctest: +SKIP
    """
    from .core.actors import actors_to_dataframe, checked_state

    found, skipped = session().actors(cluster=cluster, state=checked_state(state))
    frame = actors_to_dataframe(found)
    frame.attrs["skipped"] = skipped
    return frame


def jobs(*, cluster: str | None = None, status: str | None = None) -> pd.DataFrame:
    """The jobs of every attached cluster (or of one) as one DataFrame: running first,
    then the most recent.

    Columns: see :data:`~castray_nb.core.jobs.JOB_COLUMNS` (cluster, job_id, submission_id,
    type, status, entrypoint, start_time, end_time, duration_s, message, driver_node_id,
    ...). ``status`` keeps one of PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED. Clusters
    that could not be read (no dashboard, not answering) are listed with the reason in
    ``df.attrs["skipped"]``.

    >>> castray_nb.jobs(status="RUNNING")                 # doctest: +SKIP
    """
    from .core.jobs import jobs_to_dataframe

    found, skipped = session().jobs(cluster=cluster, status=status)
    frame = jobs_to_dataframe(found)
    frame.attrs["skipped"] = skipped
    return frame


def job_logs(submission_id: str, *, cluster: str | None = None) -> str:
    """The logs of a submission job, looked for in ``cluster`` or every attached cluster."""
    return session().job_logs(submission_id, cluster=cluster)


def follow_job_logs(submission_id: str, *, cluster: str | None = None) -> Generator[str, None, None]:
    """The logs of a submission job as they are written (the dashboard's log tail), until it
    ends. An interrupt (Ctrl+C, the notebook's stop button) ends the iteration cleanly."""
    return session().follow_job_logs(submission_id, cluster=cluster)


def submit(cluster: str, entrypoint: str, runtime_env: dict[str, Any] | None = None, **options: Any) -> str:
    """Submit a job to the attached cluster ``cluster``; returns its submission id.

    ``entrypoint`` is a string Ray runs on the cluster (castray_nb never runs it through a
    local shell). ``runtime_env`` is Ray's (a local ``working_dir`` or ``py_modules`` is
    uploaded); ``options`` go to Ray's ``JobSubmissionClient.submit_job`` (``submission_id``,
    ``metadata``, ``entrypoint_num_cpus``, ...). This imports Ray.
    """
    return session().submit(cluster, entrypoint, runtime_env=runtime_env, **options)


def stop_job(submission_id: str, *, cluster: str | None = None) -> bool:
    """Ask the job's cluster to stop it; True when it was running. This imports Ray."""
    return session().stop_job(submission_id, cluster=cluster)


def status() -> dict[str, Any]:
    """A short summary: driver connection, attached clusters, node counts."""
    s = session()
    states = s.clusters()
    return {
        "driver": driver_address(),
        "attached": [c.name for c in states],
        "reachable": sum(bool(c.reachable) for c in states),
        "nodes": len(s.rows()),
        "alive_nodes": len(s.rows(alive_only=True)),
    }
