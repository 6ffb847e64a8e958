"""History against a real cluster and a real Jupyter server, as a user meets it.

One story, in order, on a cluster of its own (it is stopped at the end): the server records
with no page open; a worker joins; a job fails; the worker is killed; the server is killed
with SIGKILL and started again; the whole cluster is stopped. Then the history is read
through Python, the command line and REST: each node's series, the death with its time and
reason, the job's status events, and the ended cluster with its last snapshot.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from castray_nb.core import past
from castray_nb.core.history import History
from castray_nb.core.settings import Settings
from castray_nb.core.store import Store
from castray_nb.launch import LocalCluster
from tests.conftest import HOME, wait_until
from tests.jupyter import JupyterServer, jupyter_server
from tests.prometheus import prometheus_server
from tests.test_jobs import ray_job_submit
from tests.test_server import call

INTERVAL = 1.0  # the server's refresh (and so recording) interval in this test
# Ray notices a killed node by missed health checks: every second, three missed.
FAST_DEATH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3",
              "RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_timeout_ms": "1000"}  # fmt: skip


def events(server: JupyterServer, query: str = "") -> list[dict[str, Any]]:
    status, body = call(server, "GET", "/events?since=1h" + query)
    assert status == 200, body
    return body["events"]


def kinds(server: JupyterServer) -> list[str]:
    return [e["kind"] for e in events(server)]


@pytest.fixture(scope="module")
def story() -> Iterator[dict[str, Any]]:
    """Everything the story did and saw, for the tests below to check."""
    seen: dict[str, Any] = {}
    cluster = LocalCluster(home=HOME, env=FAST_DEATH)
    env = {"CASTRAY_REFRESH_INTERVAL": str(INTERVAL)}
    try:
        cluster.start()
        # Prometheus scrapes the same cluster, found through the file Ray writes for it.
        discovery = Path(cluster.temp_dir) / "prom_metrics_service_discovery.json"
        wait_until(discovery.is_file, 30)
        with prometheus_server([discovery]) as prometheus, jupyter_server(env=env) as server:
            data_dir = Path(server.env["JUPYTER_DATA_DIR"])
            seen.update(server=server, data_dir=data_dir, cluster=cluster)
            status, body = call(server, "POST", "/cluster/connect-external", {"cluster_address": cluster.gcs_address,
                                                                             "name": "hist"})  # fmt: skip
            assert status == 200, body
            seen["session_name"] = body["cluster"]["session_name"]
            # No page, no socket: the server records on its own.
            wait_until(lambda: len(history_rows(server, "&metric=nodes_alive")) >= 3, 30)

            worker = cluster.add_worker()
            seen["joined_at"] = time.time()
            wait_until(lambda: "node_joined" in kinds(server), 30)

            job = f"fails-{os.getpid()}"
            seen["job"] = job
            ray_job_submit(cluster, job, "import sys; sys.exit('the job failed on purpose')")
            wait_until(lambda: any(e["job"] == job and "FAILED" in e["message"] for e in events(server)), 120, 1)

            worker_id = next(e["node_id"] for e in events(server) if e["kind"] == "node_joined")
            seen["worker_id"] = worker_id
            # The worker lives only seconds: it dies only once Prometheus has scraped its agent
            # (Ray lists it in the discovery file a few seconds after it joins).
            worker_seen = f'ray_node_cpu_count{{SessionName="{seen["session_name"]}",IsHeadNode=~"(?i)false"}}'
            wait_until(lambda: prometheus.query(worker_seen), 60, 1)
            os.killpg(worker.process.pid, signal.SIGKILL)  # the node is killed, not drained
            seen["killed_at"] = time.time()
            wait_until(lambda: "node_died" in kinds(server), 60)

            # The server is killed while it records, and started again.
            history = History(Store(data_dir / "castray_nb" / "castray.sqlite3"))
            wait_until(lambda: time.time() - (history.last_reading("hist") or 0) < 2 * INTERVAL, 20, 0.1)
            assert server.process is not None
            os.killpg(server.process.pid, signal.SIGKILL)
            seen["server_killed_at"] = time.time()
            server.process.wait(10)
            server.process = None
            seen["last_before_kill"] = history.last_reading("hist")
            with sqlite3.connect(history.store.path) as db:
                seen["integrity"] = db.execute("PRAGMA integrity_check").fetchone()[0]
            server.start()
            seen["restarted_at"] = time.time()
            wait_until(lambda: (history.last_reading("hist") or 0) > seen["restarted_at"], 60, 0.5)

            cluster.stop()
            seen["stopped_at"] = time.time()
            wait_until(lambda: "cluster_ended" in kinds(server), 60)
            seen["events"] = events(server)
            seen["rest_history"] = history_rows(server, "")
            status, seen["rest_ended"] = call(server, "GET", "/ended")
            assert status == 200
            status, seen["rest_sparklines"] = call(server, "GET", "/sparklines?since=1h")
            assert status == 200, seen["rest_sparklines"]
            assert call(server, "GET", "/sparklines?since=yesterday")[0] == 400
            seen["settings"] = Settings()
            (last,) = [c for c in history.seen() if c.session_name == seen["session_name"]]
            seen["head_id"] = next(n["node_id"] for n in last.snapshot["nodes"] if n["is_head"])  # type: ignore[attr-defined, index]
            seen["prometheus"] = prometheus
            yield seen
    finally:
        cluster.stop()


def history_rows(server: JupyterServer, query: str) -> list[dict[str, Any]]:
    status, body = call(server, "GET", "/history?cluster=hist&since=1h" + query)
    assert status == 200, body
    return body["history"]


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JUPYTER_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "castray_nb.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_each_node_has_its_series_and_the_cluster_its_totals(story, monkeypatch) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(story["data_dir"]))
    frame = past.history(Settings(), cluster="hist", since="1h")
    assert list(frame.columns) == ["time", "cluster", "node_id", "metric", "value"]
    nodes = set(frame.node_id.dropna())
    assert story["worker_id"] in nodes and len(nodes) == 2  # the head and the worker
    worker = frame[(frame.node_id == story["worker_id"]) & (frame.metric == "alive")]
    assert worker.value.max() == 1.0 and worker.value.min() < 1.0, list(worker.value)  # alive, then dead
    alive = frame[frame.node_id.isna() & (frame.metric == "nodes_alive")].sort_values("time")
    # A bucket holds the mean of its readings (10 s of them), so the buckets the worker
    # joined and died in hold a fraction: the count rose above one, then fell back.
    peak = int(alive.value.to_numpy().argmax())
    assert alive.value.iloc[0] == 1.0 and alive.value.iloc[peak] > 1.0, list(alive.value)
    assert alive.value.iloc[-1] < alive.value.iloc[peak], list(alive.value)
    cpu = frame[(frame.metric == "cpu_percent") & frame.node_id.notna()]
    assert not cpu.empty and (cpu.value >= 0).all()  # the dashboard's physical usage, recorded
    # The same through the session name, and the same rows through REST.
    assert len(past.history(Settings(), cluster=story["session_name"], since="1h")) == len(frame)
    rest = story["rest_history"]
    assert {r["node_id"] for r in rest} >= nodes | {None}


def test_the_sidebars_sparklines_are_the_recorded_totals_a_minute_apart(story) -> None:
    lines = story["rest_sparklines"]["clusters"]["hist"]
    assert lines["step"] == 60 and len(lines["cpu"]) == len(lines["gpu"]) == len(lines["memory"]) >= 60
    cpu = [v for v in lines["cpu"] if v is not None]
    memory = [v for v in lines["memory"] if v is not None]
    assert cpu and memory and all(0 <= v <= 100 for v in cpu + memory), lines
    assert lines["cpu"][-1] is not None or lines["cpu"][-2] is not None  # recorded until the cluster ended
    assert all(v is None for v in lines["gpu"])  # no GPU here: gaps, never zeros


def test_prometheus_scraping_the_same_cluster_gives_the_same_columns(story, monkeypatch) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(story["data_dir"]))
    store = past.history(Settings(), cluster="hist", since="1h")
    prom = past.history(Settings(prometheus_url=story["prometheus"].url), cluster="hist", since="1h")
    assert list(prom.columns) == list(store.columns) and dict(prom.dtypes) == dict(store.dtypes)
    assert set(prom.cluster) == {"hist"}  # named as the store recorded the session
    # Both nodes found by their IP and head-ness in the store's last snapshot, with their ids.
    assert set(prom.node_id.dropna()) == {story["head_id"], story["worker_id"]}, set(prom.node_id.dropna())
    alive = prom[prom.node_id.isna() & (prom.metric == "nodes_alive")]
    assert alive.value.max() == 2.0, list(alive.value)

    def head_total(frame):
        rows = frame[(frame.node_id == story["head_id"]) & (frame.metric == "host_memory_total_bytes")]
        return rows.value.median()

    assert head_total(prom) == pytest.approx(head_total(store), rel=0.01)  # one machine, read two ways
    cpu = prom[(prom.metric == "cpu_percent") & (prom.node_id == story["head_id"])]
    assert len(cpu) >= 3 and ((cpu.value >= 0) & (cpu.value <= 100)).all()  # a series over the story


def test_the_death_is_an_event_with_its_time_and_reason(story) -> None:
    deaths = [e for e in story["events"] if e["kind"] == "node_died"]
    assert [d["node_id"] for d in deaths] == [story["worker_id"]]
    died = time.mktime(time.strptime(deaths[0]["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert story["killed_at"] - 2 <= died <= story["killed_at"] + 30
    assert deaths[0]["message"] and "no reason given" not in deaths[0]["message"]
    joined = [e for e in story["events"] if e["kind"] == "node_joined" and e["node_id"] == story["worker_id"]]
    assert len(joined) == 1  # once, also after the server's restart


def test_the_jobs_status_changes_are_events(story) -> None:
    statuses = [e["message"] for e in story["events"] if e["job"] == story["job"]]
    assert statuses and "FAILED" in statuses[-1]
    assert all(e["kind"] == "job_status" for e in story["events"] if e["job"] == story["job"])


def test_a_sigkill_of_the_server_loses_at_most_one_refresh_and_corrupts_nothing(story) -> None:
    assert story["integrity"] == "ok"
    lost = story["server_killed_at"] - story["last_before_kill"]
    assert lost <= INTERVAL + 1.0, f"{lost:.2f} s before the SIGKILL were not recorded"
    kinds_in_order = [e["kind"] for e in story["events"]]
    assert kinds_in_order.count("cluster_attached") >= 2  # attached, and attached again on restart


def test_the_ended_cluster_is_listed_with_its_last_snapshot(story, monkeypatch) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(story["data_dir"]))
    (ended,) = [c for c in past.ended(Settings()) if c.session_name == story["session_name"]]
    assert ended.cluster == "hist" and ended.ended_at is not None
    assert story["stopped_at"] - 5 <= ended.ended_at <= story["stopped_at"] + 60
    states = {n["node_id"]: n["state"] for n in ended.snapshot["nodes"]}  # type: ignore[union-attr]
    assert states[story["worker_id"]] == "DEAD" and "ALIVE" in states.values()
    jobs = {j["submission_id"]: j["status"] for j in ended.snapshot["jobs"]}  # type: ignore[union-attr]
    assert jobs.get(story["job"]) == "FAILED"
    rest = [c for c in story["rest_ended"]["clusters"] if c["session_name"] == story["session_name"]]
    assert rest and rest[0]["ended"] and rest[0]["snapshot"]["nodes"]
    assert [e["kind"] for e in story["events"]][-1] in ("cluster_ended", "cluster_unreachable")


def test_the_command_line_reads_the_same_store_with_no_server(story) -> None:
    result = cli(story["data_dir"], "events", "--json", "--cluster", "hist", "--since", "1h")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {"node_joined", "node_died", "job_status", "cluster_ended"} <= {r["kind"] for r in rows}
    result = cli(story["data_dir"], "history", "--json", "--cluster", "hist", "--since", "10m", "--metric", "alive")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows and {r["metric"] for r in rows} == {"alive"} and story["worker_id"] in {r["node_id"] for r in rows}
    bad = cli(story["data_dir"], "history", "--since", "yesterday")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not a duration" in bad.stderr
    ended = cli(story["data_dir"], "ended", "--json")
    assert story["session_name"] in {c["session_name"] for c in json.loads(ended.stdout)}
