"""The session against real clusters: workers join and die, clusters stop and come back,
the kernel's own runtime shows once, and the driver connection refuses to switch silently."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from castray_nb.core.connector import resolve
from castray_nb.core.errors import ClusterUnreachable, InvalidAddress
from castray_nb.core.model import Event
from castray_nb.core.session import Session
from castray_nb.launch import LocalCluster, free_ports
from tests.conftest import HOME, wait_until


def attached(session: Session, cluster: LocalCluster, name: str | None = None):
    info = resolve(cluster.gcs_address, session.settings)
    return session.attach(info, name)


def test_a_worker_joins_then_dies_and_the_table_follows(head, settings) -> None:
    session = Session(settings)
    events: list[Event] = []
    session.subscribe(events.append)
    state = attached(session, head, "main")
    assert state.reachable and state.via == "dashboard"
    heads_before = len([r for r in session.rows() if r.is_head])

    worker = head.add_worker()
    session.refresh()
    rows = {r.node_id: r for r in session.rows() if r.cluster == "main"}
    alive_workers = [r for r in rows.values() if not r.is_head and r.state == "ALIVE"]
    assert len(alive_workers) == 1 and heads_before == 1
    new_id = alive_workers[0].node_id
    assert any(e.kind == "node_added" and e.node_id == new_id for e in events)

    worker.stop()
    wait_until(lambda: session.refresh() is not None and _state(session, new_id) == "DEAD", 60)
    assert any(e.kind == "node_state_changed" and e.node_id == new_id and "DEAD" in e.detail for e in events)
    frame = session.nodes()
    assert frame.loc[frame.node_id == new_id, "state"].item() == "DEAD"
    assert frame.loc[frame.is_head, "state"].tolist() == ["ALIVE"]


def _state(session: Session, node_id: str) -> str | None:
    return next((r.state for r in session.rows() if r.node_id == node_id), None)


def test_the_headless_cluster_is_read_through_its_gcs(headless, settings) -> None:
    session = Session(settings)
    state = attached(session, headless)
    assert state.reachable and state.via == "gcs" and state.alive_nodes == 1
    (row,) = session.rows()
    assert row.source == "external" and row.is_head and row.CPU == 1.0


def test_resolving_every_kind_of_address(head, settings) -> None:
    by_gcs = resolve(head.gcs_address, settings)
    by_alias = resolve(f"localhost:{head.gcs_port}", settings)
    by_url = resolve(head.dashboard_url, settings)
    by_name = resolve(by_gcs.name, settings)
    assert by_gcs.name == by_alias.name == by_url.name == by_name.name
    assert by_url.gcs_address == head.gcs_address  # matched to the process it came from
    session = Session(settings)
    first = session.attach(by_gcs)
    again = session.attach(by_url, "other-name")
    assert again.name == first.name and len(session.clusters()) == 1, "one cluster, attached once"


def test_bad_addresses_leave_the_session_as_it_was(head, settings) -> None:
    session = Session(settings)
    attached(session, head)
    (closed,) = free_ports(1)
    started = time.perf_counter()
    with pytest.raises(ClusterUnreachable):
        resolve(f"127.0.0.1:{closed}", settings)
    with pytest.raises(InvalidAddress):
        resolve(f"ray://127.0.0.1:{closed}", settings)
    with pytest.raises(ClusterUnreachable, match="session name"):
        resolve("session_2000-01-01_00-00-00_000000_1", settings)
    assert time.perf_counter() - started < 10
    assert [c.reachable for c in session.clusters()] == [True]


@pytest.mark.slow
def test_a_stopped_cluster_turns_unreachable_keeps_its_rows_and_recovers_as_a_new_session(head, settings) -> None:
    session = Session(settings)
    events: list[Event] = []
    session.subscribe(events.append)
    gcs_port, dashboard_port = free_ports(2)
    first = LocalCluster(home=HOME, gcs_port=gcs_port, dashboard_port=dashboard_port).start()
    try:
        attached(session, head, "steady")
        state = attached(session, first, "flaky")
        old_session = state.session_name
        first.stop()
        started = time.perf_counter()
        session.refresh()
        took = time.perf_counter() - started
        flaky = session.cluster("flaky")
        assert flaky.reachable is False and flaky.error
        assert took < settings.http_timeout + settings.gcs_timeout + 2
        rows = [r for r in session.rows() if r.cluster == "flaky"]
        assert rows and {r.state for r in rows} == {"UNREACHABLE"}, "last rows kept, marked UNREACHABLE"
        assert session.cluster("steady").reachable, "the other cluster is unaffected"
        assert {r.state for r in session.rows() if r.cluster == "steady" and r.is_head} == {"ALIVE"}
        assert [e.kind for e in events if e.cluster == "flaky"].count("cluster_unreachable") == 1
        session.refresh()  # still down: no second event
        assert [e.kind for e in events if e.cluster == "flaky"].count("cluster_unreachable") == 1

        second = LocalCluster(home=HOME, gcs_port=gcs_port, dashboard_port=dashboard_port).start()
        try:
            wait_until(lambda: session.refresh() is not None and session.cluster("flaky").reachable, 60)
            flaky = session.cluster("flaky")
            assert flaky.session_name != old_session
            recovered = [e for e in events if e.kind == "cluster_recovered" and e.cluster == "flaky"]
            assert recovered and "new session" in recovered[0].detail
            assert {r.state for r in session.rows() if r.cluster == "flaky"} == {"ALIVE"}
        finally:
            second.stop()
    finally:
        first.stop()


_DRIVER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import castray_nb
    from castray_nb import DriverConflict
    head, headless = sys.argv[1], sys.argv[2]
    out = {}
    castray_nb.connect(head)
    castray_nb.connect(headless, driver=True)
    frame = castray_nb.nodes()
    out["with_driver"] = sorted({(r.cluster[-6:], r.source) for r in frame.itertuples()})
    out["rows_with_driver"] = len(frame)
    try:
        castray_nb.connect(head, driver=True)
    except DriverConflict as exc:
        out["conflict"] = str(exc)
    out["attached_after_conflict"] = len(castray_nb.clusters())
    castray_nb.disconnect(driver=True)
    frame = castray_nb.nodes()
    out["after_driver"] = sorted({(r.cluster[-6:], r.source) for r in frame.itertuples()})
    print(json.dumps(out))
    """
)


def test_the_kernels_own_driver_cluster_shows_once_as_local(head, headless) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _DRIVER_SCRIPT, head.gcs_address, headless.gcs_address],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    sources = {source for _, source in out["with_driver"]}
    assert sources == {"local", "external"}
    assert len(out["with_driver"]) == 2, "the driver's cluster is shown once, as local"
    assert "already the Ray driver" in out["conflict"]
    assert out["attached_after_conflict"] == 2, "a refused driver switch detaches nothing"
    assert {source for _, source in out["after_driver"]} == {"external"}, "local rows left with the driver"
    assert len(out["after_driver"]) == 2


def test_a_broken_subscriber_does_not_stop_events(head, settings) -> None:
    session = Session(settings)
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    session.subscribe(broken)
    unsubscribe = session.subscribe(lambda e: seen.append(e.kind))
    attached(session, head)
    assert "cluster_attached" in seen and "node_added" in seen
    unsubscribe()
    session.detach_all()
    assert "cluster_detached" not in seen


def test_a_half_imported_ray_counts_as_no_local_runtime(monkeypatch, settings) -> None:
    """Seen in CI: a discovery thread was still importing Ray when a refresh looked at
    sys.modules['ray'], a module without is_initialized yet."""
    import types

    from castray_nb.core.connector import driver_address, leave_driver
    from castray_nb.core.local import initialized_ray, local_runtime

    monkeypatch.setitem(sys.modules, "ray", types.ModuleType("ray"))
    assert initialized_ray() is None and local_runtime() is None
    assert driver_address() is None and leave_driver() is False
    session = Session(settings)
    assert session.refresh() == [] and session.rows() == []


def test_a_discovery_announces_each_cluster_once(head, headless, settings) -> None:
    from castray_nb.core.address import cluster_key

    session = Session(settings)
    events: list[Event] = []
    session.subscribe(events.append)
    session.discover()
    found = [e for e in events if e.kind == "cluster_discovered"]
    for cluster in (head, headless):
        assert sum(cluster_key(e.detail) == cluster_key(cluster.gcs_address) for e in found) == 1
    assert all(e.cluster.startswith("session_") for e in found)
    events.clear()
    session.discover()
    assert events == []  # already seen: no news
