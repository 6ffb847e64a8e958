"""CastRay's names still work for its users, over real clusters, without ray.init."""

from __future__ import annotations

import sys

from castray_nb.core import (
    RayClusterConnector,
    RayClusterDiscovery,
    Session,
    discover_and_connect_external_clusters,
)


def test_scan_returns_one_dict_per_live_cluster(head, headless, settings) -> None:
    found = RayClusterDiscovery(Session(settings)).scan_local_ray_clusters()
    by_gcs = {c["gcs_address"]: c for c in found}
    assert by_gcs[head.gcs_address]["nodes"] >= 1
    assert by_gcs[head.gcs_address]["dashboard_url"] == head.dashboard_url
    assert by_gcs[headless.gcs_address]["status"] == "active"


def test_connector_attaches_and_lists_external_nodes(head, headless, settings) -> None:
    connector = RayClusterConnector(Session(settings))
    assert not connector.is_connected_to_external_cluster()
    assert connector.connect_to_external_cluster({"gcs_address": head.gcs_address})
    assert connector.connect_to_external_cluster(headless.gcs_address)
    assert connector.is_connected_to_external_cluster()
    nodes = connector.get_external_nodes()
    assert len({n["cluster"] for n in nodes.values()}) == 2
    assert all(n["is_external"] and n["source"] == "external" for n in nodes.values())
    assert not connector.connect_to_external_cluster("127.0.0.1:1")
    assert connector.last_error and "127.0.0.1:1" in connector.last_error
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized(), "no ray.init behind the user's back"


def test_discover_and_connect_attaches_every_cluster(head, headless, settings) -> None:
    result = discover_and_connect_external_clusters(Session(settings))
    assert result["success"] and result["error"] is None
    gcs = {c["gcs_address"] for c in result["connected_clusters"]}
    assert {head.gcs_address, headless.gcs_address} <= gcs
    assert len({n["cluster"] for n in result["external_nodes"].values()}) >= 2
