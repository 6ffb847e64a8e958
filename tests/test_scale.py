"""Clusters far bigger than this machine, through the replay dashboard (a test tool that
serves replies captured from a real cluster, scaled to N nodes)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from castray_nb.core.client import PHYSICAL_MAX_NODES, ClusterClient
from castray_nb.core.connector import resolve
from castray_nb.core.http import BIG_REPLY_BYTES
from castray_nb.core.session import Session
from castray_nb.core.settings import Settings
from castray_nb.testing.replay import ReplayDashboard
from castray_nb.widgets import PAGE_SIZE, Panel


@pytest.fixture(scope="module")
def big() -> Iterator[ReplayDashboard]:
    replay = ReplayDashboard(nodes=2500, session_name="session_2026-01-01_00-00-00_000000_2500")
    with replay:
        yield replay


@pytest.fixture(scope="module")
def huge() -> Iterator[ReplayDashboard]:
    replay = ReplayDashboard(nodes=12_000, session_name="session_2026-01-01_00-00-00_000000_12000")
    with replay:
        yield replay


def test_a_2500_node_cluster_shows_every_node(big) -> None:
    session = Session(Settings())
    info = resolve(big.url, session.settings)
    state = session.attach(info, "big")
    assert state.reachable and state.num_nodes == 2500 and not state.warnings
    frame = session.nodes()
    assert len(frame) == 2500 and frame.node_id.is_unique
    assert (frame.state == "DEAD").sum() == 249 and (frame.state == "ALIVE").sum() == 2251
    assert frame.is_head.sum() == 1 and (frame.GPU > 0).sum() == 625
    assert frame.CPU_used.notna().sum() == 2251  # usage joined to the right nodes


def test_past_the_state_api_cap_the_truncation_is_said(huge) -> None:
    session = Session(Settings(node_limit=20_000))  # more than the server allows: it asks again at 10,000
    info = resolve(huge.url, session.settings)
    state = session.attach(info, "huge")
    assert state.num_nodes == 10_000
    assert state.warnings and "10000 of 12000" in state.warnings[0]
    panel = Panel(session, interval=30)
    try:
        assert "10000 of 12000" in panel.status.value
    finally:
        panel.close()


def test_the_panel_pages_and_filters_a_big_table(big) -> None:
    session = Session(Settings())
    info = resolve(big.url, session.settings)
    session.attach(info, "big")
    panel = Panel(session, interval=30)
    try:
        assert panel.table.value.count("data-node-id=") == PAGE_SIZE
        assert "rows 1-200 of 2500" in panel.page_label.value and "2500 node(s)" in panel.table.value
        assert panel.prev_button.disabled and not panel.next_button.disabled
        first_page = panel.table.value
        panel.next_button.click()
        assert "rows 201-400 of 2500" in panel.page_label.value and panel.table.value != first_page
        panel.state_filter.value = "DEAD"
        assert "rows 1-200 of 249 (filtered from 2500)" in panel.page_label.value
        assert "ALIVE</span>" not in panel.table.value and "2500 node(s)" in panel.table.value
        panel.state_filter.value = "all states"
        panel.text_filter.value = "10.0.1."
        assert "of 256 (filtered from 2500)" in panel.page_label.value
        for _ in range(20):
            panel.next_button.click()
        assert "page 2/2" in panel.page_label.value and panel.next_button.disabled
        # the display bundle's fallbacks are the last render (page 2/2 of the filtered rows), not a fresh draw
        bundle = panel._repr_mimebundle_()
        assert bundle["text/html"].count("data-node-id=") == 56 and "256 rows in all" in bundle["text/plain"]
        assert bundle["text/html"].endswith(panel.table.value)
    finally:
        panel.close()


def test_the_cli_reads_a_big_cluster_by_dashboard_url(big) -> None:
    result = subprocess.run([sys.executable, "-m", "castray_nb.cli", "nodes", "--address", big.url, "--json"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 2500


def test_the_replay_server_behaves_like_the_state_api(big) -> None:
    client = ClusterClient(None, big.url, Settings(node_limit=100))
    reading = client.read(cluster="x")
    assert len(reading.nodes) == 100 and reading.total == 2500 and reading.truncated


def test_a_second_read_of_an_unchanged_big_cluster_keeps_every_record(big) -> None:
    """What keeps a 10,000-node refresh from setting off full garbage collections in the
    kernel: unchanged nodes come back as the records already held (and the replies are
    decoded with the collector paused)."""
    client = ClusterClient(None, big.url, Settings())
    first = client.read(cluster="big")
    again = client.read(cluster="big", previous=first.nodes)
    assert len(again.nodes) == 2500 and all(a is b for a, b in zip(again.nodes, first.nodes, strict=True))
    assert again.seen and first.seen and again.seen > first.seen
    fresh = client.read(cluster="big")  # without the previous reading: new records, equal ones
    assert fresh.nodes == first.nodes and not any(a is b for a, b in zip(fresh.nodes, first.nodes, strict=True))


def _summary_asks(replay: ReplayDashboard) -> list[tuple[int, bool]]:
    """(position in the request log, collector on) of each node-summary request."""
    return [(i, gc_on) for i, (path, gc_on) in enumerate(replay.log) if path == "/nodes?view=summary"]


def test_a_first_read_asks_for_the_summary_after_the_node_list_with_the_collector_on() -> None:
    # 600 nodes: a node list past BIG_REPLY_BYTES, so the read pauses the collector for it
    replay = ReplayDashboard(nodes=600)
    assert len(json.dumps(replay._nodes_reply({"limit": ["600"]})).encode()) > BIG_REPLY_BYTES
    with replay as url:
        client = ClusterClient(None, url)
        first = client.read(cluster="r")
        asks = _summary_asks(replay)
        node_list = next(i for i, (path, _) in enumerate(replay.log) if path.startswith("/api/v0/nodes"))
        assert len(asks) == 1 and asks[0][0] > node_list  # asked once the size was known
        assert asks[0][1], "the late summary's network wait ran with the collector paused"
        alive = [n for n in first.nodes if n.state == "ALIVE"]
        assert len(alive) == sum(n["state"] == "ALIVE" for n in replay.nodes) and all(
            n.cpu_percent is not None for n in alive
        )
        replay.log.clear()
        again = client.read(cluster="r", previous=first.nodes)
        assert len(_summary_asks(replay)) == 1  # a later read asks beside the node list
        assert [n.cpu_percent for n in again.nodes] == [n.cpu_percent for n in first.nodes]


def test_a_cluster_past_physical_max_nodes_is_never_asked_for_its_summary(big) -> None:
    client = ClusterClient(None, big.url)
    big.log.clear()
    first = client.read(cluster="big")
    second = client.read(cluster="big", previous=first.nodes)
    assert len(second.nodes) == 2500 > PHYSICAL_MAX_NODES
    assert _summary_asks(big) == [] and all(n.cpu_percent is None for n in second.nodes)
