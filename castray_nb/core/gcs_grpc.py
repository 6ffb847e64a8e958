"""A cluster's GCS over gRPC, with the protobuf modules the installed Ray ships, without
importing the ``ray`` package.

``import ray`` costs 0.7-3.6 s (more where JupyterLab's jsonschema grammar is installed);
Ray's own ``GcsClient`` blocks ~40 s on a silent address and cannot be interrupted. The
generated modules under ``ray/core/generated`` need only ``grpcio`` and ``protobuf``: they
are loaded from that folder under a private package name (``ray/__init__.py`` never
runs), and every call carries a real gRPC deadline, so a read ends on time and leaves no
thread behind. The protobuf descriptors they register are the ones Ray registers itself,
so a later ``import ray`` and ``ray.init()`` in the same process work as usual.

Ray supports a client and a cluster of the same version only: the cluster's version is
read too (its ``CLUSTER_METADATA``), and a mismatch is reported, not hidden.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .address import split_hostport
from .auth import TOKEN_SOURCES, Grant, Token, token_for
from .errors import AuthRequired, ClusterTimeout, ClusterUnreachable

_PACKAGE = "_castray_nb_ray_generated"
_lock = threading.Lock()
_loaded: Modules | None = None
_failure: str | None = None


@dataclass(frozen=True)
class Modules:
    """Ray's generated modules, loaded without Ray."""

    service: Any  # gcs_service_pb2: request and reply messages
    stubs: Any  # gcs_service_pb2_grpc: the client stubs


def generated() -> Modules | None:
    """Ray's generated GCS modules, loaded once; None when they cannot be (see :func:`load_failure`)."""
    global _loaded, _failure
    with _lock:
        if _loaded is None and _failure is None:
            try:
                _loaded = _load()
            except Exception as exc:  # any way the installed Ray differs from what we know
                _failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        return _loaded


def load_failure() -> str | None:
    """Why Ray's generated modules could not be loaded, or None."""
    return _failure


def _load() -> Modules:
    spec = importlib.util.find_spec("ray")  # finds the package; does not run ray/__init__.py
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the ray package is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    folder = root / "core" / "generated"
    if not (folder / "gcs_service_pb2_grpc.py").is_file():
        raise ImportError(f"{folder} has no gcs_service_pb2_grpc.py")
    package = types.ModuleType(_PACKAGE)
    package.__path__ = [str(folder)]  # the modules import each other relatively ("from . import gcs_pb2")
    package.__package__ = _PACKAGE
    sys.modules.setdefault(_PACKAGE, package)
    service = importlib.import_module(f"{_PACKAGE}.gcs_service_pb2")
    stubs = importlib.import_module(f"{_PACKAGE}.gcs_service_pb2_grpc")
    return Modules(service, stubs)


@functools.lru_cache(maxsize=1)
def installed_ray_version() -> str | None:
    """The version of the Ray installed here, from its package metadata (no import)."""
    from importlib import metadata

    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class RawGcs:
    """What one gRPC read of a GCS returned (nodes in the State API's shape)."""

    session_name: str | None
    cluster_id: str | None
    dashboard_address: str | None
    ray_version: str | None
    nodes: list[dict[str, Any]]


def read(
    modules: Modules, address: str, timeout: float, *, with_nodes: bool = True, token: Token | None = None
) -> RawGcs:
    """Read one GCS over gRPC, every call under ``timeout`` seconds, with ``token``, else
    Ray's own where :func:`.auth.token_for` allows it. Raises :class:`ClusterTimeout`,
    :class:`ClusterUnreachable` or :class:`AuthRequired` (missing and wrong token told apart)."""
    import grpc

    host, port = split_hostport(address)
    grant = token_for(host, port, token)
    token = grant.token
    metadata = (("authorization", f"Bearer {token.value}"),) if token else ()
    # One channel a read: it ends with the read, so nothing lingers (no reconnect threads).
    channel = grpc.insecure_channel(
        address, options=[("grpc.enable_retries", 0), ("grpc.max_receive_message_length", 512 * 1024 * 1024)]
    )
    try:
        pb = modules.service
        kv = modules.stubs.InternalKVGcsServiceStub(channel)
        node_info = modules.stubs.NodeInfoGcsServiceStub(channel)

        # Every call goes out at once on the one channel: a read costs one round trip.
        calls = {
            "session": kv.InternalKVGet.future(pb.InternalKVGetRequest(namespace=b"session", key=b"session_name"),
                                               timeout=timeout, metadata=metadata),
            "dashboard": kv.InternalKVGet.future(pb.InternalKVGetRequest(namespace=b"dashboard", key=b"dashboard"),
                                                 timeout=timeout, metadata=metadata),
            "metadata": kv.InternalKVGet.future(pb.InternalKVGetRequest(namespace=b"cluster", key=b"CLUSTER_METADATA"),
                                                timeout=timeout, metadata=metadata),
            "cluster_id": node_info.GetClusterId.future(pb.GetClusterIdRequest(), timeout=timeout, metadata=metadata),
        }  # fmt: skip
        if with_nodes:
            calls["nodes"] = node_info.GetAllNodeInfo.future(
                pb.GetAllNodeInfoRequest(), timeout=timeout, metadata=metadata
            )
        replies = {}
        for name, future in calls.items():
            try:
                replies[name] = future.result()
            except grpc.RpcError as exc:
                raise _error(exc, address, timeout, grant) from None

        def kv_value(name: str) -> bytes | None:
            reply = replies[name]
            return bytes(reply.value) if reply.status.code == 0 and reply.value else None

        session, dashboard = kv_value("session"), kv_value("dashboard")
        cluster_id = replies["cluster_id"].cluster_id
        version = _metadata_version(kv_value("metadata"))
        nodes = [node_dict(info) for info in replies["nodes"].node_info_list] if with_nodes else []
        return RawGcs(
            session_name=session.decode(errors="replace") if session else None,
            cluster_id=bytes(cluster_id).hex() if cluster_id else None,
            dashboard_address=dashboard.decode(errors="replace") if dashboard else None,
            ray_version=version,
            nodes=nodes,
        )
    finally:
        channel.close()


def _metadata_version(raw: bytes | None) -> str | None:
    try:
        value = json.loads(raw or b"{}").get("ray_version")
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


def _error(exc: Any, address: str, timeout: float, grant: Grant) -> Exception:
    import grpc

    token = grant.token
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = (exc.details() if callable(getattr(exc, "details", None)) else "") or ""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        refusal = grant.refusal(f"the GCS at {address}")
        if refusal:
            return AuthRequired(refusal)
        if token is None:
            return AuthRequired(
                f"the GCS at {address} requires a Ray auth token; none found (looked in {TOKEN_SOURCES})"
            )
        return AuthRequired(f"the GCS at {address} rejected the Ray auth token from {token.source}: wrong token")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ClusterTimeout(f"{address} accepts connections but no GCS answered within {timeout:g} s")
    first = details.splitlines()[0][:160] if details else (code.name if code else type(exc).__name__)
    return ClusterUnreachable(f"no GCS answers at {address} ({first})")


def node_dict(info: Any) -> dict[str, Any]:
    """A GcsNodeInfo message (ours, or Ray's GcsClient's) in the State API's shape, so one
    parser serves both."""
    return {
        "node_id": bytes(info.node_id).hex(),
        "node_ip": info.node_manager_address,
        "is_head_node": info.is_head_node,
        "state": "ALIVE" if info.state == 0 else "DEAD",
        "state_message": info.death_info.reason_message or None,
        "node_name": info.node_name,
        "hostname": info.node_manager_hostname,
        "resources_total": dict(info.resources_total),
        "labels": dict(info.labels),
        "start_time_ms": info.start_time_ms,
        "end_time_ms": info.end_time_ms,
    }
