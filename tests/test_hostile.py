"""Hostile conditions: bad input on every front, garbage on disk, clusters that change
under us, token auth, concurrency, and the security posture. Real clusters and servers."""

from __future__ import annotations

import ast
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import castray_nb
import castray_nb.api as api
from castray_nb.core.client import ClusterClient
from castray_nb.core.connector import resolve
from castray_nb.core.discovery import discover, discover_report
from castray_nb.core.errors import AuthRequired, CastrayError, ClusterUnreachable, InvalidAddress
from castray_nb.core.session import Session
from castray_nb.core.settings import Settings
from castray_nb.launch import LocalCluster, free_ports
from tests.conftest import TOKEN
from tests.servers import not_ray_http, silent_server

PACKAGE = Path(castray_nb.__file__).parent


# --- 1. bad addresses, on every front --------------------------------------------------


@pytest.fixture(scope="module")
def hostile_servers() -> Iterator[dict[str, int]]:
    with not_ray_http() as http_port, silent_server() as silent_port:
        yield {"http": http_port, "silent": silent_port, "closed": free_ports(1)[0]}


BAD_ADDRESSES = {
    "empty": "",
    "blank": "   ",
    "empty port": "127.0.0.1:",
    "wildcard host alone": "0.0.0.0",
    "malformed": "127.0.0.1::6379",
    "port out of range": "127.0.0.1:65536",
    "negative port": "127.0.0.1:-5",
    "closed port": "127.0.0.1:{closed}",
    "file scheme": "file:///etc/passwd",
    "gopher scheme": "gopher://127.0.0.1:70",
    "HTTP but not Ray": "http://127.0.0.1:{http}",
    "silent HTTP": "http://127.0.0.1:{silent}",
    "silent GCS": "127.0.0.1:{silent}",
    "shell metacharacters": "$(touch /tmp/castray-pwned);x:1",
    "backticks": "`touch /tmp/castray-pwned`:1",
    "control characters": "127.0.0.1:63\x1b[2J79",
    "5,000 characters": "a" * 5000,
    "IPv6 without brackets": "::1:6379",
    "IPv6 bracket unclosed": "[::1:6379",
}
# every bad address must fail within the timeouts below plus this much
TIMEOUTS = Settings(probe_timeout=0.5, http_timeout=1.5, gcs_timeout=2.0)
SLACK = 3.0


def _address(key: str, servers: dict[str, int]) -> str:
    return BAD_ADDRESSES[key].format(**servers)


@pytest.fixture(scope="module")
def ray_import_s() -> float:
    """What importing Ray's GCS client costs a fresh process here. A GCS read imports it
    before its deadline starts (it is not the GCS being slow), so a cold CLI may take
    this much longer than its timeout. The tests' own process imports it up front."""
    import ray._raylet  # noqa: F401

    script = "import time; t = time.perf_counter(); import ray._raylet; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("key", list(BAD_ADDRESSES))
def test_bad_address_through_the_python_api(key, hostile_servers, head, ray_import_s) -> None:
    session = Session(TIMEOUTS)
    session.connect(head.gcs_address, name="keep")
    started = time.perf_counter()
    with pytest.raises((InvalidAddress, ClusterUnreachable)) as caught:
        session.connect(_address(key, hostile_servers))
    assert time.perf_counter() - started < TIMEOUTS.gcs_timeout + SLACK
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 500
    assert [c.name for c in session.clusters()] == ["keep"], "nothing lost, nothing added"
    assert not Path("/tmp/castray-pwned").exists()


@pytest.mark.parametrize("key", list(BAD_ADDRESSES))
def test_bad_address_through_the_cli(key, hostile_servers, ray_import_s) -> None:
    env = {**os.environ, "CASTRAY_HTTP_TIMEOUT": "1.5", "CASTRAY_GCS_TIMEOUT": "2"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "castray_nb.cli", "nodes", "--address", _address(key, hostile_servers)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert time.perf_counter() - started < 2.0 + SLACK + 3.0 + ray_import_s  # + interpreter start-up
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not Path("/tmp/castray-pwned").exists()


@pytest.mark.parametrize("key", list(BAD_ADDRESSES))
def test_bad_address_through_the_magics(key, hostile_servers, head, ray_import_s) -> None:
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "castray_nb")
    previous, api._default = api._default, Session(TIMEOUTS)
    try:
        info = resolve(head.gcs_address, TIMEOUTS)
        api._default.attach(info, "keep")
        ip.user_ns["bad_address"] = _address(key, hostile_servers)
        started = time.perf_counter()
        result = ip.run_cell("%castray connect $bad_address", store_history=False)
        assert time.perf_counter() - started < TIMEOUTS.gcs_timeout + SLACK
        assert isinstance(result.error_in_exec or result.error_before_exec, UsageError)
        assert [c.name for c in api._default.clusters()] == ["keep"]
    finally:
        api._default = previous


# --- 2. garbage where discovery reads --------------------------------------------------


def _garbage_temp_dir(root: Path, dead_sessions: int = 0) -> Path:
    temp = root / "ray"
    temp.mkdir(parents=True)
    for i in range(dead_sessions):
        (temp / f"session_2026-01-01_00-00-00_{i:06d}_{i}").mkdir()
    return temp


@pytest.mark.parametrize(
    ("what", "make"),
    [
        (
            "non-UTF-8 ray_current_cluster",
            lambda t: (t / "ray_current_cluster").write_bytes(b"\xff\xfe\x00garbage\x80"),
        ),
        ("nonsense ray_current_cluster", lambda t: (t / "ray_current_cluster").write_text("hello world\n" * 1000)),
        ("port that is not a number", lambda t: (t / "ray_current_cluster").write_text("127.0.0.1:sixty")),
        ("empty ray_current_cluster", lambda t: (t / "ray_current_cluster").write_text("")),
        ("folder where a file should be", lambda t: (t / "ray_current_cluster").mkdir()),
        ("FIFO where a file should be", lambda t: os.mkfifo(t / "ray_current_cluster")),
        (
            "file where a session folder should be",
            lambda t: (t / "session_2026-01-01_00-00-00_000001_1").write_text("x"),
        ),
        ("garbage port files in a session", lambda t: _garbage_session(t)),
        ("dangling symlink", lambda t: (t / "ray_current_cluster").symlink_to(t / "nowhere")),
    ],
)
def test_garbage_on_disk_never_breaks_discovery(what, make, tmp_path, head, headless) -> None:
    temp = _garbage_temp_dir(tmp_path)
    make(temp)
    started = time.perf_counter()
    report = discover_report(Settings(temp_dirs=(str(temp),)))
    assert time.perf_counter() - started < 5
    assert not report.source_errors, report.source_errors
    gcs = {c.gcs_address for c in report.clusters}
    assert {head.gcs_address, headless.gcs_address} <= gcs


def _garbage_session(temp: Path) -> None:
    session = temp / "session_2026-01-01_00-00-00_000002_2"
    session.mkdir()
    (session / "gcs_server_port_abc").write_text("not a port")
    (session / "node_ip_address.json").write_bytes(b"\x00\x01{")


def test_a_temp_dir_that_is_a_file_or_unreadable_is_passed_over(tmp_path, head) -> None:
    as_file = tmp_path / "not-a-dir"
    as_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "ray_current_cluster").write_text(head.gcs_address)
    locked.chmod(0)
    try:
        report = discover_report(Settings(temp_dirs=(str(as_file), str(locked), str(tmp_path / "missing"))))
    finally:
        locked.chmod(0o700)
    assert not report.source_errors
    assert head.gcs_address in {c.gcs_address for c in report.clusters}


def test_discovery_time_does_not_grow_with_dead_session_folders(tmp_path, head) -> None:
    timings = {}
    for count in (0, 100, 5000):
        temp = _garbage_temp_dir(tmp_path / str(count), count)
        settings = Settings(temp_dirs=(str(temp),))
        discover_report(settings)  # warm
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            report = discover_report(settings)
            runs.append(time.perf_counter() - started)
        assert report.hints >= count and head.gcs_address in {c.gcs_address for c in report.clusters}
        timings[count] = sorted(runs)[2]
    per_hundred_ms = (timings[5000] - timings[0]) / 50 * 1000
    print(f"\ndiscovery with 0/100/5000 dead session folders: "
          f"{timings[0] * 1000:.1f} / {timings[100] * 1000:.1f} / {timings[5000] * 1000:.1f} ms "
          f"({per_hundred_ms:.2f} ms per hundred)")  # fmt: skip
    assert per_hundred_ms < 5.0, timings


# --- 3. clusters that change under it --------------------------------------------------


def _dashboard_process(cluster: LocalCluster) -> psutil.Process:
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if len(cmdline) > 1 and cmdline[1].endswith("dashboard.py") and cluster.temp_dir in " ".join(cmdline):
            return proc
    raise AssertionError("no dashboard process")


def test_a_frozen_dashboard_falls_back_to_the_gcs(head) -> None:
    session = Session(Settings(http_timeout=1.0))
    info = resolve(head.gcs_address, session.settings)
    session.attach(info, "main")
    assert session.cluster("main").via == "dashboard"
    dashboard = _dashboard_process(head)
    dashboard.send_signal(signal.SIGSTOP)  # alive, holding its port, answering nothing
    try:
        session.refresh()
        state = session.cluster("main")
        assert state.reachable and state.via == "gcs"
        assert {r.state for r in session.rows() if r.is_head} == {"ALIVE"}
    finally:
        dashboard.send_signal(signal.SIGCONT)
    session.refresh()
    assert session.cluster("main").via == "dashboard"


# --- 4. token-protected clusters -------------------------------------------------------


@pytest.fixture
def no_token(monkeypatch) -> None:
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)


def test_without_a_token_the_error_says_where_it_looked(token_cluster, no_token) -> None:
    with pytest.raises(AuthRequired) as caught:
        ClusterClient(None, token_cluster.dashboard_url, Settings()).read(cluster="t")
    assert "RAY_AUTH_TOKEN" in str(caught.value) and "~/.ray/auth_token" in str(caught.value)
    (info,) = [c for c in discover() if c.gcs_address == token_cluster.gcs_address]
    assert info.auth_required and info.num_nodes is None and info.dashboard_url == token_cluster.dashboard_url


def test_a_wrong_token_is_told_apart(token_cluster, monkeypatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    with pytest.raises(AuthRequired, match="wrong token|refused") as caught:
        ClusterClient(None, token_cluster.dashboard_url, Settings()).read(cluster="t")
    assert "none found" not in str(caught.value)


def test_jobs_of_a_token_cluster_use_rays_token_sources(token_cluster, monkeypatch, no_token) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    with Session(Settings()) as session:
        session.connect(token_cluster.dashboard_url or "", name="guarded")
        found, skipped = session.jobs()
        assert skipped == {} and found == []  # read with the token: no jobs yet, and no error
        with pytest.raises(castray_nb.UnknownJob):
            session.job_logs("no-such-job")
        monkeypatch.delenv("RAY_AUTH_TOKEN")
        found, skipped = session.jobs()
        assert found == [] and "RAY_AUTH_TOKEN" in skipped["guarded"]  # no token: where it looked


def test_the_dashboard_proxy_reads_a_token_cluster_and_never_shows_the_token(token_cluster) -> None:
    """Through the server's proxy: reads work with the server's token, and nothing the
    browser receives holds it (bodies, headers, redirects), even from a dashboard that
    echoes it back. A server without the token answers 502 saying where it looked."""
    from tests.fake_dashboard import FakeDashboard
    from tests.jupyter import jupyter_server
    from tests.test_proxy import raw
    from tests.test_server import call

    home = tempfile.mkdtemp(prefix="castray-token-server-")
    try:
        with FakeDashboard() as echo, jupyter_server(env={"HOME": home, "RAY_AUTH_TOKEN": TOKEN}) as server:
            for address, name in ((token_cluster.dashboard_url, "guarded"), (echo.url, "echo")):
                status, body = call(server, "POST", "/cluster/connect-external", {"cluster_address": address,
                                                                                   "name": name})  # fmt: skip
                assert status == 200, body
            _, listing = call(server, "GET", "/cluster/external-info")
            links = {c["name"]: c["dashboard_link"] for c in listing["clusters"]}
            received = []
            for path in ("", "api/v0/nodes", "api/version", "favicon.ico"):
                status, headers, body = raw(server, "GET", links["guarded"] + path)
                assert status == 200, (path, body[:200])
                received.append(str(headers) + body.decode(errors="replace"))
            assert json.loads(raw(server, "GET", links["guarded"] + "api/v0/nodes")[2])["data"]["result"]["total"] == 1
            status, headers, body = raw(server, "GET", links["echo"] + "leak")
            assert status == 200 and body.startswith(b"before Bearer ***") and body.endswith(b"*** after")
            received.append(str(headers) + body.decode())
            status, headers, _ = raw(server, "GET", links["echo"] + f"redirect?to=/x%3Ft={TOKEN}")
            received.append(str(headers))
            assert not [text for text in received if TOKEN in text]
        with jupyter_server(env={"HOME": home}) as bare:  # no token anywhere it looks
            session = next(c for c in discover() if c.gcs_address == token_cluster.gcs_address).name
            status, headers, body = raw(bare, "GET", f"/castray/dashboard/{session}/api/v0/nodes",
                                        {"Authorization": f"token {bare.token}"})  # fmt: skip
            reply = json.loads(body)
            assert status == 502 and reply["error"] == "cluster_auth_required", reply
            assert "RAY_AUTH_TOKEN" in reply["message"] and "~/.ray/auth_token" in reply["message"]
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("source", ["RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token"])
def test_the_token_from_each_of_rays_sources_works(token_cluster, source, monkeypatch, tmp_path, no_token) -> None:
    if source == "RAY_AUTH_TOKEN":
        monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    elif source == "RAY_AUTH_TOKEN_PATH":
        (tmp_path / "tok").write_text(TOKEN + "\n")
        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    else:
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text(TOKEN)
        monkeypatch.setenv("HOME", str(tmp_path))
    reading = ClusterClient(None, token_cluster.dashboard_url, Settings()).read(cluster="t")
    assert [n.state for n in reading.nodes] == ["ALIVE"]
    (info,) = [c for c in discover() if c.gcs_address == token_cluster.gcs_address]
    assert info.auth_required and info.num_nodes == 1, "it needs a token, and we hold the right one"


def test_the_gcs_path_with_a_token(token_cluster, no_token, monkeypatch) -> None:
    """Over gRPC the token goes in each call's metadata (no process-wide switch): a missing
    token and a wrong one are told apart, as over HTTP, and the right one reads."""
    client = ClusterClient(token_cluster.gcs_address, None, Settings())
    with pytest.raises(AuthRequired, match="requires a Ray auth token; none found") as missing:
        client.read(cluster="t")
    assert "RAY_AUTH_TOKEN" in str(missing.value)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "x" + TOKEN[1:])
    with pytest.raises(AuthRequired, match="wrong token") as wrong:
        client.read(cluster="t")
    assert "none found" not in str(wrong.value) and TOKEN[1:] not in str(wrong.value)
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    reading = client.read(cluster="t")
    assert reading.via == "gcs" and [n.state for n in reading.nodes] == ["ALIVE"]


def test_the_token_never_appears_anywhere(token_cluster, monkeypatch, caplog, capsys) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    seen = io.StringIO()
    session = Session(Settings())
    info = resolve(token_cluster.gcs_address, session.settings)
    state = session.attach(info, "secret")
    frame = session.nodes()
    seen.write(
        repr(info) + repr(state) + json.dumps(info.to_json()) + frame.to_string() + frame.to_json(date_format="iso")
    )
    seen.write(repr(castray_nb.core.find_token()) + str(castray_nb.core.find_token()))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "x" + TOKEN[1:])  # a wrong token in the error path
    for call in (lambda: ClusterClient(None, token_cluster.dashboard_url, Settings()).read(cluster="t"),):
        try:
            call()
        except CastrayError as exc:
            seen.write(str(exc) + repr(exc))
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    for args in (["discover", "--json", "-v"], ["nodes", "--json"], ["discover"]):
        result = subprocess.run([sys.executable, "-m", "castray_nb.cli", *args], capture_output=True, text=True,
                                timeout=60, env={**os.environ})  # fmt: skip
        seen.write(result.stdout + result.stderr)
    seen.write(caplog.text + "".join(capsys.readouterr()))
    text = seen.getvalue()
    assert "secret" in text and token_cluster.gcs_address in text  # we did look at real output
    assert TOKEN not in text and TOKEN[1:] not in text


# --- 5. concurrency ------------------------------------------------------------------------


def test_refreshes_racing_with_connect_and_disconnect(head, headless) -> None:
    from castray_nb.widgets import Panel

    session = Session(Settings())
    infos = [resolve(c.gcs_address, session.settings) for c in (head, headless)]
    errors: list[BaseException] = []
    stop = threading.Event()
    panel = Panel(session, interval=0.2)

    def guard(fn):
        def run() -> None:
            try:
                while not stop.is_set():
                    fn()
            except BaseException as exc:  # any escape fails the test
                errors.append(exc)

        return run

    def churn(i: int):
        def once() -> None:
            info = infos[i % 2]
            name = f"c{i}"
            session.attach(info, name, refresh=False)
            session.refresh()
            try:
                session.detach(name)
            except CastrayError:
                pass  # another thread attached the same cluster under its own name first

        return once

    threads = [threading.Thread(target=guard(churn(i))) for i in range(6)]
    threads += [threading.Thread(target=guard(session.refresh)) for _ in range(4)]
    threads += [threading.Thread(target=guard(lambda: (session.rows(), session.nodes(), session.clusters())))]
    threads += [threading.Thread(target=guard(panel.render))]
    for t in threads:
        t.start()
    time.sleep(8)
    stop.set()
    for t in threads:
        t.join(30)
    panel.close()
    assert not [t for t in threads if t.is_alive()], "deadlock"
    assert not errors, errors[:3]
    session.attach(infos[0], "final")
    session.attach(infos[1], "final2")
    session.refresh()
    assert sorted(c.name for c in session.clusters()) == ["final", "final2"]


# --- 6. security posture -------------------------------------------------------------------


def test_no_shell_anywhere_in_the_package() -> None:
    offences = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in {
                    "os.system",
                    "os.popen",
                    "eval",
                    "exec",
                    "subprocess.getoutput",
                    "subprocess.getstatusoutput",
                }:
                    offences.append(f"{path.name}:{node.lineno} {name}")
                for kw in node.keywords:
                    if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                        offences.append(f"{path.name}:{node.lineno} shell=")
    assert not offences, offences


def test_discovery_sends_traffic_only_to_this_machine(head, monkeypatch) -> None:
    from castray_nb.core.address import is_this_machine

    remote = "203.0.113.7"  # TEST-NET-3: never routed; must not even be tried
    monkeypatch.setenv("RAY_ADDRESS", f"{remote}:6379")
    contacted: list[str] = []
    real_connect = socket.socket.connect

    def spy(self, address):
        if isinstance(address, tuple):
            contacted.append(str(address[0]))
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    report = discover_report(Settings(attach=(f"http://{remote}:8265",)))
    assert contacted, "the spy saw no traffic at all"
    assert all(is_this_machine(host) for host in contacted), contacted
    assert remote not in contacted
    assert any(remote in what and "not on this machine" in why for what, why in report.rejected)
    assert head.gcs_address in {c.gcs_address for c in report.clusters}


def test_nothing_listens_because_of_this_package(head) -> None:
    from castray_nb.widgets import Panel

    me = psutil.Process()

    def listening() -> set[tuple[str, int]]:
        return {(c.laddr.ip, c.laddr.port) for c in me.net_connections("inet") if c.status == psutil.CONN_LISTEN}

    before = listening()
    session = Session(Settings())
    discover()
    info = resolve(head.gcs_address, session.settings)
    session.attach(info)
    panel = Panel(session, interval=0.3)
    time.sleep(1)
    during = listening()
    panel.close()
    assert during == before


_LOST_DRIVER_SCRIPT = """
import json, sys, time
import castray_nb, psutil, ray
from castray_nb.launch import LocalCluster
from castray_nb.core.session import Session
from castray_nb.core.settings import Settings
cluster = LocalCluster().start()
ray.init(address=cluster.gcs_address, logging_level="ERROR", log_to_driver=False)
session = Session(Settings())
events = []
session.subscribe(lambda e: events.append(e.kind))
watch = session.watch(0.5)
time.sleep(2)
before = [r.state for r in session.rows(source="local")]
lost_at = time.monotonic()
if sys.argv[1] == "silent, then killed":
    # The race a loaded machine runs into: a read is waiting on a GCS that dies under it.
    gcs = next(p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0].endswith("gcs_server")
               and cluster.temp_dir in " ".join(p.info["cmdline"]))
    gcs.suspend()
    time.sleep(3)
    gcs.kill()
cluster.stop()
while "cluster_detached" not in events and time.monotonic() - lost_at < 50:
    time.sleep(0.5)
watch.stop()
print(json.dumps({"before": before, "after": [r.source for r in session.rows()], "events": events,
                  "initialized": ray.is_initialized(), "ended_after": round(time.monotonic() - lost_at, 1)}))
time.sleep(70)  # past the minute after which Ray would have ended a driver that lost its GCS
print("still alive")
"""


ENDINGS = ["stopped", "silent, then killed"]


@pytest.fixture(scope="module")
def lost_drivers() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Both endings' kernels, started at once: each sits out Ray's minute, so side by side
    they cost one minute, not two."""
    homes = {ending: tempfile.mkdtemp(prefix="castray-lost-driver-") for ending in ENDINGS}
    drivers = {
        ending: subprocess.Popen(
            [sys.executable, "-c", _LOST_DRIVER_SCRIPT, ending],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HOME": homes[ending]},
            start_new_session=True,
        )  # fmt: skip
        for ending in ENDINGS
    }
    try:
        yield drivers
    finally:
        for driver in drivers.values():
            if driver.poll() is None:  # a test that failed early: stopped as a user would, so its cluster stops too
                driver.send_signal(signal.SIGINT)
                try:
                    driver.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(driver.pid, signal.SIGKILL)
            driver.communicate()
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("ending", ENDINGS)
def test_the_kernels_own_cluster_going_away_leaves_cleanly_and_the_kernel_survives(ending: str, lost_drivers) -> None:
    stdout, stderr = lost_drivers[ending].communicate(timeout=240)
    result = subprocess.CompletedProcess(lost_drivers[ending].args, lost_drivers[ending].returncode, stdout, stderr)
    lines = result.stdout.strip().splitlines()
    # Ray's own crash reports are mostly stack frames: show what it said, not where.
    said = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith(("  /", "/"))]
    assert result.returncode == 0 and lines[-1:] == ["still alive"], (result.stdout[-800:], said[:12])
    out = json.loads(lines[-2])
    assert out["before"] == ["ALIVE"]
    assert out["after"] == [], "local rows left"
    assert not out["initialized"]
    assert "cluster_unreachable" in out["events"] and "cluster_detached" in out["events"]
    # Ray ends a driver about 60 s after its GCS is gone, so castray must let go before that.
    # A silent GCS costs a read timeout (5 s) first, and ray.shutdown() takes 10-15 s once
    # the GCS is dead: 33 s measured, against 8-11 s for a GCS that stops cleanly.
    assert out["ended_after"] < (30 if ending == "stopped" else 50)
