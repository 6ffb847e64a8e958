"""Reading a cluster through its GCS.

Used when a cluster has no dashboard (``--include-dashboard=false``, or plain ``ray``
without ``ray[default]``), when its dashboard died, and to verify addresses no process on
this machine explains. Read over gRPC with the protobuf modules Ray ships, without
importing the ``ray`` package (:mod:`.gcs_grpc`): every call has a deadline, so a read
ends on time and leaves no thread behind. Only where those modules cannot be loaded does
it fall back to Ray's own client (which imports Ray), and the reading's note says so.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from . import gcs_grpc
from .address import probe_host, split_hostport
from .auth import TOKEN_SOURCES, Grant, Token, find_token, token_for
from .errors import AuthRequired, ClusterTimeout, ClusterUnreachable

_token_mode_lock = threading.Lock()


@dataclass(frozen=True)
class GcsReading:
    session_name: str | None
    cluster_id: str | None
    dashboard_address: str | None  # what the dashboard wrote into the GCS; unverified
    nodes: list[dict[str, Any]] = field(default_factory=list)
    ray_version: str | None = None  # the cluster's, from its CLUSTER_METADATA
    note: str | None = None  # how it was read, when that is worth saying (see fallback_note)


def tcp_open(hostport: str, timeout: float) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    host, port = split_hostport(hostport)
    return tcp_failure(probe_host(host), port, timeout) is None


def tcp_failure(host: str, port: int, timeout: float) -> str | None:
    """None when ``host:port`` accepts TCP connections, else why not, in a few words."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return "unknown host"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        return "connection refused"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def read_gcs(address: str, timeout: float, *, with_nodes: bool = True, token: Token | None = None) -> GcsReading:
    """Read session name, cluster id, dashboard address, the cluster's Ray version and
    (optionally) nodes from a GCS, within ``timeout`` seconds per call.

    Raises :class:`ClusterUnreachable` (:class:`ClusterTimeout` for a silent one) when
    nothing answers as a GCS, and :class:`AuthRequired` when it wants a token we lack or
    refuses ours.
    """
    if not tcp_open(address, min(timeout, 1.0)):
        raise ClusterUnreachable(f"no GCS answers at {address} (connection refused or timed out)")
    modules = gcs_grpc.generated()
    if modules is None:
        return dataclasses.replace(_read_with_rays_client(address, timeout, with_nodes), note=fallback_note())
    raw = gcs_grpc.read(modules, address, timeout, with_nodes=with_nodes, token=token)
    return GcsReading(raw.session_name, raw.cluster_id, raw.dashboard_address, raw.nodes, raw.ray_version)


def fallback_note() -> str | None:
    """What every GCS reading says while Ray's own client stands in for ours, else None."""
    if gcs_grpc.generated() is not None:
        return None
    why = gcs_grpc.load_failure() or "unknown"
    return f"read with Ray's own client: its protobuf modules could not be loaded alone ({why})"


def version_note(cluster: str | None) -> str | None:
    """A note when a cluster runs another Ray than the one installed here (Ray supports
    a client and a cluster of the same version only)."""
    client = gcs_grpc.installed_ray_version()
    if not cluster or not client or cluster == client:
        return None
    return f"the cluster runs Ray {cluster}, this environment has Ray {client}: Ray supports the same version only"


def notes(*parts: str | None) -> str | None:
    """The notes that were said, as one line (None when there are none)."""
    return "; ".join(p for p in parts if p) or None


def _read_with_rays_client(address: str, timeout: float, with_nodes: bool) -> GcsReading:
    """The fallback: Ray's own GcsClient, in a daemon thread of its own (it blocks ~40 s
    where nothing answers and cannot be interrupted). Imports Ray."""
    # Importing Ray takes 0.7-3 s the first time in a process (more on a busy machine);
    # that is not the GCS being slow, so it happens before the deadline starts.
    import ray._raylet  # noqa: F401

    future: concurrent.futures.Future[GcsReading] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(_read(address, timeout, with_nodes))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="castray-gcs-read", daemon=True).start()
    try:
        return future.result(timeout=timeout + 0.5)
    except concurrent.futures.TimeoutError:
        raise ClusterTimeout(f"{address} accepts connections but no GCS answered within {timeout:g} s") from None


def _read(address: str, timeout: float, with_nodes: bool) -> GcsReading:
    import ray.exceptions
    from ray._raylet import GcsClient  # type: ignore[attr-defined]
    from ray.exceptions import RpcError

    # Rays before token auth (2.40) have no AuthenticationError: nothing then raises it.
    AuthenticationError = getattr(ray.exceptions, "AuthenticationError", _NeverRaised)  # noqa: N806

    # Ray's client sends the token of this process's token mode to every GCS: to another
    # user's it must not go, so it is not read with that mode on, and never turns it on.
    host, port = split_hostport(address)
    grant: Grant = token_for(host, port)
    refusal = grant.refusal(f"the GCS at {address}")
    if refusal and rays_token_mode_on():
        raise AuthRequired(refusal)
    try:
        return _read_with(GcsClient, address, timeout, with_nodes)
    except AuthenticationError:
        if refusal:
            raise AuthRequired(refusal) from None
        if not _enable_token_mode():
            raise AuthRequired(
                f"the GCS at {address} requires a Ray auth token; none found (looked in {TOKEN_SOURCES})"
            ) from None
    except RpcError as exc:
        raise ClusterUnreachable(f"no GCS answers at {address} ({_first_line(exc)})") from None
    try:
        return _read_with(GcsClient, address, timeout, with_nodes)
    except AuthenticationError:
        token = find_token()
        source = token.source if token else "no token"
        raise AuthRequired(f"the GCS at {address} rejected the Ray auth token from {source}") from None
    except RpcError as exc:
        raise ClusterUnreachable(f"no GCS answers at {address} ({_first_line(exc)})") from None


class _NeverRaised(Exception):
    """Stands in for an exception class the installed Ray does not have."""


def _read_with(client_type: Any, address: str, timeout: float, with_nodes: bool) -> GcsReading:
    client = client_type(address=address)
    session = client.internal_kv_get(b"session_name", namespace=b"session", timeout=timeout)
    dashboard = client.internal_kv_get(b"dashboard", namespace=b"dashboard", timeout=timeout)
    nodes = []
    if with_nodes:
        nodes = [gcs_grpc.node_dict(info) for info in client.get_all_node_info(timeout=timeout).values()]
    return GcsReading(
        session_name=session.decode() if session else None,
        cluster_id=client.cluster_id.hex() if client.cluster_id else None,
        dashboard_address=dashboard.decode() if dashboard else None,
        nodes=nodes,
    )


def rays_token_mode_on() -> bool:
    """Whether Ray's own clients in this process add the token to every request they make
    (token mode, turned on by ``RAY_AUTH_MODE=token``, ``ray.init`` or :func:`_enable_token_mode`).
    Rays before token auth have no such mode."""
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:
        return False
    return bool(is_token_auth_enabled())


def _enable_token_mode() -> bool:
    """Switch this process to token mode the way ``ray.init`` does when a token exists.

    Ray's GCS client only sends a token in token mode, and the mode is per process.
    """
    if find_token() is None:
        return False
    from ray._private.authentication import authentication_token_setup as setup

    with _token_mode_lock:
        quiet = logging.getLogger(setup.__name__)
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            return bool(setup.maybe_enable_token_auth_if_token_available(warn_if_disabled=False))
        finally:
            quiet.setLevel(level)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]
