"""From an address to an attached cluster, and the optional driver connection (ray.init)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
from collections.abc import Callable, Sequence

from .address import DEFAULT_PORTS, Address, cluster_key, is_this_machine, join_hostport, parse_address
from .auth import Token, find_token
from .client import ClusterClient
from .discovery import ClusterInfo, discover
from .errors import AmbiguousAddress, AuthRequired, CastrayError, ClusterUnreachable, DriverConflict, InvalidAddress
from .gcs import notes, read_gcs, tcp_failure, version_note
from .local import initialized_ray
from .owners import holder_at
from .settings import Settings

Discover = Callable[[Settings], Sequence[ClusterInfo]]


def resolve(
    address: str | Address, settings: Settings, *, discover: Discover = discover, token: Token | None = None
) -> ClusterInfo:
    """Turn what a user typed into one verified cluster.

    ``auto`` means this user's only live cluster on this machine; with several it raises
    :class:`AmbiguousAddress` naming them (attaching them all is ``discover(connect=True)``).
    Other users' clusters never count for ``auto``; an address or session name names one on
    purpose. ``discover`` is the discovery to consult for ``auto``, session names and local
    addresses (a session passes its own). ``token`` is sent on purpose (else see
    :func:`.auth.token_for`). Raises :class:`InvalidAddress`, :class:`AmbiguousAddress`,
    :class:`ClusterUnreachable` or :class:`AuthRequired`.
    """
    parsed = address if isinstance(address, Address) else parse_address(address)
    if parsed.kind == "client":
        raise InvalidAddress(parsed.text, "ray:// addresses only serve a driver connection (driver=True)")
    info = _resolve(parsed, settings, discover, token)
    if info.other_user and info.auth_required and token is None:
        raise AuthRequired(
            f"{info.name} ({info.gcs_address or info.dashboard_url}) belongs to user {info.owner} and requires a "
            "Ray auth token: castray_nb sends your Ray token only to your own processes. To send one on purpose, "
            "pass token= to connect() (or --token-file on the command line)"
        )
    return info


def _resolve(parsed: Address, settings: Settings, discover: Discover, token: Token | None) -> ClusterInfo:
    named = settings.replace(all_users=True)  # a session name or an address names a cluster on purpose
    if parsed.kind == "auto":
        found = [c for c in discover(settings) if not c.other_user]
        if not found:
            raise ClusterUnreachable("auto: no live Ray cluster found on this machine")
        if len(found) > 1:
            names = ", ".join(f"{c.name} ({c.gcs_address or c.dashboard_url})" for c in found)
            raise AmbiguousAddress(
                f"auto: {len(found)} live clusters on this machine ({names}); give one address or session name, "
                "or attach them all with discover --connect"
            )
        return found[0]
    if parsed.kind == "session":
        by_name = [info for info in discover(named) if info.name == parsed.text]
        for info in sorted(by_name, key=lambda c: c.other_user):  # ours first, where another user claims its name
            return info
        raise ClusterUnreachable(f"no live cluster on this machine has session name {parsed.text}")
    if not settings.remote and not is_this_machine(parsed.host):
        raise InvalidAddress(
            parsed.text, "not on this machine, and remote addresses are off (CASTRAY_REMOTE)", refused=True
        )
    if parsed.kind == "host":
        return _resolve_host(parsed, settings, discover, token)
    if parsed.kind == "gcs":
        return _resolve_gcs(parsed, settings, discover, token)
    return _resolve_dashboard(parsed, settings, discover, token)


def _resolve_host(parsed: Address, settings: Settings, discover: Discover, token: Token | None) -> ClusterInfo:
    """A host given alone: try Ray's default ports at once, verify what answers, attach it.

    The GCS (6379) and the dashboard (8265) are read; the Ray Client port (10001) serves
    only drivers, so it is reported, never read. When GCS and dashboard both answer but
    belong to different clusters, the GCS's cluster wins and the note says so.
    """
    host = parsed.host
    (gcs_name, gcs_port), (dash_name, dash_port), (client_name, client_port) = DEFAULT_PORTS

    def gcs() -> ClusterInfo:
        hostport = join_hostport(host, gcs_port)
        return _resolve_gcs(Address("gcs", hostport, host, gcs_port), settings, discover, token)

    def dashboard() -> ClusterInfo:
        hostport = join_hostport(host, dash_port)
        return _resolve_dashboard(
            Address("dashboard", f"http://{hostport}", host, dash_port, "http"), settings, discover, token
        )

    def opened(port: int) -> str | None:
        return tcp_failure(host, port, settings.probe_timeout)

    tried: dict[str, str] = {}
    found: dict[str, ClusterInfo] = {}
    with concurrent.futures.ThreadPoolExecutor(3, thread_name_prefix="castray-host") as pool:
        closed = dict(zip(DEFAULT_PORTS, pool.map(opened, (p for _, p in DEFAULT_PORTS)), strict=True))
        checks = {
            label: pool.submit(check)
            for label, check in (((gcs_name, gcs_port), gcs), ((dash_name, dash_port), dashboard))
            if closed[label] is None
        }
        for (name, port), failure in closed.items():
            if failure is not None:
                tried[f"{name} {port}"] = failure
        for (name, port), future in checks.items():
            try:
                found[name] = future.result()
            except AuthRequired:
                raise
            except CastrayError as exc:
                tried[f"{name} {port}"] = str(exc)
    if closed[(client_name, client_port)] is None:
        tried[f"{client_name} {client_port}"] = "accepts connections (serves drivers only: ray:// with driver=True)"
    by_gcs, by_dashboard = found.get(gcs_name), found.get(dash_name)
    if by_gcs and by_dashboard and by_dashboard.name != by_gcs.name:
        note = f"the dashboard at port {dash_port} belongs to another cluster ({by_dashboard.name})"
        return dataclasses.replace(by_gcs, note=note)
    if by_gcs:
        if by_dashboard and not by_gcs.dashboard_url:
            return dataclasses.replace(by_gcs, dashboard_url=by_dashboard.dashboard_url)
        return by_gcs
    if by_dashboard:
        return by_dashboard
    what = "; ".join(f"{label}: {why}" for label, why in tried.items())
    raise ClusterUnreachable(f"nothing at {host} answers as Ray on its default ports ({what})")


def _resolve_gcs(parsed: Address, settings: Settings, discover: Discover, token: Token | None) -> ClusterInfo:
    if is_this_machine(parsed.host):
        key = cluster_key(parsed.hostport)
        for info in discover(settings.replace(all_users=True)):
            if info.gcs_address and cluster_key(info.gcs_address) == key:
                return info
    reading = read_gcs(parsed.hostport, settings.gcs_timeout, with_nodes=False, token=token)
    dashboard = None
    ray_version = None
    if reading.dashboard_address:
        url = f"http://{reading.dashboard_address}"
        try:
            version = ClusterClient(None, url, settings, token=token).version()
            if version.get("session_name") in (None, reading.session_name):
                dashboard, ray_version = url, str(version.get("ray_version"))
        except ClusterUnreachable:
            pass  # the GCS serves us without it
    ray_version = ray_version or reading.ray_version
    return ClusterInfo(
        name=reading.session_name or parsed.hostport,
        gcs_address=parsed.hostport,
        dashboard_url=dashboard,
        ray_version=ray_version,
        session_dir=None,
        num_nodes=None,
        auth_required=False,
        sources=_sources(parsed.host, settings),
        cluster_id=reading.cluster_id,
        note=notes(reading.note, version_note(ray_version)),
        owner=holder_at(parsed.hostport).user,
    )


def _resolve_dashboard(parsed: Address, settings: Settings, discover: Discover, token: Token | None) -> ClusterInfo:
    version = ClusterClient(None, parsed.url, settings, token=token).version()
    session = str(version.get("session_name") or parsed.url)
    owner = holder_at(parsed.hostport).user
    if is_this_machine(parsed.host):
        for info in discover(settings.replace(all_users=True)):
            if info.name == session and info.owner == owner:  # another user's process may claim that name
                return info
    return ClusterInfo(
        name=session,
        gcs_address=None,
        dashboard_url=parsed.url,
        ray_version=str(version.get("ray_version")),
        session_dir=None,
        num_nodes=None,
        auth_required=False,
        sources=_sources(parsed.host, settings),
        owner=owner,
    )


def _sources(host: str, settings: Settings) -> tuple[str, ...]:
    """How a cluster reached by its address was named: ``hosts`` when that host is one of
    the ``hosts`` setting's (attached from the sidebar's discovered list, say), else ``address``."""
    listed = {parse_address(entry).host.lower() for entry in settings.hosts}
    return ("hosts",) if host.lower() in listed and not is_this_machine(host) else ("address",)


def driver_address() -> str | None:
    """The GCS address this process is a driver of, or None (never imports Ray)."""
    ray = initialized_ray()
    if ray is None:
        return None
    try:
        return str(ray.get_runtime_context().gcs_address)
    except Exception:
        return "ray client"


def become_driver(target: str, *, token: Token | None = None) -> None:
    """``ray.init(address=target)``, refusing to switch away from another cluster silently.

    ``target`` is a GCS ``host:port`` or a ``ray://`` URL. Ray sends its own token (its
    sources) to whatever it joins, so another user's cluster on this machine is not joined
    while this process has one.
    """
    current = driver_address()
    if current is not None:
        same = current == target or (
            "://" not in target and current != "ray client" and cluster_key(current) == cluster_key(target)
        )
        if same:
            return
        raise DriverConflict(
            f"this process is already the Ray driver of {current}; "
            "disconnect it first (castray_nb.disconnect(driver=True) or ray.shutdown())"
        )
    _refuse_to_send_token(target, token)
    import ray

    try:
        ray.init(address=target, logging_level=logging.WARNING)
    except Exception as exc:
        raise ClusterUnreachable(f"ray.init({target!r}) failed: {str(exc).splitlines()[0][:200]}") from None


def _refuse_to_send_token(target: str, token: Token | None) -> None:
    owner = holder_at(target)
    held = token or find_token()
    if owner.uids and not owner.own and held is not None:
        raise AuthRequired(
            f"{target} belongs to user {owner.user}: ray.init would send it the Ray token of this process "
            f"({held.source}), so castray_nb does not join it as a driver; attach it read-only (without driver=True)"
        )


def leave_driver() -> bool:
    """``ray.shutdown()`` if this process is a driver; returns whether it was."""
    ray = initialized_ray()
    if ray is None:
        return False
    ray.shutdown()
    return True
