"""Discovery against real clusters: each live cluster once, nothing dead, no slowdowns."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from castray_nb.core import sources as sources_module
from castray_nb.core.client import ClusterClient
from castray_nb.core.discovery import ClusterInfo, discover, discover_report
from castray_nb.core.settings import Settings
from castray_nb.core.sources import Candidate
from castray_nb.launch import LocalCluster, free_ports
from tests.conftest import has_token_auth, installed_ray_package, wait_until
from tests.drivers import OtherDriver
from tests.netns import run_where_ports_are_free
from tests.servers import not_ray_http, silent_server


def ours(found: list[ClusterInfo], cluster: LocalCluster | OtherDriver) -> list[ClusterInfo]:
    return [c for c in found if c.gcs_address == cluster.gcs_address]


def test_two_live_heads_are_each_found_exactly_once(head, headless, settings) -> None:
    found = discover(settings)
    names = [c.name for c in found]
    assert len(names) == len(set(names)), "a cluster was reported twice"
    (with_dash,) = ours(found, head)
    (without,) = ours(found, headless)

    assert with_dash.dashboard_url == f"http://127.0.0.1:{head.dashboard_port}"
    assert with_dash.session_dir and with_dash.session_dir.startswith(head.temp_dir)
    assert with_dash.temp_dir == head.temp_dir
    assert with_dash.name == Path(with_dash.session_dir).name
    assert with_dash.num_nodes is not None and with_dash.num_nodes >= 1
    assert with_dash.ray_version == ray.__version__
    assert not with_dash.auth_required
    assert "processes" in with_dash.sources

    assert without.dashboard_url is None, "a head without dashboard still carries --port; it must not count"
    assert without.num_nodes == 1  # read through the GCS
    assert without.ray_version == ray.__version__
    assert without.name.startswith("session_") and without.name != with_dash.name


def test_json_contract_keys(head, settings) -> None:
    (info,) = ours(discover(settings), head)
    data = info.to_json()
    for key in ("name", "gcs_address", "dashboard_url", "ray_version", "session_dir", "num_nodes",
                "auth_required", "sources"):  # fmt: skip
        assert key in data
    assert isinstance(data["sources"], list)


def test_dead_session_folders_and_a_stale_current_cluster_are_not_reported(head, tmp_path, settings) -> None:
    temp = tmp_path / "ray"
    for i in range(3):
        (temp / f"session_2026-01-0{i + 1}_10-00-00_000000_{100 + i}" / "logs").mkdir(parents=True)
    (dead_port,) = free_ports(1)
    (temp / "ray_current_cluster").write_text(f"127.0.0.1:{dead_port}")
    before = {c.name for c in discover(settings)}

    report = discover_report(settings.replace(temp_dirs=(str(temp),)))

    assert {c.name for c in report.clusters} == before
    assert report.hints >= 3
    assert any(str(dead_port) in what and "stale" in why for what, why in report.rejected)


def test_the_custom_temp_dir_current_cluster_file_merges_with_the_process(head, settings) -> None:
    # ray start writes the file a moment after the head is up
    wait_until(lambda: Path(head.temp_dir, "ray_current_cluster").exists(), 60)
    report = discover_report(settings.replace(temp_dirs=(head.temp_dir,)))
    (info,) = ours(list(report.clusters), head)
    assert {"processes", "current_cluster", "session_dirs"} <= set(info.sources)


def test_non_ray_and_silent_servers_are_not_reported_and_cost_at_most_the_timeout(head, tmp_path, monkeypatch) -> None:
    with not_ray_http() as http_port, silent_server() as silent_port:
        temp = tmp_path / "ray"
        temp.mkdir()
        (temp / "ray_current_cluster").write_text(f"127.0.0.1:{silent_port}")
        monkeypatch.setenv("RAY_ADDRESS", f"http://127.0.0.1:{http_port}")
        settings = Settings(probe_timeout=0.3, temp_dirs=(str(temp),))
        started = time.perf_counter()
        report = discover_report(settings)
        elapsed = time.perf_counter() - started
    rejected = dict(report.rejected)
    assert not [c for c in report.clusters if str(silent_port) in str(c.gcs_address)]
    assert not [c for c in report.clusters if str(http_port) in str(c.dashboard_url)]
    assert any(str(silent_port) in what for what in rejected), rejected
    assert any(str(http_port) in what for what in rejected), rejected
    # The silent GCS candidate gets max(2 s, 4 x probe timeout) and runs beside the rest.
    assert elapsed < 2.0 + 0.5 + 2.0, f"discovery took {elapsed:.1f} s"
    assert ours(list(report.clusters), head)


def test_a_failing_source_is_recorded_and_the_others_still_answer(head, settings, monkeypatch) -> None:
    def broken(ctx):
        raise RuntimeError("boom")
        yield  # pragma: no cover

    def extra(ctx):
        yield Candidate(source="plugin", gcs_address=f"localhost:{head.gcs_port}")

    monkeypatch.setitem(sources_module._BUILTIN, "broken", broken)
    monkeypatch.setitem(sources_module._BUILTIN, "plugin", extra)
    report = discover_report(settings)
    assert report.source_errors["broken"] == "RuntimeError: boom"
    (info,) = ours(list(report.clusters), head)
    assert "plugin" in info.sources, "the plug-in's localhost:port must merge with the process's ip:port"


def test_a_source_past_its_deadline_is_left_behind_and_said_so(head, settings, monkeypatch) -> None:
    """As dask-ctl gives each source 5 s: a plug-in that hangs costs one deadline, no more,
    what it yielded by then still counts, and the report says why it stopped counting."""
    released = threading.Event()

    def hanging(ctx: object) -> Iterator[Candidate]:
        yield Candidate("hanging", gcs_address=head.gcs_address)
        released.wait(60)

    monkeypatch.setitem(sources_module._BUILTIN, "hanging", hanging)
    started = time.monotonic()
    try:
        report = discover_report(settings.replace(source_timeout=1.5))
    finally:
        took = time.monotonic() - started
        released.set()
    assert took < 1.5 + 1.0, f"discovery took {took:.2f} s with a 1.5 s source deadline"
    assert "no answer within its 1.5 s deadline" in report.source_errors["hanging"]
    assert "1 found by then kept" in report.source_errors["hanging"]
    (info,) = ours(list(report.clusters), head)
    assert "hanging" in info.sources and "processes" in info.sources, "the other sources' finds stand"


def test_selecting_sources_and_naming_an_unknown_one(head, settings) -> None:
    report = discover_report(settings.replace(sources=("current_cluster", "nope")))
    assert "nope" in report.source_errors
    assert not ours(list(report.clusters), head)  # its ray_current_cluster is not in the default temp dir


def test_reading_nodes_through_dashboard_and_gcs_agree(head, settings) -> None:
    by_dashboard = ClusterClient(head.gcs_address, head.dashboard_url, settings).read(cluster="x")
    by_gcs = ClusterClient(head.gcs_address, None, settings).read(cluster="x")
    assert by_dashboard.via == "dashboard" and by_gcs.via == "gcs"
    assert by_dashboard.session_name == by_gcs.session_name
    key = lambda r: (r.node_id, r.is_head, r.CPU, r.memory_bytes, r.object_store_bytes)  # noqa: E731
    assert sorted(map(key, by_dashboard.nodes)) == sorted(map(key, by_gcs.nodes))
    # usage comes from /api/cluster_status once the autoscaler monitor reported (seconds after start)
    client = ClusterClient(head.gcs_address, head.dashboard_url, settings)
    wait_until(lambda: any(r.CPU_used is not None for r in client.read(cluster="x").nodes), 60)


def test_a_dashboard_read_gives_each_node_its_hosts_physical_usage(head, settings) -> None:
    """The node summary (``/nodes?view=summary``, no Prometheus needed) fills the physical
    columns; a GCS read has no such source and leaves them null."""
    import psutil

    client = ClusterClient(head.gcs_address, head.dashboard_url, settings)

    def with_physical_usage():
        reading = client.read(cluster="x")
        alive = [n for n in reading.nodes if n.state == "ALIVE"]
        return alive if alive and all(n.cpu_percent is not None for n in alive) else None

    alive = wait_until(with_physical_usage, 60)
    for node in alive:  # the head, and any worker another test joined (all on this machine)
        assert 0 <= node.cpu_percent <= 100
        assert node.host_memory_total_bytes == psutil.virtual_memory().total  # this machine's own memory
        assert 0 < node.host_memory_used_bytes < node.host_memory_total_bytes
        assert node.gpu_percent is None  # no GPU here
    gcs_only = ClusterClient(head.gcs_address, None, settings).read(cluster="x")
    assert all(n.cpu_percent is None and n.host_memory_used_bytes is None for n in gcs_only.nodes)


@pytest.mark.slow
def test_another_notebooks_ray_init_with_a_moved_dashboard_and_default_token(request, settings, monkeypatch) -> None:
    """Another process's ray.init() while 8265 is taken: Ray moves the dashboard up, and
    (Ray 2.60; not 2.40, which has no token auth) turns token auth on. Discovery must find the
    real URL and say a token is needed.
    (Where another program holds 8265, the test runs in a network namespace of its own.)"""
    if not run_where_ports_are_free(request, [8265]):
        return
    blocker = not_ray_http(8265)
    taken = blocker.__enter__()
    driver = None
    try:
        driver = OtherDriver()
        assert not driver.dashboard_url.endswith(f":{taken}")
        (info,) = ours(discover(settings), driver)
        assert info.dashboard_url == driver.dashboard_url, "the dashboard moved off --port=8265"
        if not has_token_auth(installed_ray_package()):  # Ray 2.40: no token auth, so none is turned on
            assert not info.auth_required and info.num_nodes == 1 and not driver.token_path.exists()
            return
        assert info.auth_required and info.num_nodes is None

        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(driver.token_path))
        (info,) = ours(discover(settings), driver)
        assert info.num_nodes == 1 and info.ray_version == ray.__version__
        version = ClusterClient(None, info.dashboard_url, settings).version()
        assert version["session_name"] == info.name
    finally:
        if driver:
            driver.stop()
        blocker.__exit__(None, None, None)


def test_default_temp_dir_honours_ray_tmpdir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert sources_module.default_temp_dir() == os.path.join(str(tmp_path), "ray")
