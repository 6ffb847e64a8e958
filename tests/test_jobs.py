"""Jobs across attached clusters, against real clusters: jobs submitted from outside with
Ray's own ``ray job submit``, a driver job from another process's ``ray.init``, the table
over two clusters, status events (subscriber and WebSocket), logs and ``--follow`` (also
interrupted), a cluster without a dashboard, and every front end."""

from __future__ import annotations

import _thread
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import castray_nb.api as api
from castray_nb.core.changes import job_events
from castray_nb.core.errors import InvalidArgument, UnknownJob
from castray_nb.core.jobs import JOB_COLUMNS, job_from_api, ordered
from castray_nb.core.model import Event
from castray_nb.core.session import Session
from castray_nb.launch import LocalCluster
from tests.conftest import HOME, wait_until
from tests.jupyter import jupyter_server
from tests.test_notebook_face import run, shell  # noqa: F401 (the fixture)
from tests.test_server import EventSocket, call

CAPTURED = Path(__file__).resolve().parent.parent / "castray_nb" / "testing" / "captured" / "jobs.json"
TICKS = "import time\nfor i in range({n}):\n    print('tick', i, flush=True)\n    time.sleep(1)\n"


def ray_job_submit(cluster: LocalCluster, submission_id: str, code: str) -> None:
    """``ray job submit --no-wait`` from another process, with the cluster's own Ray (its
    ``ray`` and the Python beside it), as a user would."""
    assert cluster.dashboard_url
    python = str(Path(cluster.ray).with_name("python"))
    command = [cluster.ray, "job", "submit", "--address", cluster.dashboard_url, "--submission-id",
               submission_id, "--no-wait", "--", python, "-c", code]  # fmt: skip
    result = subprocess.run(command, env={**os.environ, "HOME": HOME}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def status_of(session: Session, job: str) -> str:
    return session.job(job)[0].status


@pytest.fixture(scope="module")
def other() -> Iterator[LocalCluster]:
    """A second cluster with a dashboard, for two clusters' jobs in one table."""
    cluster = LocalCluster(home=HOME)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def submitted(head: LocalCluster, other: LocalCluster) -> dict[str, str]:
    """Jobs from outside: a quick one on each cluster, one that fails with a message."""
    ids = {"ok": f"ok-{os.getpid()}", "other": f"other-{os.getpid()}", "fails": f"fails-{os.getpid()}"}
    ray_job_submit(head, ids["ok"], "print('hello from a job')")
    ray_job_submit(other, ids["other"], "print('hello from the other cluster')")
    ray_job_submit(head, ids["fails"], "import sys; print('about to fail'); sys.exit('the job failed on purpose')")
    with Session() as session:
        session.connect(head.dashboard_url or "", name="head")
        session.connect(other.dashboard_url or "", name="other")
        for job in ids.values():
            wait_until(lambda job=job: status_of(session, job) in ("SUCCEEDED", "FAILED"), 120, 1)
    return ids


@pytest.fixture
def session(head: LocalCluster, other: LocalCluster) -> Iterator[Session]:
    with Session() as s:
        s.connect(head.dashboard_url or "", name="head")
        s.connect(other.dashboard_url or "", name="other")
        yield s


# --- parsing, order and events, on a real cluster's captured reply -------------------------


def test_a_captured_reply_becomes_rows_in_the_contracts_columns() -> None:
    raw = json.loads(CAPTURED.read_text())
    jobs = [job_from_api(r, cluster="c") for r in raw]
    assert JOB_COLUMNS[:11] == ("cluster", "job_id", "submission_id", "type", "status", "entrypoint", "start_time",
                                "end_time", "duration_s", "message", "driver_node_id")  # fmt: skip
    kinds = {j.key: (j.type, j.status) for j in jobs}
    assert kinds == {"quick-ok": ("SUBMISSION", "SUCCEEDED"), "fails": ("SUBMISSION", "FAILED"),
                     "02000000": ("DRIVER", "SUCCEEDED")}  # fmt: skip
    failed = next(j for j in jobs if j.key == "fails")
    assert "failed on purpose" in (failed.message or "") and failed.error_type == "JOB_ENTRYPOINT_COMMAND_ERROR"
    assert failed.duration_s is not None and 0 < failed.duration_s < 60 and failed.driver_exit_code == 1


def test_running_jobs_come_first_then_the_most_recent_and_changes_are_events() -> None:
    raw = json.loads(CAPTURED.read_text())
    old = [job_from_api(r, cluster="c") for r in raw]
    running = job_from_api({**raw[0], "submission_id": "new", "status": "RUNNING", "end_time": None}, cluster="c")
    assert [j.key for j in ordered([*old, running])] == ["new", "02000000", "fails", "quick-ok"]
    changed = job_from_api({**raw[0], "submission_id": "new", "status": "SUCCEEDED"}, cluster="c")
    (added,) = job_events("c", old, [*old, running])
    assert (added.kind, added.job_id, added.detail) == ("job_added", "new", "RUNNING")
    (event,) = job_events("c", [*old, running], [*old, changed])
    assert (event.kind, event.job_id, event.detail) == ("job_status_changed", "new", "RUNNING -> SUCCEEDED")
    assert event.to_json()["job_id"] == "new"


# --- real clusters -------------------------------------------------------------------------


def test_two_clusters_jobs_in_one_table(session: Session, submitted: dict[str, str]) -> None:
    found, skipped = session.jobs()
    assert skipped == {}
    by_key = {j.key: j for j in found}
    assert by_key[submitted["ok"]].cluster == "head" and by_key[submitted["other"]].cluster == "other"
    assert by_key[submitted["ok"]].status == "SUCCEEDED" and by_key[submitted["ok"]].type == "SUBMISSION"
    failed = by_key[submitted["fails"]]
    assert failed.status == "FAILED" and "failed on purpose" in (failed.message or "")
    assert "hello from a job" in session.job_logs(submitted["ok"])  # found in whichever cluster has it
    only_failed, _ = session.jobs(status="failed")
    assert {j.key for j in only_failed} >= {submitted["fails"]} and {j.status for j in only_failed} == {"FAILED"}


def test_a_driver_job_shows_as_driver_and_says_it_has_no_logs(session: Session, head: LocalCluster) -> None:
    script = (
        f"import ray; ray.init(address={head.gcs_address!r}); print('driver', ray.get_runtime_context().get_job_id())"
    )
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, "HOME": HOME}, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    job_id = result.stdout.split()[-1]
    (driver,) = [j for j in session.jobs(cluster="head")[0] if j.job_id == job_id]
    assert driver.type == "DRIVER" and driver.submission_id is None and driver.entrypoint
    with pytest.raises(InvalidArgument, match="DRIVER job"):
        session.job_logs(job_id, cluster="head")
    with pytest.raises(UnknownJob):
        session.job_logs("no-such-job")


def test_a_cluster_without_a_dashboard_is_skipped_with_its_reason(session: Session, headless: LocalCluster) -> None:
    session.connect(headless.gcs_address, name="blind")
    found, skipped = session.jobs()
    assert "no dashboard" in skipped["blind"] and found
    assert api.jobs.__doc__ and "skipped" in api.jobs.__doc__


def test_status_events_reach_a_subscriber(session: Session, head: LocalCluster) -> None:
    seen: list[Event] = []
    session.subscribe(seen.append)
    watch = session.watch(0.5, jobs=True)
    try:
        time.sleep(1.5)  # the first read is the baseline: no events for jobs that were there
        assert not [e for e in seen if e.kind.startswith("job_")]
        job = f"watched-{os.getpid()}"
        ray_job_submit(head, job, "import time; time.sleep(2); print('done')")
        wait_until(lambda: any(e.kind == "job_added" and e.job_id == job for e in seen), 60)
        wait_until(lambda: any(e.kind == "job_status_changed" and e.job_id == job and e.detail.endswith("SUCCEEDED")
                               for e in seen), 90)  # fmt: skip
        changes = [e.detail for e in seen if e.job_id == job and e.kind == "job_status_changed"]
        assert changes[-1].endswith("-> SUCCEEDED") and all(" -> " in c for c in changes)
    finally:
        watch.stop()


def test_follow_streams_the_log_until_the_job_ends(head: LocalCluster) -> None:
    job = f"long-{os.getpid()}"
    ray_job_submit(head, job, TICKS.format(n=6))
    command = [sys.executable, "-m", "castray_nb.cli", "logs", job, "--address", head.dashboard_url or "", "--follow"]
    follow = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "HOME": HOME})
    assert follow.stdout is not None
    seen: list[tuple[float, str]] = []
    for line in follow.stdout:
        seen.append((time.monotonic(), line.strip()))
    assert follow.wait(60) == 0
    ticks = [(t, line) for t, line in seen if line.startswith("tick")]
    assert [line for _, line in ticks] == [f"tick {i}" for i in range(6)]
    assert ticks[-1][0] - ticks[0][0] > 3  # streamed as written, not printed at the end


def test_an_interrupt_during_follow_leaves_the_process_and_the_session_intact(shell, head: LocalCluster) -> None:  # noqa: F811
    job = f"interrupted-{os.getpid()}"
    ray_job_submit(head, job, TICKS.format(n=40))
    # the command line: Ctrl+C ends it with one line and exit code 130
    follow = subprocess.Popen([sys.executable, "-m", "castray_nb.cli", "logs", job, "--address", head.dashboard_url
                               or "", "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "HOME": HOME})  # fmt: skip
    assert follow.stdout is not None
    for line in follow.stdout:
        if line.startswith("tick 1"):
            break
    follow.send_signal(signal.SIGINT)
    _, err = follow.communicate(timeout=30)
    assert follow.returncode == 130 and err.strip().splitlines() == ["castray-nb: interrupted"]
    # the magic: an interrupt (the notebook's stop button) ends the follow, not the kernel
    assert run(shell, f"%castray connect {head.dashboard_url} --name head").success
    timer = threading.Timer(4.0, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    result = run(shell, f"%castray logs {job} --follow")
    timer.cancel()
    assert result.success and result.error_in_exec is None and 3 < time.monotonic() - started < 20
    assert [c.name for c in api._default.clusters()] == ["head"]  # the session is intact
    wait_until(lambda: not [t for t in threading.enumerate() if t.name == "castray-log-tail"], 10, 0.2)
    assert run(shell, "after = 1 + 1").success and shell.user_ns["after"] == 2  # the kernel goes on


def test_the_magics_list_submit_and_print_logs(shell, head: LocalCluster, submitted: dict[str, str]) -> None:  # noqa: F811
    assert run(shell, f"%castray connect {head.dashboard_url} --name head").success
    assert run(shell, "failed = %castray jobs --status FAILED").success
    assert submitted["fails"] in set(shell.user_ns["failed"].submission_id)
    entrypoint = "python -c \"print('kept  as   written')\""  # the spaces and quotes go to Ray as typed
    assert run(shell, f"sid = %castray submit --cluster head -- {entrypoint}").success
    sid = shell.user_ns["sid"]
    wait_until(lambda: api._default.job(sid)[0].status == "SUCCEEDED", 90, 1)
    assert api._default.job(sid)[0].entrypoint == entrypoint
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        assert run(shell, f"%castray logs {sid}").success
    assert "kept  as   written" in out.stdout
    bad = run(shell, "%castray submit --cluster head")
    assert bad.error_in_exec is not None and "after ' -- '" in str(bad.error_in_exec)
    assert run(shell, "%castray jobs --status sideways").error_in_exec is not None


def test_the_rest_api_and_the_command_line(head: LocalCluster, submitted: dict[str, str]) -> None:
    with jupyter_server(env={"HOME": HOME}) as server:
        status, body = call(server, "POST", "/cluster/connect-external", {"cluster_address": head.dashboard_url,
                                                                           "name": "head"})  # fmt: skip
        assert status == 200, body
        status, body = call(server, "GET", "/jobs?status=FAILED")
        assert status == 200 and body["columns"][:5] == list(JOB_COLUMNS[:5])
        assert submitted["fails"] in {j["submission_id"] for j in body["jobs"]} and body["skipped"] == {}
        status, body = call(server, "GET", f"/jobs/head/{submitted['ok']}/logs")
        assert status == 200 and "hello from a job" in body["logs"]
        assert call(server, "GET", "/jobs/head/no-such-job/logs")[1]["error"] == "unknown_job"
        assert call(server, "GET", "/jobs?status=sideways")[0] == 400
        assert call(server, "GET", "/jobs?cluster=nope")[0] == 404
        socket = EventSocket(server, query="?interval=0.5&jobs=true")
        try:
            socket.wait_for(lambda m: m["type"] == "hello", 10)
            time.sleep(1.5)
            job = f"rest-{os.getpid()}"
            ray_job_submit(head, job, "print('over the socket')")
            event = socket.wait_for(lambda m: m.get("kind") == "job_status_changed" and m.get("job_id") == job
                                    and m["detail"].endswith("SUCCEEDED"), 90)  # fmt: skip
            assert event["cluster"] == "head"
        finally:
            socket.close()
        status, body = call(server, "GET", "/jobs?refresh=false")  # what the socket's watch read
        assert status == 200 and job in {j["submission_id"] for j in body["jobs"]}
    command = [sys.executable, "-m", "castray_nb.cli", "jobs", "--address", head.dashboard_url or "", "--json"]
    cli = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HOME": HOME}, timeout=60)
    assert cli.returncode == 0, cli.stderr
    rows: list[dict[str, Any]] = json.loads(cli.stdout)
    assert {submitted["ok"], submitted["fails"]} <= {r["submission_id"] for r in rows}
    assert list(rows[0]) == list(JOB_COLUMNS)
    bad = subprocess.run([sys.executable, "-m", "castray_nb.cli", "jobs", "--status", "sideways"], capture_output=True,
                         text=True, env={**os.environ, "HOME": HOME}, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_the_panels_jobs_section_puts_running_first_and_shows_a_chosen_message_in_full() -> None:
    from castray_nb.testing.replay import ReplayDashboard
    from castray_nb.widgets import JOBS_SHOWN, Panel

    with ReplayDashboard(nodes=2, jobs=120) as url, Session() as session:
        session.connect(url, name="replayed")
        session.refresh_jobs()
        panel = Panel(session, interval=3600)
        try:
            panel.render()
            assert panel.job_choice.layout.display is None  # jobs to pick from: the picker shows
            table = panel.jobs_table.value
            assert "<b>120 job(s)</b>" in table and f"the first {JOBS_SHOWN} shown" in table
            statuses = [part.split("'")[0] for part in table.split("data-status='")[1:]]
            assert len(statuses) == JOBS_SHOWN and statuses[:12] == ["RUNNING"] * 12  # 12 of 120 run
            failed = next(value for label, value in panel.job_choice.options if label.endswith("FAILED"))
            panel.job_choice.value = failed
            message = session.cached_jobs()[0][
                [f"{j.cluster}\x1f{j.key}" for j in session.cached_jobs()[0]].index(failed)
            ]
            assert message.message and message.message.count("\n") >= 3
            for line in message.message.strip().splitlines():  # every line of it, not the first one only
                assert line.replace("'", "&#x27;").replace('"', "&quot;")[:40] in panel.job_detail.value
        finally:
            panel.close()


def test_without_jobs_the_panel_says_so_and_shows_no_picker() -> None:
    from castray_nb.testing.replay import ReplayDashboard
    from castray_nb.widgets import Panel

    with ReplayDashboard(nodes=2, jobs=0) as url, Session() as session:
        session.connect(url, name="idle")
        session.refresh_jobs()
        panel = Panel(session, interval=3600)
        try:
            panel.render()
            assert "No jobs." in panel.jobs_table.value and panel.job_choice.layout.display == "none"
        finally:
            panel.close()
