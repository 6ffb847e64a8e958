"""The GCS reader: gRPC with the protobuf modules Ray ships, without importing Ray.

Against the shared real clusters (one with a dashboard, one without), a worker that joins
and dies, a silent TCP server posing as a GCS, a closed port; and a process that used the
reader and then imports Ray and joins a cluster as a driver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from castray_nb.core import gcs_grpc
from castray_nb.core.client import ClusterClient
from castray_nb.core.discovery import discover
from castray_nb.core.errors import ClusterTimeout, ClusterUnreachable
from castray_nb.core.gcs import read_gcs
from castray_nb.core.settings import Settings
from castray_nb.launch import LocalCluster, free_ports
from tests.conftest import Clusters, wait_until
from tests.servers import silent_server


def _quiet() -> dict[str, str]:
    return {**os.environ, "RAY_BACKEND_LOG_LEVEL": "error"}


def test_the_reader_never_imports_ray_and_reads_both_clusters(clusters: Clusters) -> None:
    """In a fresh process: both clusters read over gRPC, ``ray`` never in sys.modules."""
    script = (
        "import json, sys\n"
        "from castray_nb.core.gcs import read_gcs\n"
        "out = {}\n"
        "for address in sys.argv[1:]:\n"
        "    r = read_gcs(address, 5.0)\n"
        "    out[address] = [r.session_name, r.cluster_id, r.dashboard_address, r.ray_version, r.note,\n"
        "                    [(n['node_id'], n['is_head_node'], n['state'], n['resources_total'].get('CPU'))\n"
        "                     for n in r.nodes]]\n"
        "out['ray imported'] = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "print(json.dumps(out))\n"
    )
    addresses = [clusters.head.gcs_address, clusters.headless.gcs_address]
    result = subprocess.run([sys.executable, "-c", script, *addresses], capture_output=True, text=True,
                            timeout=60, env=_quiet())  # fmt: skip
    assert result.returncode == 0, result.stderr[-1500:]
    out = json.loads(result.stdout)
    assert out["ray imported"] == []
    import ray

    for cluster in (clusters.head, clusters.headless):
        session, cluster_id, dashboard, version, note, nodes = out[cluster.gcs_address]
        assert session and session.startswith("session_") and cluster_id and len(cluster_id) == 56
        assert version == ray.__version__ and note is None
        heads = [n for n in nodes if n[1]]
        assert len(heads) == 1 and heads[0][2] == "ALIVE" and heads[0][3] == 1.0
        # the same nodes as the dashboard (or Ray's own client) lists
        by_dashboard = (
            ClusterClient(None, cluster.dashboard_url, Settings()).read(cluster="x") if cluster.dashboard else None
        )
        if by_dashboard:
            assert sorted(n[0] for n in nodes) == sorted(r.node_id for r in by_dashboard.nodes)
            assert dashboard and dashboard.endswith(f":{cluster.dashboard_port}")
            assert by_dashboard.session_name == session


def test_a_worker_joins_and_dies_through_the_gcs(head: LocalCluster) -> None:
    # On the shared head, whose tests allow for workers (the headless one's expect a single node).
    before = {n["node_id"] for n in read_gcs(head.gcs_address, 5.0).nodes}
    worker = head.add_worker()
    try:
        nodes = read_gcs(head.gcs_address, 5.0).nodes
        (joined,) = [n for n in nodes if n["node_id"] not in before]
        assert joined["state"] == "ALIVE" and not joined["is_head_node"] and joined["start_time_ms"] > 0
    finally:
        worker.stop()

    def dead() -> dict | None:
        found = [n for n in read_gcs(head.gcs_address, 5.0).nodes if n["node_id"] == joined["node_id"]]
        return found[0] if found and found[0]["state"] == "DEAD" else None

    gone = wait_until(dead, 60)
    assert isinstance(gone, dict) and gone["end_time_ms"] >= gone["start_time_ms"] and gone["state_message"]


def test_a_silent_gcs_ends_within_its_deadline_and_leaves_no_thread() -> None:
    threads = threading.active_count()
    with silent_server() as port:
        started = time.perf_counter()
        with pytest.raises(ClusterTimeout, match="no GCS answered within 1 s"):
            read_gcs(f"127.0.0.1:{port}", 1.0)
        took = time.perf_counter() - started
    assert took < 2.5, took
    time.sleep(0.2)
    assert threading.active_count() <= threads, [t.name for t in threading.enumerate()]


def test_a_closed_port_is_unreachable_at_once() -> None:
    (closed,) = free_ports(1)
    started = time.perf_counter()
    with pytest.raises(ClusterUnreachable, match="connection refused"):
        read_gcs(f"127.0.0.1:{closed}", 5.0)
    assert time.perf_counter() - started < 1.5


def test_a_process_that_used_the_reader_can_still_import_ray_and_join(headless: LocalCluster) -> None:
    script = (
        "import sys\n"
        "from castray_nb.core.gcs import read_gcs\n"
        f"first = read_gcs({headless.gcs_address!r}, 5.0)\n"
        "assert 'ray' not in sys.modules\n"
        "import ray\n"
        f"ray.init(address={headless.gcs_address!r}, logging_level='ERROR', log_to_driver=False)\n"
        "alive = [n for n in ray.nodes() if n['Alive']]\n"
        "again = read_gcs(ray.get_runtime_context().gcs_address, 5.0)\n"
        "print(len(alive), len(again.nodes) >= 1, again.session_name == first.session_name, flush=True)\n"
        "ray.shutdown()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                            env=_quiet())  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    alive, read_again, same_session = result.stdout.split()[-3:]
    assert int(alive) >= 1 and read_again == same_session == "True", result.stdout


def test_without_rays_modules_it_falls_back_to_rays_client_and_says_so(
    headless: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gcs_grpc, "generated", lambda: None)
    monkeypatch.setattr(gcs_grpc, "load_failure", lambda: "ImportError: no module named gcs_service_pb2")
    reading = read_gcs(headless.gcs_address, 5.0)
    assert reading.nodes and reading.note and "\n" not in reading.note
    assert "Ray's own client" in reading.note and "gcs_service_pb2" in reading.note
    via_client = ClusterClient(headless.gcs_address, None, Settings()).read(cluster="x")
    assert via_client.via == "gcs" and any("Ray's own client" in w for w in via_client.warnings)


def test_another_ray_version_is_said_in_the_note(clusters: Clusters, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gcs_grpc, "installed_ray_version", lambda: "2.0.0")
    found = {c.gcs_address: c for c in discover(Settings())}
    for cluster in (clusters.head, clusters.headless):
        info = found[cluster.gcs_address]
        assert info.note and "this environment has Ray 2.0.0" in info.note and info.ray_version in info.note
    reading = ClusterClient(None, clusters.head.dashboard_url, Settings()).read(cluster="x")
    assert any("Ray 2.0.0" in w for w in reading.warnings)
