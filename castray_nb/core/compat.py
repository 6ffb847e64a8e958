"""CastRay's names, kept for its users, as thin layers over discovery and the session.

Unlike CastRay's originals these never call ``ray.init``: attaching is read-only, so
several clusters can be watched at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .discovery import ClusterInfo, discover
from .errors import CastrayError
from .session import Session


def _castray_dict(info: ClusterInfo) -> dict[str, Any]:
    data = info.to_json()
    data.update(nodes=info.num_nodes, status="active", source=",".join(info.sources))
    return data


class RayClusterDiscovery:
    """CastRay's discoverer. ``scan_local_ray_clusters()`` returns one dict per live cluster."""

    def __init__(self, session: Session | None = None) -> None:
        self._session = session

    def scan_local_ray_clusters(self) -> list[dict[str, Any]]:
        settings = self._session.settings if self._session else None
        return [_castray_dict(info) for info in discover(settings)]


class RayClusterConnector:
    """CastRay's connector: attach clusters and list their nodes, keyed by node id."""

    def __init__(self, session: Session | None = None) -> None:
        self.session = session or Session()
        self.last_error: str | None = None

    def connect_to_external_cluster(self, cluster: Mapping[str, Any] | str) -> bool:
        """Attach a cluster given as a dict from ``scan_local_ray_clusters()`` or an address.

        Returns False (and sets ``last_error``) when it cannot be attached.
        """
        address = cluster if isinstance(cluster, str) else (cluster.get("gcs_address") or cluster.get("dashboard_url"))
        try:
            if not address:
                raise CastrayError("the cluster has neither gcs_address nor dashboard_url")
            self.session.connect(str(address))
        except CastrayError as exc:
            self.last_error = str(exc)
            return False
        self.last_error = None
        return True

    def get_external_nodes(self) -> dict[str, dict[str, Any]]:
        self.session.refresh()
        return {r.node_id: {**r.__dict__, "is_external": True} for r in self.session.rows(source="external")}

    def is_connected_to_external_cluster(self) -> bool:
        return any(c.reachable for c in self.session.clusters())


def discover_and_connect_external_clusters(session: Session | None = None) -> dict[str, Any]:
    """Discover every live cluster and attach them all; CastRay's result dict."""
    connector = RayClusterConnector(session)
    result: dict[str, Any] = {
        "discovered_clusters": [],
        "connected_cluster": None,
        "connected_clusters": [],
        "external_nodes": {},
        "success": False,
        "error": None,
    }
    try:
        found = connector.session.discover(connect=True)
    except CastrayError as exc:
        result["error"] = str(exc)
        return result
    failed = dict(found.report.attach_errors)
    result["discovered_clusters"] = [_castray_dict(info) for info in found]
    result["connected_clusters"] = [_castray_dict(info) for info in found if info.name not in failed]
    errors = [f"{name}: {why}" for name, why in failed.items()]
    if result["connected_clusters"]:
        result["connected_cluster"] = result["connected_clusters"][0]
        result["external_nodes"] = connector.get_external_nodes()
        result["success"] = True
    result["error"] = "; ".join(errors) or (None if found else "no live Ray cluster found on this machine")
    return result
