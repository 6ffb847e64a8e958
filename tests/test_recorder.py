"""The recorder's rules with an injected clock and readings built here: milliseconds.

Who holds a cluster's lease, when a cluster has ended, what a first reading records that
happened while nobody watched. The same rules against a real cluster and server are in
``test_history.py``.
"""

from __future__ import annotations

import datetime as dt

import pytest

from castray_nb.core.changes import node_events
from castray_nb.core.discovery import ClusterInfo
from castray_nb.core.history import History
from castray_nb.core.model import Event
from castray_nb.core.nodes import ALIVE, DEAD, NodeRecord
from castray_nb.core.recorder import LEASE_S, Recorder
from castray_nb.core.store import Store
from tests.test_history_store import Clock
from tests.test_session_logic import world  # noqa: F401 - the fixture: a session over fakes

T0 = 1_795_996_800.0
INFO = ClusterInfo("session_a", "10.0.0.1:6379", None, "2.60.0", None, 2, False, ("address",))


def at(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def node(node_id: str, state: str = ALIVE, *, start: float = T0 - 100, end: float | None = None) -> NodeRecord:
    return NodeRecord(
        cluster="c", source="external", node_id=node_id, node_ip="10.0.0.1", is_head=node_id == "head",
        state=state, CPU=1.0, GPU=0.0, memory_bytes=1e9, object_store_bytes=1e9, last_seen=at(T0),
        start_time=at(start), end_time=None if end is None else at(end),
        state_message="health check failed" if state == DEAD else None, cpu_percent=10.0,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path):
    clock = Clock()
    return Store(tmp_path / "s.sqlite3", clock=clock), clock


def kinds(history: History) -> list[tuple[str, str | None]]:
    return [(e.kind, e.node_id) for e in history.happened(since=0)]


def read(recorder: Recorder, before: list[NodeRecord], after: list[NodeRecord], session: str = "session_a") -> None:
    recorder.reading("c", INFO, session, after, node_events("c", before, after))


def test_a_death_is_recorded_once_at_rays_time_with_its_reason(store) -> None:
    s, clock = store
    recorder = Recorder(History(s), server=True)
    read(recorder, [], [node("head"), node("w1")])  # the first sight: nothing happened yet
    clock.now += 2
    read(recorder, [node("head"), node("w1")], [node("head"), node("w1", DEAD, end=T0 + 1)])
    (death,) = [e for e in recorder.history.happened(since=0) if e.kind == "node_died"]
    assert death.node_id == "w1" and death.time == T0 + 1 and "health check failed" in death.message
    assert recorder.history.last_reading("c") == T0 + 2


def test_a_kernel_does_not_record_what_a_server_records(store) -> None:
    s, clock = store
    server, kernel = Recorder(History(s), server=True), Recorder(History(s), server=False)
    kernel.holder = "kernel:1@elsewhere"  # another process (on another host: taken on trust)
    server.holder = "server:2@elsewhere"
    read(kernel, [], [node("head")])
    read(server, [], [node("head")])  # a server takes the lease from a kernel
    clock.now += 2
    read(kernel, [node("head")], [node("head"), node("w1")])
    read(server, [node("head")], [node("head"), node("w1")])
    assert kinds(server.history).count(("node_joined", "w1")) == 1
    clock.now += LEASE_S + 1  # the server is gone: its lease expires, the kernel goes on
    read(kernel, [node("head"), node("w1")], [node("head"), node("w1", DEAD, end=clock.now - 1)])
    assert ("node_died", "w1") in kinds(kernel.history)


def test_a_refused_cluster_ends_and_keeps_its_last_snapshot(store) -> None:
    s, clock = store
    recorder = Recorder(History(s), server=True)
    read(recorder, [], [node("head"), node("w1")])
    clock.now += 2
    recorder.failure("c", INFO, "session_a", "no GCS answers (connection refused)", gone=True)
    recorder.failure("c", INFO, "session_a", "no GCS answers (connection refused)", gone=True)  # said once
    assert [k for k, _ in kinds(recorder.history)] == ["cluster_unreachable", "cluster_ended"]
    (ended,) = recorder.history.seen(ended=True)
    assert ended.ended_at == T0 + 2 and "nothing listens" in (ended.ended_reason or "")
    assert {n["node_id"] for n in ended.snapshot["nodes"]} == {"head", "w1"}  # type: ignore[union-attr]


def test_a_kernels_runtime_that_leaves_lets_its_lease_go_and_one_it_started_ends(store) -> None:
    s, clock = store
    kernel, other = Recorder(History(s)), Recorder(History(s))
    other.holder = "kernel:2@elsewhere"
    read(kernel, [], [node("head")])  # ray.init(address=...): the kernel joined a cluster
    clock.now += 1
    read(other, [], [node("head")])
    assert kinds(other.history) == [], "the lease is the first kernel's"
    kernel.left("c", INFO, "session_a", ended=False, why="left")
    clock.now += 1
    # The other watcher takes over at once: its first recorded reading has what joined since.
    read(other, [node("head")], [node("head"), node("w1", start=clock.now - 0.5)])
    assert kinds(other.history) == [("node_joined", "w1")] and not other.history.seen(ended=True)
    other.left("c", INFO, "session_a", ended=True, why="the kernel's ray.shutdown() stopped the cluster")
    other.left("c", INFO, "session_a", ended=True, why="said twice")  # nothing: it is no longer tracked
    (ended,) = other.history.seen(ended=True)
    assert ended.ended_at == T0 + 2 and ended.ended_reason == "the kernel's ray.shutdown() stopped the cluster"
    assert [k for k, _ in kinds(other.history)] == ["node_joined", "cluster_ended"]
    kernel.left("c", INFO, "session_a", ended=True, why="not its own")  # it left before: ends nothing again
    assert [k for k, _ in kinds(other.history)] == ["node_joined", "cluster_ended"]


def test_a_cluster_silent_for_long_ends_and_a_new_session_ends_the_old(store) -> None:
    s, clock = store
    recorder = Recorder(History(s), server=True, ended_after_s=60)
    read(recorder, [], [node("head")])
    clock.now += 10
    recorder.failure("c", INFO, "session_a", "timed out", gone=False)
    assert not recorder.history.seen(ended=True)
    clock.now += 61
    recorder.failure("c", INFO, "session_a", "timed out", gone=False)
    assert [c.session_name for c in recorder.history.seen(ended=True)] == ["session_a"]
    clock.now += 10
    read(recorder, [node("head")], [node("head2")], session="session_b")  # restarted at the same address
    live = recorder.history.seen(ended=False)
    assert [c.session_name for c in live] == ["session_b"]


def test_a_first_reading_records_what_happened_since_the_store_last_saw_it(store) -> None:
    s, clock = store
    first = Recorder(History(s), server=True)
    read(first, [], [node("head")])
    clock.now += 100  # nobody watched for 100 s; a new process reads it
    later = Recorder(History(s), server=True)
    later.holder = "server:99999999@elsewhere-too"
    first.holder = "server:1@gone-host"
    s2 = History(s)
    with s2.store.connection() as db:  # the first process's lease has run out
        db.execute("UPDATE leases SET expires = 0")
    read(later, [], [node("head"), node("w1", start=T0 + 20), node("w2", DEAD, start=T0 + 5, end=T0 + 50)])
    happened = [(e.kind, e.node_id, e.time) for e in s2.happened(since=0)]
    assert ("node_joined", "w1", T0 + 20) in happened and ("node_died", "w2", T0 + 50) in happened
    assert ("node_joined", "head", T0 - 100) not in happened


def test_attach_and_job_events_come_from_the_bus(store) -> None:
    s, clock = store
    recorder = Recorder(History(s), server=False)
    recorder.event(Event("cluster_attached", "c", detail="10.0.0.1:6379", time=at(T0)))
    recorder.event(Event("job_status_changed", "c", detail="RUNNING -> FAILED", job_id="j1", time=at(T0)))
    assert kinds(recorder.history) == [("cluster_attached", None)]  # a job of a cluster it does not record
    read(recorder, [], [node("head")])
    recorder.event(Event("job_status_changed", "c", detail="RUNNING -> FAILED", job_id="j1", time=at(T0 + 1)))
    (job,) = [e for e in recorder.history.happened(since=0) if e.kind == "job_status"]
    assert job.job == "j1" and job.message == "RUNNING -> FAILED"


def test_the_panel_charts_a_clusters_last_hour_with_its_deaths_marked_and_lists_its_events(
    tmp_path,
    monkeypatch,
    world,  # noqa: F811 - the fixture imported above
) -> None:
    import time

    from castray_nb import widgets
    from tests.test_session_logic import info

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    now = time.time()
    clock = Clock()
    clock.now = now - 120
    recorder = Recorder(History(Store(clock=clock)), server=True)  # the user's store, as the panel reads it
    two = [node("head"), node("w1")]
    read(recorder, [], two)
    clock.now = now - 60
    read(recorder, two, [node("head"), node("w1", DEAD, end=now - 61)])
    world.found = [info(6390)]
    world.session.connect("127.0.0.1:6390", name="c")
    with widgets.Panel(world.session, interval=3600) as panel:
        assert [v for _, v in panel.history_choice.options] == ["", "c"]
        panel.history_choice.value = "c"
        panel.draw_history()
        chart, listed = panel.history_chart.value, panel.history_events.value
    assert "data-line='cpu'" in chart and "CPU %" in chart  # the head's and the worker's host CPU
    assert chart.count("data-event='node_died'") == 1 and "w1 died: " in chart and "health check failed" in chart
    assert "memory % (none)" in chart  # neither host nor logical memory use recorded: said so
    assert "data-kind='node_died'" in listed and "health check failed" in listed
