"""Clusters on other machines, found: the hosts setting, a plug-in that names a remote head,
and recent attachments. The machines are network namespaces on one bridge (10.213.4.0/24,
this machine 10.213.4.1), made here and deleted after, also on failure:

- ``a`` 10.213.4.2: a Ray head on Ray's default ports, and a worker (2 nodes);
- ``b`` 10.213.4.3: a Ray head on other ports (GCS 6390, dashboard 8270; 1 node);
- ``dead`` 10.213.4.4: a machine where nothing runs (refuses every connection);
- ``off`` 10.213.4.5: a machine that is off (its link is down: nothing answers, not even ARP);
- ``fake`` 10.213.4.6: a Ray-looking dashboard that records the Authorization it is sent;
- ``canary`` 10.213.4.7: on the same network, named by nobody; it must see no packet.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from castray_nb.core.discovery import discover_report
from castray_nb.core.session import Session
from castray_nb.core.settings import Settings
from castray_nb.core.store import Recent, Store
from tests.conftest import HOME, wait_until
from tests.jupyter import JupyterServer, jupyter_server
from tests.netns import IP, lan, ray_node, wait_for_alive_nodes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "data" / "team_plugin"
A, B, DEAD, OFF, FAKE, CANARY = (f"10.213.4.{i}" for i in range(2, 8))
B_GCS = f"{B}:6390"
TOKEN = "castray-test-token-" + "7" * 32  # the Ray token of the processes that discover


@dataclass
class Machines:
    ns: dict[str, str]
    session_a: str
    session_b: str
    canary_log: Path
    canary_seen: int  # lines the canary printed before the tests began (the check that it works)
    auth_log: Path
    root: Path

    def canary_lines(self) -> list[str]:
        return self.canary_log.read_text().splitlines()[self.canary_seen :]


@pytest.fixture(scope="module")
def machines() -> Iterator[Machines]:
    if os.geteuid() != 0 or not Path(IP).exists():
        pytest.fail("these tests need root and iproute2 (network namespaces), as on these machines and in CI")
    root = Path(tempfile.mkdtemp(prefix="crom-"))  # short: Ray's socket paths must stay under 108 bytes
    hosts = {"a": (A, True), "b": (B, True), "dead": (DEAD, True), "off": (OFF, False), "fake": (FAKE, True),
             "canary": (CANARY, True)}  # fmt: skip
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        ns = stack.enter_context(lan(hosts, "10.213.4.1"))
        canary_log = root / "canary.log"
        canary = _in(ns["canary"], [sys.executable, str(ROOT / "tests" / "canary.py")], canary_log)
        stack.callback(_stop, canary)
        head_a = ray_node(ns["a"], A, root / "a")
        stack.callback(head_a.stop)
        head_b = ray_node(ns["b"], B, root / "b", gcs_port=6390, dashboard_port=8270, client_port=10002)
        stack.callback(head_b.stop)
        auth_log = root / "auth.log"
        fake = _in(ns["fake"], [sys.executable, "-m", "castray_nb.testing.replay", "--nodes", "3", "--host", FAKE,
                                "--port", "8265", "--auth-log", str(auth_log),
                                "--session", "session_2026-01-01_00-00-00_000000_6"], root / "fake.log")  # fmt: skip
        stack.callback(_stop, fake)
        # The canary works: a probe of one of its closed ports is seen.
        wait_until(lambda: "listening" in canary_log.read_text(), 30, 0.2)
        with socket.socket() as probe:
            probe.settimeout(2)
            probe.connect_ex((CANARY, 6379))
        wait_until(lambda: f"-> {CANARY}:6379" in canary_log.read_text(), 10, 0.2)
        wait_for_alive_nodes(f"http://{A}:8265", 1, [head_a])
        worker = ray_node(ns["a"], A, root / "w", head=f"{A}:6379")
        stack.callback(worker.stop)
        wait_for_alive_nodes(f"http://{B}:8270", 1, [head_b])
        wait_for_alive_nodes(f"http://{A}:8265", 2, [head_a, worker])
        from castray_nb.core.http import get_json

        session_a = get_json(f"http://{A}:8265/api/version", 5)["session_name"]
        session_b = get_json(f"http://{B}:8270/api/version", 5)["session_name"]
        yield Machines(ns, session_a, session_b, canary_log, len(canary_log.read_text().splitlines()), auth_log, root)


def _in(ns: str, command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([IP, "netns", "exec", ns, *command], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.PIPE, start_new_session=True, cwd=ROOT)  # fmt: skip


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def cli(*args: str, env: dict[str, str] | None = None, home: Path | None = None) -> subprocess.CompletedProcess:
    """``castray-nb ARGS`` in a process of its own, with its own Jupyter data dir (its store)."""
    home = home or Path(tempfile.mkdtemp(prefix="castray-cli-home-", dir=HOME))
    full = {**os.environ, "HOME": str(home), "JUPYTER_DATA_DIR": str(home / "data"), "RAY_AUTH_TOKEN": TOKEN,
            **(env or {})}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "castray_nb.cli", *args], capture_output=True, text=True,
                          timeout=120, env=full, cwd=ROOT)  # fmt: skip


def listed(*args: str, **kwargs: Any) -> list[dict[str, Any]]:
    done = cli("discover", "--json", *args, **kwargs)
    assert done.returncode == 0, done.stderr
    return [c for c in json.loads(done.stdout) if c["location"] != "this-machine"]


def test_listed_hosts_are_discovered_with_exact_node_counts(machines: Machines) -> None:
    found = {c["name"]: c for c in listed(env={"CASTRAY_HOSTS": f"{A},{B_GCS}"})}
    assert set(found) == {machines.session_a, machines.session_b}
    a, b = found[machines.session_a], found[machines.session_b]
    assert (a["num_nodes"], a["gcs_address"], a["dashboard_url"]) == (2, f"{A}:6379", f"http://{A}:8265")
    assert (b["num_nodes"], b["gcs_address"], b["dashboard_url"]) == (1, B_GCS, f"http://{B}:8270")
    for cluster in (a, b):
        assert cluster["sources"] == ["hosts"] and cluster["location"] == "listed-host"
        assert cluster["owner"] is None and cluster["other_user"] is False and cluster["ray_version"]


def test_hosts_that_do_not_answer_are_rejected_with_their_reasons_within_one_probe_timeout(machines: Machines) -> None:
    done = cli("discover", "-v", env={"CASTRAY_HOSTS": f"{A},{DEAD},{OFF},{B_GCS}", "CASTRAY_PROBE_TIMEOUT": "1"})
    assert done.returncode == 0, done.stderr
    rejected = [line for line in done.stderr.splitlines() if line.startswith("not a live cluster:")]
    dead = [line for line in rejected if DEAD in line]
    off = [line for line in rejected if OFF in line]
    assert len(dead) == 1 and "GCS 6379: connection refused" in dead[0] and "dashboard 8265" in dead[0], rejected
    assert len(off) == 1 and "no answer within 1 s" in off[0], rejected
    assert machines.session_a in done.stdout and machines.session_b in done.stdout

    # In this process, side by side: discovery with the two silent hosts against without them.
    probe = 1.0
    without = Settings(probe_timeout=probe, hosts=(A, B_GCS))
    with_them = without.replace(hosts=(A, DEAD, OFF, B_GCS))
    times: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(3):
        for label, settings in (("without", without), ("with", with_them)):
            report = discover_report(settings)
            assert {c.name for c in report.clusters} >= {machines.session_a, machines.session_b}
            times[label].append(report.elapsed_s)
    extra = statistics.median(times["with"]) - statistics.median(times["without"])
    plain, slow = (statistics.median(times[k]) * 1000 for k in ("without", "with"))
    print(f"discovery of 2 listed hosts: {plain:.0f} ms; with a host where nothing runs and one that is off: "
          f"{slow:.0f} ms (+{extra * 1000:.0f} ms, probe_timeout {probe * 1000:.0f} ms)")  # fmt: skip
    assert extra < probe + 0.2, times  # one probe timeout (and scheduling noise), not one per host or port


def test_discover_connect_attaches_both_and_remembers_them(machines: Machines) -> None:
    home = Path(tempfile.mkdtemp(prefix="castray-cli-home-", dir=HOME))
    done = cli("discover", "--connect", "--json", env={"CASTRAY_HOSTS": f"{A},{B_GCS}"}, home=home)
    assert done.returncode == 0, done.stderr
    found = {c["name"]: c for c in json.loads(done.stdout) if c["location"] != "this-machine"}
    assert found[machines.session_a]["attached"] and found[machines.session_b]["attached"]
    assert "could not attach" not in done.stderr

    remembered = json.loads(cli("recent", "--json", home=home).stdout)
    by_address = {e["address"]: e for e in remembered}
    assert {f"{A}:6379", B_GCS} <= set(by_address)
    assert by_address[B_GCS]["session_name"] == machines.session_b and by_address[B_GCS]["sources"] == ["hosts"]

    # Remembered, they come back as candidates on their own, with no hosts setting.
    again = {c["name"]: c for c in listed(home=home)}
    assert again[machines.session_b]["sources"] == ["recent"] and again[machines.session_b]["num_nodes"] == 1
    assert again[machines.session_b]["location"] == "recent"
    assert again[machines.session_a]["num_nodes"] == 2

    name = by_address[B_GCS]["name"]
    gone = cli("forget", name, home=home)
    assert gone.returncode == 0 and B_GCS in gone.stdout, gone.stderr
    assert machines.session_b not in {c["name"] for c in listed(home=home)}
    unknown = cli("forget", name, home=home)
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.count("\n") == 1 and f"no remembered cluster is called {name!r}" in unknown.stderr


def test_a_plugin_installed_by_its_entry_point_names_a_remote_head(machines: Machines) -> None:
    home = Path(tempfile.mkdtemp(prefix="castray-cli-home-", dir=HOME))
    team = home / ".config" / "team"
    team.mkdir(parents=True)
    (team / "ray-clusters.txt").write_text(f"# our team's clusters\n{B_GCS}\n{A}  # a host alone\n")
    found = {c["name"]: c for c in listed(env={"PYTHONPATH": str(PLUGIN)}, home=home)}
    assert found[machines.session_b]["sources"] == ["team"] and found[machines.session_b]["location"] == "plug-in"
    assert found[machines.session_b]["num_nodes"] == 1 and found[machines.session_a]["num_nodes"] == 2
    # Without the plug-in installed, nothing names them: nothing elsewhere is found.
    assert listed(home=home) == []


def test_the_readme_shows_the_plugin_the_tests_install() -> None:
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("# my_pkg/castray.py\n", 1)[1].split("```", 1)[0]
    assert shown in (PLUGIN / "team_plugin.py").read_text()


def _tokens_seen(log: Path, since: int) -> list[tuple[str, str]]:
    """(path, SHA-256 of the Authorization header or "none") of each request the fake dashboard had."""
    lines = log.read_text().splitlines()[since:] if log.exists() else []
    return [(path, seen) for path, seen in (line.split("\t") for line in lines)]


def test_the_token_goes_to_a_plugins_host_only_when_the_plugin_says_it_is_meant_for_it(machines: Machines) -> None:
    sent = hashlib.sha256(f"Bearer {TOKEN}".encode()).hexdigest()
    home = Path(tempfile.mkdtemp(prefix="castray-cli-home-", dir=HOME))
    team = home / ".config" / "team" / "ray-clusters.txt"
    team.parent.mkdir(parents=True)
    plugin = {"PYTHONPATH": str(PLUGIN)}

    def run(*args: str, **env: str) -> list[tuple[str, str]]:
        before = len(_tokens_seen(machines.auth_log, 0))
        done = cli(*args, env={**plugin, **env}, home=home)
        assert done.returncode == 0, done.stderr
        seen = _tokens_seen(machines.auth_log, before)
        assert seen, "the fake dashboard was not asked anything"
        return seen

    def carried(requests: list[tuple[str, str]]) -> set[str]:
        """What the reads carried: discovery also asks /api/version once without a token,
        on purpose, to learn whether the dashboard requires one."""
        return {seen for path, seen in requests if path != "/api/version"}

    team.write_text(f"http://{FAKE}:8265\n")
    found = run("discover", "--connect", "--json")  # discovered, attached and read: no token at all
    assert {seen for _, seen in found} == {"none"} and {"/api/v0/nodes", "/api/cluster_status"} <= {p for p, _ in found}
    # Attached again from the recent list (the sidebar's Recent, a server's restore) in a new
    # process, by its address: still none, as it was found.
    team.write_text("")
    assert {seen for _, seen in run("nodes", "--address", f"http://{FAKE}:8265", "--json")} == {"none"}
    # The plug-in says the token is meant for it: it goes.
    team.write_text(f"http://{FAKE}:8265 token\n")
    assert carried(run("discover", "--json")) == {sent}
    # A host the user listed is the user's word: it goes, as to an address they typed.
    team.write_text(f"http://{FAKE}:8265\n")
    assert carried(run("discover", "--json", CASTRAY_HOSTS=f"http://{FAKE}:8265")) == {sent}


def test_a_session_remembers_what_it_attached_and_when_it_was_last_seen(machines: Machines, tmp_path) -> None:
    recent = Recent(Store(tmp_path / "store.sqlite3"))
    with Session(Settings(), recent=recent) as session:
        state = session.connect(A, name="gpu-box")  # a host alone, typed
        assert state.reachable and state.alive_nodes == 2 and state.info.location == "address"
        (entry,) = session.remembered()
        assert (entry.name, entry.address, entry.session_name) == ("gpu-box", f"{A}:6379", machines.session_a)
        time.sleep(0.05)
        session.refresh()
        session.detach("gpu-box")  # last seen: its last good read
        (after,) = session.remembered()
        assert after.first_attached == entry.first_attached and after.last_seen > entry.last_seen
    assert (tmp_path / "store.sqlite3").stat().st_mode & 0o777 == 0o600


# --- the sidebar ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(machines: Machines) -> Iterator[JupyterServer]:
    from tests.test_browser import _needs

    _needs()
    args = ("--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True")  # fmt: skip
    env = {"HOME": HOME, "CASTRAY_HOSTS": f"{A},{B_GCS}", "CASTRAY_REFRESH_INTERVAL": "1"}
    with jupyter_server("jupyterlab", env=env, args=args) as server:
        yield server


def test_the_sidebar_lists_listed_hosts_and_keeps_a_detached_one_under_recent(machines: Machines, lab) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, _notebook
    from tests.test_sidebar import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = _notebook(str(lab.root), ["# other machines"], "hosts.ipynb")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def open_sidebar() -> Any:
                page.goto(f"{lab.url}/lab/workspaces/hosts/tree/{name}?token={lab.token}&reset")
                expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)
                page.locator(".jp-SideBar .lm-TabBar-tab[data-id='castray-sidebar']").click()
                sidebar = page.locator("#castray-sidebar")
                expect(sidebar).to_be_visible()
                return sidebar

            sidebar = open_sidebar()
            found = {s: sidebar.locator(f".castray-discovered[data-session='{s}']")
                     for s in (machines.session_a, machines.session_b)}  # fmt: skip
            for row in found.values():
                expect(row).to_be_visible(timeout=60_000)  # discovery ran when the sidebar opened
                expect(row.locator("[data-location='listed-host']")).to_have_count(1)
            expect(found[machines.session_a]).to_contain_text("2 node(s)")
            expect(found[machines.session_b]).to_contain_text("1 node(s)")
            for row in found.values():
                row.get_by_role("button", name="Attach").click()
            card_of = {host: sidebar.locator(".castray-card").filter(has_text=host) for host in (A, B)}
            for card in card_of.values():
                expect(card).to_have_count(1, timeout=60_000)
                expect(card).to_have_attribute("data-reachable", "reachable", timeout=60_000)
                expect(card.locator("[data-location='listed-host']")).to_have_count(1)
            expect(card_of[A]).to_contain_text("2 alive", timeout=30_000)
            page.locator("#castray-sidebar").screenshot(path=str(ARTIFACTS / "other-machines.png"))
            b_name = card_of[B].get_attribute("data-cluster")
            assert b_name == f"{B}-6390"

            card_of[B].get_by_role("button", name="Detach").click()
            expect(card_of[B]).to_have_count(0, timeout=30_000)
            recent = sidebar.locator(f".castray-recent[data-address='{B_GCS}']")
            expect(recent).to_be_visible(timeout=30_000)

            lab.restart()  # the server attaches again what was attached, and remembers the rest
            sidebar = open_sidebar()
            recent = sidebar.locator(f".castray-recent[data-address='{B_GCS}']")
            expect(recent).to_be_visible(timeout=60_000)
            expect(recent).to_contain_text("last seen")
            # Found live again (it is in the hosts list): shown once, under Recent, with what discovery read.
            expect(recent).to_have_attribute("data-live", "true", timeout=60_000)
            expect(recent).to_contain_text("1 node(s)")
            expect(sidebar.locator(f".castray-discovered[data-session='{machines.session_b}']")).to_have_count(0)
            expect(recent).to_have_attribute("data-name", b_name)
            expect(sidebar.locator(".castray-card").filter(has_text=A)).to_have_count(1, timeout=60_000)
            expect(sidebar.locator(".castray-card").filter(has_text=B)).to_have_count(0)
            page.locator("#castray-sidebar").screenshot(path=str(ARTIFACTS / "other-machines-recent.png"))

            recent.get_by_role("button", name="Attach").click()  # back, under the name it had
            back = sidebar.locator(f".castray-card[data-cluster='{b_name}']")
            expect(back).to_have_attribute("data-reachable", "reachable", timeout=60_000)
            expect(recent).to_have_count(0, timeout=30_000)

            back.get_by_role("button", name="Detach").click()
            expect(recent).to_be_visible(timeout=30_000)
            recent.get_by_role("button", name="Forget").click()
            expect(recent).to_have_count(0, timeout=30_000)
        finally:
            browser.close()
    headers = {"Authorization": f"token {lab.token}"}
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(f"{lab.url}/castray/api/recent", headers=headers)) as reply:
        remembered = json.load(reply)["clusters"]
    assert B_GCS not in {e["address"] for e in remembered}
    assert {e["address"]: e["attached"] for e in remembered}.get(f"{A}:6379") is True


def test_nothing_went_to_the_canary(machines: Machines) -> None:
    """Last: every discovery, attach, read, page and restart above sent nothing to an
    address nobody named, on the same network as the hosts that were named."""
    assert machines.canary_lines() == []
