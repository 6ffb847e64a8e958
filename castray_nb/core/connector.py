"""From an address to an attached cluster, and the optional driver connection (ray.init)."""

from __future__ import annotations

import logging

from .address import Address, cluster_key, is_this_machine, parse_address
from .client import ClusterClient
from .discovery import ClusterInfo, discover
from .errors import ClusterUnreachable, DriverConflict, InvalidAddress
from .gcs import read_gcs
from .local import initialized_ray
from .settings import Settings


def resolve(address: str | Address, settings: Settings, *, allow_many: bool = False) -> list[ClusterInfo]:
    """Turn what a user typed into verified clusters (one, or several for ``auto``).

    Raises :class:`InvalidAddress`, :class:`ClusterUnreachable` or :class:`AuthRequired`.
    """
    parsed = address if isinstance(address, Address) else parse_address(address)
    if parsed.kind == "client":
        raise InvalidAddress(parsed.text, "ray:// addresses only serve a driver connection (driver=True)")
    if parsed.kind == "auto":
        found = discover(settings)
        if not found:
            raise ClusterUnreachable("no live Ray cluster found on this machine")
        if len(found) > 1 and not allow_many:
            names = ", ".join(c.name for c in found)
            raise ClusterUnreachable(f"{len(found)} clusters found ({names}); name one of them")
        return found
    if parsed.kind == "session":
        for info in discover(settings):
            if info.name == parsed.text:
                return [info]
        raise ClusterUnreachable(f"no live cluster on this machine has session name {parsed.text}")
    if parsed.kind == "gcs":
        return [_resolve_gcs(parsed, settings)]
    return [_resolve_dashboard(parsed, settings)]


def _resolve_gcs(parsed: Address, settings: Settings) -> ClusterInfo:
    if is_this_machine(parsed.host):
        key = cluster_key(parsed.hostport)
        for info in discover(settings):
            if info.gcs_address and cluster_key(info.gcs_address) == key:
                return info
    reading = read_gcs(parsed.hostport, settings.gcs_timeout, with_nodes=False)
    dashboard = None
    ray_version = None
    if reading.dashboard_address:
        url = f"http://{reading.dashboard_address}"
        try:
            version = ClusterClient(None, url, settings).version()
            if version.get("session_name") in (None, reading.session_name):
                dashboard, ray_version = url, str(version.get("ray_version"))
        except ClusterUnreachable:
            pass  # the GCS serves us without it
    return ClusterInfo(
        name=reading.session_name or parsed.hostport,
        gcs_address=parsed.hostport,
        dashboard_url=dashboard,
        ray_version=ray_version,
        session_dir=None,
        num_nodes=None,
        auth_required=False,
        sources=("address",),
        cluster_id=reading.cluster_id,
    )


def _resolve_dashboard(parsed: Address, settings: Settings) -> ClusterInfo:
    version = ClusterClient(None, parsed.url, settings).version()
    session = str(version.get("session_name") or parsed.url)
    if is_this_machine(parsed.host):
        for info in discover(settings):
            if info.name == session:
                return info
    return ClusterInfo(
        name=session,
        gcs_address=None,
        dashboard_url=parsed.url,
        ray_version=str(version.get("ray_version")),
        session_dir=None,
        num_nodes=None,
        auth_required=False,
        sources=("address",),
    )


def driver_address() -> str | None:
    """The GCS address this process is a driver of, or None (never imports Ray)."""
    ray = initialized_ray()
    if ray is None:
        return None
    try:
        return str(ray.get_runtime_context().gcs_address)
    except Exception:
        return "ray client"


def become_driver(target: str) -> None:
    """``ray.init(address=target)``, refusing to switch away from another cluster silently.

    ``target`` is a GCS ``host:port`` or a ``ray://`` URL.
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
    import ray

    try:
        ray.init(address=target, logging_level=logging.WARNING)
    except Exception as exc:
        raise ClusterUnreachable(f"ray.init({target!r}) failed: {str(exc).splitlines()[0][:200]}") from None


def leave_driver() -> bool:
    """``ray.shutdown()`` if this process is a driver; returns whether it was."""
    ray = initialized_ray()
    if ray is None:
        return False
    ray.shutdown()
    return True
