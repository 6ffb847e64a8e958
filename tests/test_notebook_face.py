"""The magics through a real InteractiveShell and the panel's widget model, on real clusters."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import castray_nb.api as api
from castray_nb.core.model import ClusterState
from castray_nb.core.render import render_table
from castray_nb.core.session import Session
from castray_nb.launch import LocalCluster, free_ports
from castray_nb.widgets import Panel
from tests.conftest import HOME, wait_until


@pytest.fixture
def shell(settings) -> Iterator[InteractiveShell]:
    """An IPython shell with the extension loaded (twice: harmless) and a fresh default session."""
    previous = api._default
    api._default = Session(settings)
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # its database would live in the test HOME, removed at the end
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "castray_nb")
    ip.run_line_magic("load_ext", "castray_nb")
    try:
        yield ip
    finally:
        api._default.detach_all()
        api._default = previous


def run(ip: InteractiveShell, line: str):
    result = ip.run_cell(line, store_history=False)
    return result


def refresh_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "castray-refresh"]


def test_magics_connect_nodes_clusters_discover(shell, head, headless) -> None:
    result = run(shell, f"state = %castray connect {head.gcs_address} --name main")
    assert result.success
    state = shell.user_ns["state"]
    assert isinstance(state, ClusterState) and state.name == "main" and state.reachable

    assert run(shell, f"%castray connect {headless.gcs_address}").success
    assert run(shell, "df = %castray nodes --external --alive").success
    frame = shell.user_ns["df"]
    assert isinstance(frame, pd.DataFrame) and set(frame.state) == {"ALIVE"}
    assert {"main", headless_name(shell)} <= set(frame.cluster)

    assert run(shell, "c = %castray clusters").success
    assert list(shell.user_ns["c"].name) == ["main", headless_name(shell)]
    assert run(shell, "d = %castray discover").success
    assert head.gcs_address in set(shell.user_ns["d"].gcs_address)
    assert run(shell, "j = %castray discover --json").success
    assert any(c["gcs_address"] == headless.gcs_address for c in shell.user_ns["j"])
    assert run(shell, "s = %castray status").success
    assert shell.user_ns["s"]["attached"] == ["main", headless_name(shell)]
    assert run(shell, "gone = %castray disconnect main").success
    assert shell.user_ns["gone"] == ["main"]


def headless_name(ip: InteractiveShell) -> str:
    return [c.name for c in api._default.clusters() if c.info.dashboard_url is None][0]


@pytest.mark.parametrize(
    "line",
    [
        "%castray connect ''",
        "%castray connect 'not an address'",
        "%castray connect 127.0.0.1:70000",
        "%castray connect gopher://127.0.0.1:70",
        "%castray connect ray://127.0.0.1:10001",
        "%castray connect 'a;rm -rf ~:1'",
        "%castray connect CLOSED",
        "%castray disconnect nobody",
        "%castray disconnect",
        "%castray nodes --local --external",
        "%castray panel --interval 0",
        "%castray frobnicate",
    ],
)
def test_bad_input_is_one_usage_error_and_the_session_survives(shell, head, line: str) -> None:
    (closed,) = free_ports(1)
    assert run(shell, f"%castray connect {head.gcs_address} --name keep").success
    with capture_output() as captured:
        result = run(shell, line.replace("CLOSED", f"127.0.0.1:{closed}"))
    assert not result.success
    assert isinstance(result.error_in_exec or result.error_before_exec, UsageError)
    assert "Traceback" not in captured.stdout + captured.stderr
    assert [c.name for c in api._default.clusters()] == ["keep"]


def test_help(shell) -> None:
    with capture_output() as captured:
        assert run(shell, "%castray --help").success
        assert run(shell, "%castray connect --help").success
    assert "discover" in captured.stdout and "--driver" in captured.stdout
    assert "%castray" in (shell.find_line_magic("castray").__doc__ or "")


def test_the_panel_follows_a_worker_joining_and_dying(head, settings) -> None:
    session = Session(settings)
    interval = 0.5
    panel = Panel(session, interval=interval)
    try:
        (info,) = [c for c in __import__("castray_nb").core.discover(settings) if c.gcs_address == head.gcs_address]
        session.attach(info, "main")
        wait_until(lambda: "ALIVE" in panel.table.value and "head" in panel.table.value, 10)
        before = set(r.node_id for r in session.rows())

        worker = head.add_worker()  # returns once the cluster lists it ALIVE
        seen_at = time.monotonic()
        new_id = wait_until(lambda: ({r.node_id for r in session.rows()} - before) or None, 2 * interval + 3.0).pop()
        wait_until(lambda: new_id in panel.table.value, 2 * interval + 1.0)
        assert time.monotonic() - seen_at <= 2 * interval + 4.0
        assert "background:rgba(255, 212, 0, 0.28)" in panel.table.value  # the new row is highlighted

        worker.stop()
        wait_until(lambda: _row_html(panel, new_id) and "DEAD" in _row_html(panel, new_id), 60)
        assert "main" in panel.status.value and "alive" in panel.status.value
    finally:
        panel.close()
    wait_until(lambda: not refresh_threads(), 5)
    assert not session.watching


def _row_html(panel: Panel, node_id: str) -> str:
    html = panel.table.value
    start = html.find(f"data-node-id='{node_id}'")
    return "" if start < 0 else html[start : html.find("</tr>", start)]


@pytest.mark.slow
def test_a_stopped_cluster_shows_unreachable_while_local_rows_stay(headless, settings) -> None:
    import ray

    session = Session(settings)
    panel = Panel(session, interval=0.5)
    doomed = LocalCluster(home=HOME).start()
    ray.init(address=headless.gcs_address, logging_level="ERROR", log_to_driver=False)
    try:
        (info,) = [c for c in __import__("castray_nb").core.discover(settings) if c.gcs_address == doomed.gcs_address]
        session.attach(info, "doomed")
        wait_until(lambda: "doomed" in panel.table.value and "local" in panel.table.value, 10)
        doomed.stop()
        wait_until(lambda: "UNREACHABLE" in panel.table.value, 2 * 0.5 + settings.http_timeout + 5)
        local = session.rows(source="local")
        assert local and {r.state for r in local} == {"ALIVE"}, "local rows stay"
        assert "unreachable" in panel.status.value
        assert "unreachable" in panel.messages.value
    finally:
        ray.shutdown()
        panel.close()
        doomed.stop()
    session.refresh()
    assert not session.rows(source="local"), "local rows leave with the driver"


def test_no_background_output_reaches_cell_outputs(shell, head) -> None:
    assert run(shell, f"%castray connect {head.gcs_address}").success
    (closed,) = free_ports(1)
    # an attachment that fails on every refresh: its errors must land in the panel only
    broken = api._default.clusters()[0].info.__class__(
        name="ghost", gcs_address=f"127.0.0.1:{closed}", dashboard_url=None, ray_version=None,
        session_dir=None, num_nodes=None, auth_required=False, sources=("test",),
    )  # fmt: skip
    api._default.attach(broken, "ghost", refresh=False)
    with capture_output() as captured:
        assert run(shell, "p = %castray panel --interval 0.2").success
        time.sleep(2.0)
    panel = shell.user_ns["p"]
    try:
        assert captured.stdout == "" and captured.stderr == "", (captured.stdout, captured.stderr)
        assert "ghost" in panel.status.value and "unreachable" in panel.status.value
    finally:
        panel.close()
    wait_until(lambda: not refresh_threads(), 5)


def test_headless_fallbacks_are_readable_tables(head, settings) -> None:
    session = Session(settings)
    (info,) = [c for c in __import__("castray_nb").core.discover(settings) if c.gcs_address == head.gcs_address]
    session.attach(info, "main")
    panel = Panel(session, interval=5)
    try:
        bundle = panel._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert "<table" in bundle["text/html"] and "ALIVE" in bundle["text/html"]
        assert "main" in bundle["text/plain"] and "ALIVE" in bundle["text/plain"]
    finally:
        panel.close()


def test_render_table_escapes_and_scales(head, settings) -> None:
    import dataclasses

    from castray_nb.core.client import ClusterClient

    (row,) = [
        r for r in ClusterClient(head.gcs_address, head.dashboard_url, settings).read(cluster="x").nodes if r.is_head
    ]
    nasty = dataclasses.replace(row, cluster="<script>alert(1)</script>")
    html = render_table([nasty], set())
    assert "<script>" not in html and "&lt;script&gt;" in html
    many = [dataclasses.replace(row, node_id=f"{i:056x}") for i in range(1000)]
    started = time.perf_counter()
    html = render_table(many, set())
    assert html.count("<tr ") + html.count("<tr>") >= 1000
    assert time.perf_counter() - started < 5  # a sanity bound, not a benchmark
