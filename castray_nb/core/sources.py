"""Discovery sources: small independent functions that each yield candidate clusters.

A source takes a :class:`SourceContext` and yields :class:`Candidate` objects. Register
one with :func:`register_source`, or from another package through the entry-point
group ``castray_nb.discovery``::

    [project.entry-points."castray_nb.discovery"]
    my_hosts = "my_pkg.castray:my_hosts_source"

Candidates are claims, not facts: :mod:`castray_nb.core.discovery` verifies them, by
probing the address each names, on this machine or another. A plug-in may name clusters
on other machines; Ray's auth token goes to such a host only when the plug-in says it is
meant for it (``Candidate(..., token_meant=True)``): see the README's "Clusters on other
machines".
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .address import SESSION_NAME, join_hostport, parse_address
from .settings import Settings


@dataclass(frozen=True)
class Candidate:
    """What one source claims about one cluster. Empty fields mean "not known"."""

    source: str
    gcs_address: str | None = None
    session_name: str | None = None
    session_dir: str | None = None
    temp_dir: str | None = None
    dashboard_host: str | None = None
    dashboard_port: int | None = None
    dashboard_pid: int | None = None
    dashboard_moves: bool = True  # may listen elsewhere than --port (ray.init retries ports; ray start does not)
    dashboard_url: str | None = None
    cluster_id: str | None = None
    ray_version: str | None = None
    gcs_pid: int | None = None
    local_node_ids: tuple[str, ...] = ()
    # A host named alone: Ray's default ports are tried there (GCS 6379, dashboard 8265).
    host: str | None = None
    # Whether Ray's auth token may go to this candidate's host when it is another machine.
    # None: as its source decides (the built-in sources are the user's own word: yes; a
    # plug-in: no, unless it says True).
    token_meant: bool | None = None
    # A hint names a cluster that may have existed (a session folder); it adds
    # detail to a live cluster but never makes one by itself.
    hint: bool = False


@dataclass(frozen=True)
class SourceContext:
    settings: Settings
    temp_dirs: tuple[str, ...] = field(default=())


Source = Callable[[SourceContext], Iterable[Candidate]]

_BUILTIN: dict[str, Source] = {}
_plugins: dict[str, Source] | None = None
_plugin_errors: dict[str, str] = {}
_plugins_lock = threading.Lock()


def register_source(name: str) -> Callable[[Source], Source]:
    """Decorator: make ``fn`` a discovery source called ``name``."""

    def add(fn: Source) -> Source:
        _BUILTIN[name] = fn
        return fn

    return add


def registered_sources() -> tuple[dict[str, Source], dict[str, str]]:
    """Built-in and plug-in sources by name, and plug-ins that failed to load (why)."""
    global _plugins
    with _plugins_lock:
        if _plugins is None:
            from importlib.metadata import entry_points

            _plugins = {}
            for entry in entry_points(group="castray_nb.discovery"):
                try:
                    _plugins[entry.name] = entry.load()
                except Exception as exc:  # a broken plug-in must not break discovery
                    _plugin_errors[entry.name] = f"could not load {entry.value}: {exc}"
    return {**_BUILTIN, **_plugins}, dict(_plugin_errors)


def default_temp_dir() -> str:
    """Ray's default temp dir, found as Ray finds it (RAY_TMPDIR, TMPDIR, /tmp)."""
    base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(base, "ray")


# --- the process table -------------------------------------------------------------

_RAY_PROCESS_NAMES = {"gcs_server", "raylet"}


@dataclass(frozen=True)
class _Seen:
    flags: dict[str, str]
    pid: int | None
    exe: str = ""


def _flags(cmdline: Iterable[str]) -> dict[str, str]:
    """``--key=value`` and ``--key value`` pairs; keys with - and _ treated alike."""
    found: dict[str, str] = {}
    args = list(cmdline)
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        key, eq, value = arg[2:].partition("=")
        if not eq and i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
        found.setdefault(key.replace("-", "_"), value)
    return found


def _ray_version_of(executable: str) -> str | None:
    """The version of the Ray installation a binary belongs to (it may not be ours)."""
    for folder in Path(executable).parents:
        if folder.name == "ray" and (folder / "_version.py").is_file():
            try:
                text = (folder / "_version.py").read_text(encoding="utf-8")
            except OSError:
                return None
            for line in text.splitlines():
                if line.startswith("version"):
                    return line.split("=", 1)[1].strip().strip("'\"")
            return None
    return None


def _head_address(head: _Seen, gcs_of_session: dict[str, str]) -> str | None:
    """The GCS address of a gcs_server process. ``ray.init()`` starts it with port 0
    (the OS picks), so then its raylet, its dashboard or its one listening socket says."""
    port = int(head.flags["gcs_server_port"])
    if port:
        return join_hostport(head.flags["node_ip_address"], port)
    known = gcs_of_session.get(head.flags.get("session_name", ""))
    if known:
        return known
    import psutil

    try:
        assert head.pid is not None
        listening = {c.laddr.port for c in psutil.Process(head.pid).net_connections("tcp") if c.status == "LISTEN"}
    except (psutil.Error, OSError, AssertionError):
        return None
    return join_hostport(head.flags["node_ip_address"], listening.pop()) if len(listening) == 1 else None


@register_source("processes")
def process_table(ctx: SourceContext) -> Iterator[Candidate]:
    """Live clusters from the command lines of gcs_server, raylet and dashboard processes.

    A running gcs_server is the surest sign of a live cluster; its dashboard process
    and this machine's raylets add the dashboard and the local nodes.
    """
    import psutil

    heads: list[_Seen] = []
    dashboards: dict[str, _Seen] = {}  # by GCS address and by session dir
    raylets: dict[str, list[str]] = {}  # node ids by GCS address
    gcs_of_session: dict[str, str] = {}  # what raylets and dashboards say the GCS is
    for proc in psutil.process_iter(["name"]):
        name = proc.info["name"] or ""
        if name not in _RAY_PROCESS_NAMES and not name.startswith("python"):
            continue
        try:
            cmdline = proc.cmdline()
        except (psutil.Error, OSError):
            continue
        if name == "gcs_server":
            flags = _flags(cmdline[1:])
            if flags.get("gcs_server_port", "").isdigit() and flags.get("node_ip_address"):
                heads.append(_Seen(flags, proc.pid, cmdline[0]))
        elif name == "raylet":
            flags = _flags(cmdline[1:])
            if flags.get("gcs_address"):
                raylets.setdefault(flags["gcs_address"], []).append(flags.get("node_id", ""))
                if flags.get("session_name"):
                    gcs_of_session[flags["session_name"]] = flags["gcs_address"]
        elif len(cmdline) > 1 and cmdline[1].endswith(os.path.join("dashboard", "dashboard.py")):
            flags = _flags(cmdline[2:])
            if flags.get("gcs_address"):
                seen = _Seen(flags, proc.pid)
                dashboards[flags["gcs_address"]] = seen
                if flags.get("session_dir"):
                    dashboards[flags["session_dir"]] = seen
                    gcs_of_session[os.path.basename(flags["session_dir"])] = flags["gcs_address"]
    addresses = []
    for head in heads:
        address = _head_address(head, gcs_of_session)
        if address is None:
            continue
        addresses.append(address)
        dash = dashboards.get(address) or dashboards.get(head.flags.get("session_dir", "")) or _Seen({}, None)
        port = dash.flags.get("port", "")
        yield Candidate(
            source="processes",
            gcs_address=address,
            session_name=head.flags.get("session_name"),
            session_dir=head.flags.get("session_dir") or dash.flags.get("session_dir"),
            temp_dir=dash.flags.get("temp_dir"),
            dashboard_host=dash.flags.get("host"),
            dashboard_port=int(port) if port.isdigit() else None,
            dashboard_pid=dash.pid,
            dashboard_moves=dash.flags.get("port_retries", "") != "0",
            cluster_id=dash.flags.get("cluster_id_hex"),
            ray_version=_ray_version_of(head.exe),
            gcs_pid=head.pid,
            local_node_ids=tuple(raylets.get(address, ())),
        )
    for address, node_ids in raylets.items():
        if address not in addresses:  # a node here of a cluster whose head is elsewhere
            yield Candidate(source="processes", gcs_address=address, local_node_ids=tuple(node_ids))


# --- files Ray leaves behind ---------------------------------------------------------


@register_source("current_cluster")
def current_cluster_files(ctx: SourceContext) -> Iterator[Candidate]:
    """``<temp_dir>/ray_current_cluster``: the newest GCS address of each temp dir. May be stale."""
    for temp_dir in ctx.temp_dirs:
        path = Path(temp_dir) / "ray_current_cluster"
        try:
            if not path.is_file():
                continue
            text = path.read_bytes()[:512].decode("utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        address = text.splitlines()[0].strip() if text else ""
        if address.count(":") >= 1 and address.rpartition(":")[2].isdigit():
            yield Candidate(source="current_cluster", gcs_address=address, temp_dir=temp_dir)


@register_source("session_dirs")
def session_dirs(ctx: SourceContext) -> Iterator[Candidate]:
    """``<temp_dir>/session_*`` folders: hints only, since dead clusters leave them behind."""
    for temp_dir in ctx.temp_dirs:
        try:
            entries = os.scandir(temp_dir)
        except OSError:
            continue
        with entries:
            for entry in entries:
                if SESSION_NAME.match(entry.name) and entry.is_dir(follow_symlinks=False):
                    yield Candidate(
                        source="session_dirs",
                        session_name=entry.name,
                        session_dir=entry.path,
                        temp_dir=temp_dir,
                        hint=True,
                    )


def _candidate_from_text(source: str, text: str) -> Candidate | None:
    """A candidate from an address someone wrote down: a dashboard URL or ``host:port``."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        return Candidate(source=source, dashboard_url=text.rstrip("/"))
    if "://" not in text and text.rpartition(":")[2].isdigit():
        return Candidate(source=source, gcs_address=text)
    return None


@register_source("env")
def ray_address_env(ctx: SourceContext) -> Iterator[Candidate]:
    """``RAY_ADDRESS``, when it holds a GCS address or a dashboard URL."""
    candidate = _candidate_from_text("env", os.environ.get("RAY_ADDRESS", ""))
    if candidate:
        yield candidate


@register_source("config")
def configured_addresses(ctx: SourceContext) -> Iterator[Candidate]:
    """Addresses listed in the settings' ``attach`` key."""
    for text in ctx.settings.attach:
        candidate = _candidate_from_text("config", text)
        if candidate:
            yield candidate


@register_source("hosts")
def listed_hosts(ctx: SourceContext) -> Iterator[Candidate]:
    """The machines of the ``hosts`` setting: a host alone (Ray's default ports), a GCS
    ``host:port``, or a dashboard URL. Only these are probed: never a range, never a scan."""
    for text in ctx.settings.hosts:
        address = parse_address(text)  # checked when the settings were read
        if address.kind == "host":
            yield Candidate(source="hosts", host=address.host)
        elif address.kind == "gcs":
            yield Candidate(source="hosts", gcs_address=address.hostport)
        elif address.kind == "dashboard":
            yield Candidate(source="hosts", dashboard_url=address.url)


RECENT_PROBED = 32  # the most recently seen recent attachments that discovery probes again


@register_source("recent")
def recent_attachments(ctx: SourceContext) -> Iterator[Candidate]:
    """The clusters the user attached most recently (the user's store: :class:`.store.Recent`),
    at most :data:`RECENT_PROBED`, so that a long history of dead hosts never slows discovery."""
    from .store import Recent

    for entry in Recent().entries()[:RECENT_PROBED]:
        candidate = _candidate_from_text("recent", entry.address)
        if candidate:
            yield dataclasses.replace(candidate, token_meant=entry.token)


# castray_nb's own sources; any other (an entry point, or one registered in a program) is a plug-in.
OWN_SOURCES = frozenset(_BUILTIN)
# Those whose claims about other machines discovery does not probe: Ray's traces here (a
# raylet of a head elsewhere, a ray_current_cluster file, which another user may plant) and
# addresses meant for attaching (RAY_ADDRESS, the attach setting: connect() reaches those).
# Another machine is probed only when the hosts setting lists it, a plug-in names it, or it
# was attached before (recent).
THIS_MACHINE_SOURCES = frozenset({"processes", "current_cluster", "session_dirs", "env", "config"})
