"""Where clusters are found: sources -> candidates -> verified, deduplicated ClusterInfo."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from .address import DEFAULT_PORTS, cluster_key, host_of, is_this_machine, join_hostport, probe_host, split_hostport
from .auth import find_token, release, withhold
from .client import ClusterClient
from .errors import AuthRequired, CastrayError, ClusterUnreachable
from .gcs import fallback_note, notes, read_gcs, tcp_failure, version_note
from .http import get_json
from .links import dashboard_link
from .owners import Holder, current_user, holder_at, process_uid, user_name
from .render import card, one_line
from .settings import Settings, load_settings
from .sources import (
    OWN_SOURCES,
    THIS_MACHINE_SOURCES,
    Candidate,
    SourceContext,
    default_temp_dir,
    registered_sources,
)


@dataclass(frozen=True)
class ClusterInfo:
    """One live cluster, found and verified.

    ``name`` is the session name; ``num_nodes`` counts ALIVE nodes and is None when
    the cluster could not be read (a token is needed and none matched). ``owner`` is the
    Unix user whose processes hold the cluster's sockets on this machine (None for a
    cluster elsewhere); see :attr:`other_user`.
    """

    name: str
    gcs_address: str | None
    dashboard_url: str | None
    ray_version: str | None
    session_dir: str | None
    num_nodes: int | None
    auth_required: bool
    sources: tuple[str, ...]
    temp_dir: str | None = None
    cluster_id: str | None = None
    local_nodes: int = 0
    note: str | None = None
    owner: str | None = None
    # The dashboard link to show, made with the settings of the discovery that found it.
    link: str | None = field(default=None, compare=False, repr=False)

    @property
    def other_user(self) -> bool:
        """Whether it is another Unix user's (or partly another's): never sent our token,
        hidden from discovery unless asked (``all_users``), never attached by ``auto``."""
        return self.owner is not None and self.owner != current_user()

    @property
    def location(self) -> str:
        """Where it is: ``this-machine``; or, elsewhere, how it was named: ``listed-host``
        (the ``hosts`` setting), ``address`` (typed, ``attach``, ``RAY_ADDRESS``), ``plug-in``
        (a discovery plug-in) or ``recent`` (attached before)."""
        return location_of(self.gcs_address or self.dashboard_url or "", self.sources)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        del data["link"]
        data["sources"] = list(self.sources)
        data["other_user"] = self.other_user
        data["location"] = self.location
        return data

    def __repr__(self) -> str:
        return one_line("ClusterInfo", self.name, self._facts())

    def _repr_html_(self) -> str:
        return card(self.name, self._facts(), self.dashboard_link, self.note)

    @property
    def dashboard_link(self) -> str | None:
        """The link to show: through the Jupyter server under one (see :mod:`.links`)."""
        return self.link or dashboard_link(self.dashboard_url, self.name)

    def _facts(self) -> list[tuple[str, str]]:
        nodes = "?" if self.num_nodes is None else str(self.num_nodes)
        where = ("gcs", self.gcs_address) if self.gcs_address else ("dashboard", self.dashboard_url or "-")
        facts = [where, ("nodes", nodes), ("ray", self.ray_version or "?"), ("where", self.location)]
        if self.other_user:
            facts.append(("owner", str(self.owner)))
        if self.auth_required:
            facts.append(("token", "required"))
        return facts


@dataclass(frozen=True)
class DiscoveryReport:
    """Everything one discovery run learnt, including what it threw away and why."""

    clusters: tuple[ClusterInfo, ...]
    source_errors: Mapping[str, str] = field(default_factory=dict)
    rejected: tuple[tuple[str, str], ...] = ()  # (what, why)
    hints: int = 0
    elapsed_s: float = 0.0
    attached: tuple[str, ...] = ()  # names given by discover(connect=True)
    attach_errors: tuple[tuple[str, str], ...] = ()  # (session name, why it could not be attached)


class Found(list[ClusterInfo]):
    """The clusters one discovery found, a list, with that discovery's own report as
    :attr:`report` (what it rejected, which sources failed, what it could not attach).

    >>> found = session.discover(connect=True)      # doctest: +SKIP
    >>> found.report.attach_errors                  # doctest: +SKIP
    """

    def __init__(self, report: DiscoveryReport) -> None:
        super().__init__(report.clusters)
        self.report = report


def location_of(address: str, sources: Sequence[str]) -> str:
    """:attr:`ClusterInfo.location` of a cluster at ``address`` found by ``sources``."""
    host = host_of(address)
    if not host or is_this_machine(host):
        return "this-machine"
    given = set(sources)
    if "hosts" in given:
        return "listed-host"
    if given & {"address", "config", "env"}:
        return "address"
    if given - OWN_SOURCES:
        return "plug-in"
    return "recent" if "recent" in given else "address"


def discover(settings: Settings | None = None) -> list[ClusterInfo]:
    """Every live Ray cluster this machine knows of, each once: this user's own and those
    elsewhere; other users' clusters on this machine too with ``settings.all_users``.

    >>> for cluster in discover():          # doctest: +SKIP
    ...     print(cluster.name, cluster.gcs_address, cluster.num_nodes)
    """
    return list(discover_report(settings).clusters)


def discover_report(settings: Settings | None = None) -> DiscoveryReport:
    """Like :func:`discover`, with failing sources and rejected candidates explained."""
    started = time.perf_counter()
    settings = settings or load_settings()
    temp_dirs = tuple(dict.fromkeys([default_temp_dir(), *settings.temp_dirs]))
    candidates, errors = _collect(SourceContext(settings, temp_dirs), settings.sources)
    _token_policy(candidates)
    hints = [c for c in candidates if c.hint]
    groups = _group([c for c in candidates if not c.hint])
    clusters: list[ClusterInfo] = []
    rejected: list[tuple[str, str]] = []
    if groups:
        # One thread per candidate, up to 64: hosts that do not answer cost one probe timeout together.
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(64, len(groups))) as pool:
            for group, outcome in zip(groups, pool.map(lambda g: _verify(g, settings), groups), strict=True):
                if isinstance(outcome, ClusterInfo):
                    clusters.append(outcome)
                else:
                    rejected.append((_describe(group), outcome))
    clusters = [
        dataclasses.replace(c, link=dashboard_link(c.dashboard_url, c.name, template=settings.dashboard_link))
        for c in _merge_by_session(_add_hints(clusters, hints))
    ]
    return DiscoveryReport(
        clusters=tuple(sorted(clusters, key=lambda c: c.name)),
        source_errors=errors,
        rejected=tuple(rejected),
        hints=len(hints),
        elapsed_s=time.perf_counter() - started,
    )


def _collect(ctx: SourceContext, wanted: Sequence[str] | None) -> tuple[list[Candidate], dict[str, str]]:
    """Every source's candidates, the sources run side by side, each under the
    ``source_timeout`` deadline (as dask-ctl gives each of its sources 5 s): a source past
    it keeps what it yielded by then, and its lateness is recorded as its error."""
    sources, errors = registered_sources()
    if wanted is not None:
        for name in wanted:
            if name not in sources:
                errors[name] = f"no such source (known: {', '.join(sorted(sources))})"
        sources = {name: fn for name, fn in sources.items() if name in wanted}
    runs = [_SourceRun(name, source, ctx) for name, source in sources.items()]
    deadline = time.monotonic() + ctx.settings.source_timeout
    candidates: list[Candidate] = []
    for run in runs:
        found, error = run.result(deadline, ctx.settings.source_timeout)
        candidates.extend(found)
        if error:
            errors[run.name] = error
    return candidates, errors


class _SourceRun:
    """One source, run in a daemon thread of its own: a source that never returns (a
    plug-in waiting on a dead service) is left behind, and never holds up the process's exit."""

    def __init__(self, name: str, source: Callable[[SourceContext], Iterable[Candidate]], ctx: SourceContext) -> None:
        self.name = name
        self._found: list[Candidate] = []
        self._error: str | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._run, args=(source, ctx), name=f"castray-source-{name}", daemon=True).start()

    def _run(self, source: Callable[[SourceContext], Iterable[Candidate]], ctx: SourceContext) -> None:
        try:
            for candidate in source(ctx):
                if isinstance(candidate, Candidate):
                    with self._lock:
                        self._found.append(candidate)
        except Exception as exc:  # one failing source must not hide the others' finds
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self._done.set()

    def result(self, deadline: float, limit: float) -> tuple[list[Candidate], str | None]:
        finished = self._done.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            found = list(self._found)
        if not finished:
            return found, f"no answer within its {limit:g} s deadline (source_timeout); {len(found)} found by then kept"
        return found, self._error


def _host_of(candidate: Candidate) -> str | None:
    """The host a candidate names (None when it names none that can be read)."""
    return candidate.host or host_of(candidate.gcs_address or candidate.dashboard_url or "")


def _named_by_user(candidate: Candidate) -> bool:
    """Whether Ray's token may go to the candidate's host (another machine): the user's own
    word (a built-in source: the hosts setting, recent attachments that had it), or a
    plug-in that says the token is meant for it."""
    if candidate.token_meant is not None:
        return candidate.token_meant
    return candidate.source in OWN_SOURCES


def _token_policy(candidates: Sequence[Candidate]) -> None:
    """Hosts on other machines that only plug-ins named (none saying the token is meant
    for them) get no Ray token from this process (:func:`.auth.withhold`), before anything
    is sent there; hosts the user named get it again (:func:`.auth.release`)."""
    user: set[str] = set()
    plugin: dict[str, set[str]] = {}
    for c in candidates:
        host = _host_of(c)
        if c.hint or not host or is_this_machine(host) or c.source in THIS_MACHINE_SOURCES:
            continue
        if _named_by_user(c):
            user.add(host.lower())
        else:
            plugin.setdefault(host.lower(), set()).add(c.source)
    for host in user:
        release(host)
    for host, sources in plugin.items():
        if host not in user:
            names = ", ".join(sorted(sources))
            withhold(host, f"only the discovery plug-in {names} named {host}, without saying the token is meant for it")


def _key(candidate: Candidate) -> tuple[str, object]:
    if candidate.host:
        return ("host", candidate.host.lower())
    if candidate.gcs_address:
        try:
            return ("gcs", cluster_key(candidate.gcs_address))
        except ValueError:
            return ("bad", candidate.gcs_address)
    return ("url", candidate.dashboard_url)


def _group(candidates: Iterable[Candidate]) -> list[list[Candidate]]:
    groups: dict[tuple[str, object], list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault(_key(candidate), []).append(candidate)
    # The process table knows most; let its candidates speak first.
    return [sorted(g, key=lambda c: c.source != "processes") for g in groups.values()]


def _first(group: Sequence[Candidate], attr: str) -> object:
    return next((getattr(c, attr) for c in group if getattr(c, attr)), None)


def _describe(group: Sequence[Candidate]) -> str:
    where = _first(group, "gcs_address") or _first(group, "dashboard_url") or _first(group, "host") or "?"
    return f"{where} (from {', '.join(sorted({c.source for c in group}))})"


def _verify(group: list[Candidate], settings: Settings) -> ClusterInfo | str:
    """A ClusterInfo when the group is a live Ray cluster, else the reason it is not."""
    try:
        refused = _not_to_probe(group, settings)
        if refused:
            return refused
        host = next((h for h in map(_host_of, group) if h), None)
        if host and not is_this_machine(host):
            # Ray processes seen here with an address that is not this machine's run in
            # another network namespace (a container): what they say of ports is about
            # that machine's loopback, not ours. The address named is probed as any remote one.
            group = [c for c in group if c.source not in THIS_MACHINE_SOURCES]
        if group[0].host:
            expanded = _on_default_ports(group[0], settings)
            if isinstance(expanded, str):
                return expanded
            group = expanded
        return _verify_or_raise(group, settings)
    except CastrayError as exc:
        return str(exc)
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _not_to_probe(group: Sequence[Candidate], settings: Settings) -> str | None:
    """Why a group is not probed at all, or None. Discovery sends traffic to this machine,
    and to the hosts the user named for it (the hosts setting, recent attachments) or an
    installed plug-in named; not to a host that Ray's files here merely mention, nor to
    addresses meant for attaching (RAY_ADDRESS, the attach setting)."""
    host = next((h for h in map(_host_of, group) if h), None)
    if host is None or is_this_machine(host):
        return None
    if not settings.remote:
        return f"on another machine ({host}), and remote addresses are off (CASTRAY_REMOTE)"
    if all(c.source in THIS_MACHINE_SOURCES for c in group):
        return (
            f"not on this machine ({host}): discovery probes another machine only when the hosts setting "
            "(CASTRAY_HOSTS) lists it or a plug-in names it; attach it with connect()"
        )
    return None


def _on_default_ports(candidate: Candidate, settings: Settings) -> list[Candidate] | str:
    """A host named alone, as candidates at whichever of Ray's default GCS and dashboard
    ports accept connections (both tried at once, each within ``probe_timeout``), or why none does."""
    host = str(candidate.host)
    ports = [(label, port) for label, port in DEFAULT_PORTS if label in ("GCS", "dashboard")]
    with concurrent.futures.ThreadPoolExecutor(len(ports), thread_name_prefix="castray-host") as pool:
        failures = list(pool.map(lambda lp: tcp_failure(probe_host(host), lp[1], settings.probe_timeout), ports))
    (_, gcs_port), (_, dash_port) = ports
    (gcs_failure, dash_failure) = failures
    if gcs_failure and dash_failure:
        tried = "; ".join(f"{label} {port}: {why}" for (label, port), why in zip(ports, failures, strict=True))
        return f"nothing at {host} answers as Ray on its default ports ({tried})"
    base = dataclasses.replace(candidate, host=None)
    found = []
    if not gcs_failure:
        found.append(dataclasses.replace(base, gcs_address=join_hostport(host, gcs_port)))
    if not dash_failure:
        found.append(dataclasses.replace(base, dashboard_url=f"http://{join_hostport(host, dash_port)}"))
    return found


def _verify_or_raise(group: list[Candidate], settings: Settings) -> ClusterInfo | str:
    gcs = _first(group, "gcs_address")
    session = _first(group, "session_name")
    seen_running = any(c.gcs_pid for c in group)
    gcs_reading = None
    gcs_auth = False
    if isinstance(gcs, str):
        host, port = split_hostport(gcs)
        failure = tcp_failure(probe_host(host), port, settings.probe_timeout)
        if failure:
            return f"stale: nothing listens at {gcs} ({failure})"
    # Whose it is, before anything is asked of it: other users' clusters are not probed
    # unless they are to be shown (and even then never get our token: see auth.token_for).
    uids = _owner_uids(group, gcs)
    hidden = _hidden(uids, settings)
    if hidden:
        return hidden
    if isinstance(gcs, str):
        if not seen_running:
            # No process here explains this address: ask it whether it is a GCS.
            try:
                gcs_reading = read_gcs(gcs, max(2.0, settings.probe_timeout * 4), with_nodes=False)
                session = session or gcs_reading.session_name
            except AuthRequired:
                gcs_auth = True  # only a GCS refuses a missing token; it is alive
    dashboard, version, auth_required = _find_dashboard(group, gcs_reading, session, settings)
    auth_required = auth_required or gcs_auth
    session = session or (version or {}).get("session_name")
    if not session and not gcs:
        return "no Ray dashboard answered there"
    num_nodes, note, gcs_version = _count_nodes(gcs, dashboard, auth_required, version is None, settings)
    if num_nodes is None and note and note.startswith("token needed"):
        auth_required = True
    ray_version = (
        str((version or {}).get("ray_version") or _first(group, "ray_version") or "")
        or gcs_version
        or (gcs_reading.ray_version if gcs_reading else None)
    )
    if dashboard:
        uids |= holder_at(dashboard).uids
        hidden = _hidden(uids, settings)
        if hidden:
            return hidden
    owner, owner_note = _owner(uids)
    note = notes(owner_note, note, version_note(ray_version))
    return ClusterInfo(
        name=str(session or gcs),
        gcs_address=gcs if isinstance(gcs, str) else None,
        dashboard_url=dashboard,
        ray_version=ray_version or None,
        session_dir=_first(group, "session_dir"),  # type: ignore[arg-type]
        num_nodes=num_nodes,
        auth_required=auth_required,
        sources=tuple(sorted({c.source for c in group})),
        temp_dir=_first(group, "temp_dir"),  # type: ignore[arg-type]
        cluster_id=_first(group, "cluster_id") or (gcs_reading.cluster_id if gcs_reading else None),  # type: ignore[arg-type]
        local_nodes=max((len(c.local_node_ids) for c in group), default=0),
        note=note,
        owner=owner,
    )


def _owner_uids(group: Sequence[Candidate], gcs: object) -> set[int]:
    """Who runs this cluster here: the users of its gcs_server and dashboard processes, and
    of the sockets its GCS address or (without one) its dashboard URL names."""
    uids = {uid for c in group for uid in (process_uid(c.gcs_pid), process_uid(c.dashboard_pid)) if uid is not None}
    where = gcs if isinstance(gcs, str) else _first(group, "dashboard_url")
    if isinstance(where, str):
        uids |= holder_at(where).uids
    return uids


def _owner(uids: set[int]) -> tuple[str | None, str | None]:
    """(the owner to show, a note when its parts belong to several users)."""
    held = Holder(frozenset(uids))
    if len(uids) < 2 or not held.others:
        return held.user, None
    users = ", ".join(user_name(u) for u in sorted(uids))
    return held.user, f"its processes and sockets belong to different users ({users}): taken as not yours"


def _hidden(uids: set[int], settings: Settings) -> str | None:
    """Why a cluster of another user is left out, or None when it is shown."""
    others = Holder(frozenset(uids)).others
    if settings.all_users or not others:
        return None
    return f"another user's cluster ({', '.join(others)}): shown with all_users=True (castray-nb discover --all-users)"


def _dashboard_urls(group: Sequence[Candidate], gcs_reading: object) -> Iterator[tuple[str, bool]]:
    """URLs where this cluster's dashboard may listen, each with whether it is certainly
    this cluster's (a socket its own dashboard process holds), cheapest first: the
    dashboard's ``--port`` answers in a millisecond, while listing its process's sockets
    (where it moved off ``--port``) takes ten, so that is done only when needed."""
    seen: set[str] = set()

    def fresh(url: str) -> bool:
        if url in seen:
            return False
        seen.add(url)
        return True

    for c in group:
        if c.dashboard_url and fresh(c.dashboard_url):
            yield c.dashboard_url, False
        if c.dashboard_pid and c.dashboard_port:
            url = f"http://{join_hostport(probe_host(c.dashboard_host or ''), c.dashboard_port)}"
            if fresh(url):  # a dashboard that cannot move (--port-retries=0) runs on its --port or not at all
                yield url, not c.dashboard_moves
    for c in group:
        if c.dashboard_pid and c.dashboard_moves:  # with --port-retries=0 it is on --port or nowhere
            host = probe_host(c.dashboard_host or "")
            ports = _listening_ports(c.dashboard_pid)
            if ports is None:  # cannot see its sockets: trust its --port flag
                ports = [c.dashboard_port] if c.dashboard_port else []
            for port in ports:
                url = f"http://{join_hostport(host, port)}"
                seen.discard(url)  # asked before without knowing it was ours; now we know
                if fresh(url):
                    yield url, True
    dashboard_address = getattr(gcs_reading, "dashboard_address", None)
    if dashboard_address:
        host, port = split_hostport(dashboard_address)
        url = f"http://{join_hostport(probe_host(host), port)}"
        if fresh(url):
            yield url, False


def _listening_ports(pid: int) -> list[int] | None:
    import psutil

    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    return sorted({c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN})


def _find_dashboard(
    group: Sequence[Candidate], gcs_reading: object, session: object, settings: Settings
) -> tuple[str | None, dict[str, object] | None, bool]:
    """(dashboard URL or None, its /api/version reply, whether it wants a token)."""
    named = {h.lower() for h in map(_host_of, group) if h}
    for url, owned in _dashboard_urls(group, gcs_reading):
        try:
            host = host_of(url) or ""
            if not is_this_machine(host) and host not in named:
                continue  # a host nobody named (what a GCS elsewhere says of its dashboard)
            version = get_json(f"{url}/api/version", settings.probe_timeout)
        except AuthRequired:
            if owned:  # its own process serves it, so it is this cluster's dashboard
                return url, None, True
            continue
        except (ClusterUnreachable, ValueError):
            continue
        if not isinstance(version, dict) or "ray_version" not in version:
            continue
        if session and version.get("session_name") not in (None, session):
            continue  # another cluster's dashboard
        return url, version, find_token() is not None and _wants_token(url, settings)
    return None, None, False


def _wants_token(url: str, settings: Settings) -> bool:
    """Whether the dashboard refuses a request without a token (we may hold the right one)."""
    try:
        get_json(f"{url}/api/version", settings.probe_timeout, send_token=False)
    except AuthRequired:
        return True
    except ClusterUnreachable:
        pass
    return False


def _count_nodes(
    gcs: object, dashboard: str | None, auth_required: bool, version_unread: bool, settings: Settings
) -> tuple[int | None, str | None, str | None]:
    """(ALIVE nodes or None, a note, the cluster's Ray version when its GCS told it)."""
    if dashboard and not (auth_required and version_unread):
        query = "limit=1&filter_keys=state&filter_predicates=%3D&filter_values=ALIVE"
        try:
            reply = get_json(f"{dashboard}/api/v0/nodes?{query}", settings.http_timeout)
            return int(reply["data"]["result"]["num_filtered"]), None, None
        except (CastrayError, KeyError, TypeError, ValueError):
            pass  # fall through to the GCS
    if auth_required and version_unread:
        return None, "a Ray auth token is needed to read its nodes", None
    if isinstance(gcs, str):
        client = ClusterClient(gcs, None, settings.replace(gcs_timeout=max(2.0, settings.probe_timeout * 4)))
        try:
            reading = client.read(cluster="")
        except AuthRequired as exc:
            return None, f"token needed: {exc}", None
        except ClusterUnreachable as exc:
            return None, str(exc), None
        return sum(n.state == "ALIVE" for n in reading.nodes), fallback_note(), reading.ray_version
    return None, "nodes could not be read", None


def _add_hints(clusters: list[ClusterInfo], hints: Sequence[Candidate]) -> list[ClusterInfo]:
    """Session folders of live clusters: they fill in the folder if it was unknown."""
    by_name = {h.session_name: h for h in hints}
    out = []
    for info in clusters:
        hint = by_name.get(info.name)
        if hint:
            info = _replace(
                info,
                session_dir=info.session_dir or hint.session_dir,
                temp_dir=info.temp_dir or hint.temp_dir,
                sources=tuple(sorted({*info.sources, hint.source})),
            )
        out.append(info)
    return out


def _merge_by_session(clusters: list[ClusterInfo]) -> list[ClusterInfo]:
    """One entry per session, e.g. RAY_ADDRESS=http://... and its process-table twin."""
    merged: dict[tuple[str, str | None], ClusterInfo] = {}
    for info in clusters:
        key = (info.name, info.owner)  # another user's process may claim our session name: kept apart
        twin = merged.get(key)
        if twin is None:
            merged[key] = info
            continue
        first, second = (twin, info) if twin.gcs_address else (info, twin)
        merged[key] = _replace(
            first,
            dashboard_url=first.dashboard_url or second.dashboard_url,
            ray_version=first.ray_version or second.ray_version,
            num_nodes=first.num_nodes if first.num_nodes is not None else second.num_nodes,
            sources=tuple(sorted({*first.sources, *second.sources})),
        )
    return list(merged.values())


def _replace(info: ClusterInfo, **changes: object) -> ClusterInfo:
    return dataclasses.replace(info, **changes)  # type: ignore[arg-type]
