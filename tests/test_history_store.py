"""The history store's retention and downsampling, with an injected clock: milliseconds."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from castray_nb.core.history import METRICS, TIERS, History, resolution
from castray_nb.core.nodes import ALIVE, DEAD, NodeRecord
from castray_nb.core.store import _RECENT, MIGRATIONS, SCHEMA_VERSION, Recent, Store

T0 = 1_795_996_800.0  # a whole day (so a whole multiple of every step): buckets start where the test says


def node(node_id: str, *, cpu: float, state: str = ALIVE) -> NodeRecord:
    return NodeRecord(
        cluster="c", source="external", node_id=node_id, node_ip="10.0.0.1", is_head=node_id == "head",
        state=state, CPU=4.0, GPU=0.0, memory_bytes=8e9, object_store_bytes=2e9,
        last_seen=dt.datetime.fromtimestamp(T0, dt.UTC), CPU_used=cpu / 25, cpu_percent=cpu,
        host_memory_used_bytes=1e9,
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def history(tmp_path):
    clock = Clock()
    return History(Store(tmp_path / "h.sqlite3", clock=clock)), clock


def values(points, metric, node_id):
    return [(p.time, p.value) for p in points if p.metric == metric and p.node_id == node_id]


def test_a_reading_is_a_point_per_node_and_one_for_the_totals(history) -> None:
    h, clock = history
    assert h.record("c", [node("head", cpu=40), node("w1", cpu=20, state=DEAD)]) == 3
    points = h.points(since=T0 - 1)
    assert values(points, "cpu_percent", "head") == [(T0, 40.0)]
    assert values(points, "alive", "w1") == [(T0, 0.0)]
    assert values(points, "nodes_alive", None) == [(T0, 1.0)] and values(points, "nodes_total", None) == [(T0, 2.0)]
    assert values(points, "cpu_percent", None) == [(T0, 40.0)]  # the totals count alive nodes only
    assert values(points, "CPU", None) == [(T0, 4.0)]
    assert not values(points, "gpu_percent", "head")  # not reported: no point, not a zero


def test_two_readings_of_one_bucket_leave_one_point_their_mean(history) -> None:
    h, clock = history
    h.record("c", [node("head", cpu=10)], at=T0 + 1)
    h.record("c", [node("head", cpu=30)], at=T0 + 7)  # same 10 s bucket, maybe another process
    assert values(h.points(since=T0 - 1), "cpu_percent", "head") == [(T0, 20.0)]
    assert h.last_reading("c") == T0 + 7


def test_the_read_step_follows_the_range(history) -> None:
    h, clock = history
    for i in range(60):
        h.record("c", [node("head", cpu=float(i))], at=T0 + 10 * i)
    clock.now = T0 + 600
    assert len(values(h.points(since=T0), "cpu_percent", "head")) == 60  # ten minutes: every 10 s
    day = values(h.points(since=T0 + 600 - 86400), "cpu_percent", "head")  # a day: 5 minutes
    assert day == [(T0, 14.5), (T0 + 300, 44.5)]
    assert resolution(0, 3600) == 10 and resolution(0, 86400) == 300 and resolution(0, 7 * 86400) == 1800


def test_a_store_of_the_first_version_keeps_its_recent_attachments(tmp_path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # what castray_nb wrote before the history (version 1)
        db.execute(_RECENT)
        db.execute("INSERT INTO recent (address, name, first_attached, last_seen) VALUES ('h:6379', 'gpu', 1, 2)")
        db.execute("PRAGMA user_version = 1")
    path.chmod(0o600)
    h = History(Store(path, clock=Clock()))
    h.record("c", [node("head", cpu=5)])
    assert [e.name for e in Recent(h.store).entries()] == ["gpu"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("SELECT count(*) FROM points").fetchone() == (2,)


def test_a_store_of_the_second_version_keeps_its_points_keyed_anew(tmp_path) -> None:
    path = tmp_path / "v2.sqlite3"
    with sqlite3.connect(path) as db:  # what the history's first release wrote (version 2)
        for number in range(2):
            db.executescript(MIGRATIONS[number]())
        db.execute("INSERT INTO series (id, cluster, node_id) VALUES (1, 'c', 'head'), (2, 'c', '')")
        db.execute("INSERT INTO points (series, step, t, n, at, cpu_percent) VALUES (1, 10, ?, 3, ?, 40.0)", (T0, T0))
        db.execute("INSERT INTO points (series, step, t, n, at, nodes_alive) VALUES (2, 10, ?, 3, ?, 1.0)", (T0, T0))
        db.execute("PRAGMA user_version = 2")
    path.chmod(0o600)
    h = History(Store(path, clock=Clock()))
    h.record("c", [node("head", cpu=10.0)], at=T0 + 5)  # the same bucket: merged with the 3 readings kept
    assert values(h.points(since=T0 - 1), "cpu_percent", "head") == [(T0, 32.5)]
    assert h.last_reading("c") == T0 + 5  # the totals found through their own index
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (4,)
        assert db.execute("SELECT series, total, n FROM points ORDER BY series").fetchall() == [(1, 0, 4), (2, 1, 4)]


def test_a_point_packed_before_a_metric_was_added_reads_it_as_not_read(history) -> None:
    h, _ = history
    h.record("c", [node("head", cpu=30.0)], at=T0)
    with h.store.connection() as db:  # the totals as a release with one metric fewer packed them
        (blob,) = db.execute("SELECT v FROM points WHERE total = 1").fetchone()
        db.execute("UPDATE points SET v = ? WHERE total = 1", (blob[:-8],))
    h.record("c", [node("head", cpu=10.0)], at=T0 + 10)
    totals = h.points(since=T0 - 1, node="")
    assert METRICS[-1] == "object_store_bytes"
    assert [(p.time, p.value) for p in totals if p.metric == "object_store_bytes"] == [(T0 + 10, 2e9)]
    assert [(p.time, p.value) for p in totals if p.metric == "cpu_percent"] == [(T0, 30.0), (T0 + 10, 10.0)]


def test_downsampling_averages_old_buckets_and_retention_drops_the_oldest(history) -> None:
    h, clock = history
    assert [step for _, step in TIERS] == [10, 300, 1800]
    for i in range(60):  # ten minutes at 10 s: 0, 10, ..., 590 -> cpu 0..59
        h.record("c", [node("head", cpu=float(i))], at=T0 + 10 * i)
    clock.now = T0 + 3600 + 700  # an hour and more later: both 5-minute buckets are past full resolution
    h.compact()
    assert values(h.points(since=T0 - 1), "cpu_percent", "head") == [(T0, 14.5), (T0 + 300, 44.5)]  # 0..29, 30..59
    clock.now = T0 + 86400 + 2000  # past a day: into half hours, weighted by the readings
    h.compact()
    assert values(h.points(since=T0 - 1), "cpu_percent", "head") == [(T0, 29.5)]
    clock.now = T0 + 7 * 86400 + 2000  # past the retention: gone, and the series with it
    h.compact()
    assert h.points(since=0) == []
    with sqlite3.connect(h.store.path) as db:
        assert db.execute("SELECT count(*) FROM series").fetchone() == (0,)


def test_a_compaction_merges_into_a_bucket_it_already_filled(history) -> None:
    h, clock = history
    h.record("c", [node("head", cpu=10)], at=T0)
    clock.now = T0 + 3600 + 400
    h.compact()
    h.record("c", [node("head", cpu=40)], at=T0 + 20)  # a late writer, into the same 5 minutes
    h.compact()
    assert values(h.points(since=T0 - 1), "cpu_percent", "head") == [(T0, 25.0)]


def test_the_long_frame_has_the_points_rows(history) -> None:
    h, clock = history
    h.record("c", [node("head", cpu=40), node("w1", cpu=20)], at=T0)
    frame = h.frame(since=T0 - 1, metrics=["cpu_percent", "nodes_alive"])
    assert list(frame.columns) == ["time", "cluster", "node_id", "metric", "value"]
    expected = sorted(
        (p.node_id or "", p.metric, p.value) for p in h.points(since=T0 - 1, metrics=["cpu_percent", "nodes_alive"])
    )
    assert sorted(zip(frame.node_id.fillna(""), frame.metric, frame.value, strict=True)) == expected
    assert len(expected) == 4 and frame.time.dt.tz is not None and (frame.time == frame.time.iloc[0]).all()
    assert frame[frame.metric == "nodes_alive"].node_id.isna().all()
    assert h.frame(since=T0 + 100).empty


def test_reading_by_cluster_node_metric_and_time(history) -> None:
    h, clock = history
    h.record("a", [node("head", cpu=10)], at=T0)
    h.record("b", [node("head", cpu=20)], at=T0 + 10)
    assert {p.cluster for p in h.points(since=T0 - 1, cluster="b")} == {"b"}
    only = h.points(since=T0 - 1, metrics=["cpu_percent"], node="head", until=T0 + 5)
    assert [(p.cluster, p.value) for p in only] == [("a", 10.0)]
    assert {p.node_id for p in h.points(since=T0 - 1, node="")} == {None}
    with pytest.raises(ValueError, match="unknown metric"):
        h.points(since=0, metrics=["cpu"])
    assert "cpu_percent" in METRICS


def test_sparklines_are_each_clusters_percentages_a_minute_apart_with_gaps_kept(history) -> None:
    import dataclasses

    h, clock = history
    physical = dataclasses.replace(node("head", cpu=40), host_memory_total_bytes=4e9)  # 1 of 4 GB used
    logical = dataclasses.replace(node("head", cpu=10), cluster="d", memory_used_bytes=2e9)  # 2 of 8 GB
    for minute in (0, 1, 3):  # nothing read in minute 2
        for second in (0, 30):
            h.record("c", [dataclasses.replace(physical, cpu_percent=40.0 + second)], at=T0 + 60 * minute + second)
    h.record("d", [logical], at=T0 + 60)
    lines = h.sparklines(since=T0, until=T0 + 60 * 4)
    assert set(lines) == {"c", "d"}
    c = lines["c"]
    assert (c["start"], c["step"]) == (T0, 60)
    assert c["cpu"] == [55.0, 55.0, None, 55.0, None]  # each minute's mean; the gap stays a gap
    assert c["memory"] == [25.0, 25.0, None, 25.0, None]  # host memory used of total
    assert c["gpu"] == [None] * 5
    assert lines["d"]["memory"] == [None, 25.0, None, None, None]  # no host total: Ray's logical memory
    assert lines["d"]["cpu"] == [None, 10.0, None, None, None]
