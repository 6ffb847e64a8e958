"""The public functions, over one default session per process."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from .core.address import parse_address
from .core.connector import become_driver, driver_address, leave_driver, resolve
from .core.discovery import ClusterInfo
from .core.errors import CastrayError, InvalidAddress
from .core.session import ClusterState, Session, checked_name

if TYPE_CHECKING:
    import pandas as pd

_default: Session | None = None
_default_lock = threading.Lock()


def session() -> Session:
    """The process-wide session that the functions below, the magics and the panel share."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Session()
            for address in _default.settings.attach:  # CASTRAY_ATTACH / "attach" setting
                try:
                    for info in resolve(address, _default.settings, allow_many=True):
                        _default.attach(info, refresh=False)
                except CastrayError as exc:
                    logging.getLogger(__name__).warning("could not attach %s on start: %s", address, exc)
        return _default


def discover(*, connect: bool = False) -> list[ClusterInfo]:
    """Every live Ray cluster on this machine; with ``connect=True`` attach them all.

    >>> import castray_nb
    >>> [c.name for c in castray_nb.discover()]     # doctest: +SKIP
    ['session_2026-11-28_10-00-00_123456_4242']
    """
    s = session()
    found = s.discover()
    if connect:
        for info in found:
            s.attach(info, refresh=False)
        s.refresh()
    return found


def connect(address: str = "auto", *, name: str | None = None, driver: bool = False) -> ClusterState:
    """Attach a cluster read-only (and, with ``driver=True``, also ``ray.init`` to it).

    ``address``: ``host:port`` (GCS), ``http(s)://host:port`` (dashboard), ``ray://host:port``
    (driver only), a discovered session name, or ``auto`` (the only live cluster here).

    >>> castray_nb.connect("127.0.0.1:6379", name="lab")    # doctest: +SKIP
    """
    s = session()
    parsed = parse_address(address)
    if name is not None:
        name = checked_name(name)
    if parsed.kind == "client":
        if not driver:
            raise InvalidAddress(address, "ray:// addresses only serve a driver connection (driver=True)")
        become_driver(parsed.url)
        s.refresh()
        return _driver_state(s, parsed.url)
    (info,) = resolve(parsed, s.settings)
    if driver:
        if not info.gcs_address:
            raise CastrayError(f"{info.name}: no GCS address known, so it cannot be joined as a driver")
        become_driver(info.gcs_address)
    return s.attach(info, name)


def _driver_state(s: Session, url: str) -> ClusterState:
    rows = s.rows(source="local")
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
    alive = sum(r.state == "ALIVE" for r in rows)
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
        alive_nodes=alive,
    )


def disconnect(name: str | None = None, *, all: bool = False, driver: bool = False) -> list[str]:
    """Detach one cluster by name, or all of them; ``driver=True`` also ends ``ray.init``.

    Returns the names detached.
    """
    s = session()
    if name is None and not all and not driver:
        raise CastrayError("say which cluster to disconnect: a name, all=True, or driver=True")
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


def clusters() -> list[ClusterState]:
    """The attached clusters as of their last refresh."""
    return session().clusters()


def nodes(*, source: str | None = None, alive_only: bool = False, refresh: bool = True) -> pd.DataFrame:
    """The merged node table (local and external) as a DataFrame, refreshed first by default.

    >>> castray_nb.nodes(source="external", alive_only=True)   # doctest: +SKIP
    """
    if source not in (None, "local", "external"):
        raise CastrayError("source must be 'local', 'external' or None")
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
