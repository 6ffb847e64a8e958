"""The JupyterLab sidebar in Chromium against a real JupyterLab and real clusters.

One JupyterLab, one page, the tests in order: discover and attach a cluster another
process started; a worker joining and dying shows live (timed); Insert code, then the cell
attaches the cluster in the kernel; Open dashboard; a bad address; both themes (computed
styles, screenshots); a restart of the Jupyter server. Screenshots and the timings land in
test-artifacts/sidebar/.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from castray_nb.launch import LocalCluster
from tests.conftest import HOME, wait_until
from tests.jupyter import JupyterServer, jupyter_server
from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, _head_id, _needs, _new_node, _notebook

pytestmark = pytest.mark.slow
BASE = "/user/alice/"  # as JupyterHub serves a user's server
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "sidebar"
SOCKETS: list[Any] = []  # every WebSocket the page opened


def events_sockets_open() -> int:
    return sum("/castray/api/events" in ws.url and not ws.is_closed() for ws in SOCKETS)


@pytest.fixture(scope="module")
def lab() -> Iterator[JupyterServer]:
    _needs()
    args = ("--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True", f"--ServerApp.base_url={BASE}")  # fmt: skip
    with jupyter_server("jupyterlab", env={"HOME": HOME}, args=args, status_path=BASE) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab: JupyterServer) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = _notebook(str(lab.root), ["# the sidebar puts code here"], "sidebar.ipynb")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("websocket", lambda ws: SOCKETS.append(ws))
            page.goto(f"{lab.url}{BASE}lab/workspaces/sidebar/tree/{name}?token={lab.token}&reset")
            expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)
            page.locator(".jp-SideBar .lm-TabBar-tab[data-id='castray-sidebar']").click()
            expect(page.locator("#castray-sidebar")).to_be_visible()
            yield page
        finally:
            browser.close()


def card(page: Any, name: str) -> Any:
    return page.locator(f"#castray-sidebar [data-cluster='{name}']")


def test_discover_lists_a_cluster_another_process_started_and_attach_attaches_it(page, head: LocalCluster) -> None:
    from playwright.sync_api import expect

    sidebar = page.locator("#castray-sidebar")
    found = sidebar.locator(".castray-discovered").filter(has_text=head.gcs_address)
    expect(found).to_be_visible(timeout=30_000)  # discovery ran when the sidebar opened
    found.get_by_role("button", name="Attach").click()
    expected = f"ray-{head.gcs_port}"
    expect(card(page, expected)).to_be_visible(timeout=30_000)
    expect(card(page, expected)).to_contain_text("1 alive")
    expect(card(page, expected)).to_contain_text("Ray 2.")
    expect(card(page, expected)).to_have_attribute("data-reachable", "reachable", timeout=30_000)
    expect(sidebar.locator(".castray-discovered").filter(has_text=head.gcs_address)).to_have_count(0)
    # its commands are in the palette, its settings in JupyterLab's settings system
    commands = page.evaluate("['castray:open', 'castray:discover', 'castray:connect']"
                             ".map(c => window.jupyterapp.commands.hasCommand(c))")  # fmt: skip
    assert commands == [True, True, True]
    schema = page.evaluate("window.jupyterapp.serviceManager.settings.fetch('castray-nb:sidebar')"
                           ".then(s => Object.keys(s.schema.properties).sort())")  # fmt: skip
    assert schema == ["codeStyle", "discoverOnOpen", "refreshInterval"]


def test_the_card_counts_the_clusters_jobs_live(page, head: LocalCluster) -> None:
    from castray_nb.core.http import get_json
    from tests.test_jobs import ray_job_submit

    def by_the_api() -> tuple[int, dict[str, str]]:
        jobs = get_json(f"{head.dashboard_url}/api/jobs/", 5)
        return sum(j["status"] == "SUCCEEDED" for j in jobs), {j["submission_id"]: j["status"] for j in jobs}

    succeeded = card(page, f"ray-{head.gcs_port}").locator("[data-jobs='succeeded']")

    def shows_what_the_cluster_has(timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            count, _ = by_the_api()
            if succeeded.count() and succeeded.inner_text() == f"{count} succeeded":
                return count
            assert time.monotonic() < deadline, f"the card says {succeeded.inner_text()!r}; the cluster has {count}"
            time.sleep(0.5)

    before = shows_what_the_cluster_has(60)
    job = f"sidebar-{time.time_ns()}"
    ray_job_submit(head, job, "print('counted')")
    wait_until(lambda: by_the_api()[1].get(job) == "SUCCEEDED", 90, 1)
    assert shows_what_the_cluster_has(30) >= before + 1  # followed live: nobody clicked


def test_a_worker_joining_and_dying_shows_without_a_click(page, head: LocalCluster) -> None:
    from playwright.sync_api import expect

    name = f"ray-{head.gcs_port}"
    card(page, name).get_by_role("button", name=re.compile("^Nodes")).click()
    known = {_head_id(head)}
    after_stop, after_stop_call = [], []
    for _ in range(3):
        worker = head.add_worker()
        node_id = _new_node(head, known)
        known.add(node_id)
        row = card(page, name).locator(f"tr[data-node-id='{node_id}']")
        expect(row).to_have_attribute("data-state", "ALIVE", timeout=30_000)
        called = time.monotonic()
        worker.stop()
        stopped = time.monotonic()
        expect(row).to_have_attribute("data-state", "DEAD", timeout=60_000)
        seen = time.monotonic()
        after_stop.append(seen - stopped)
        after_stop_call.append(seen - called)
    page.locator("#castray-sidebar").screenshot(path=str(ARTIFACTS / "sidebar-worker-dead.png"))
    figures = {"seconds_from_stop_returning_to_row_dead": after_stop,
               "seconds_from_stop_called_to_row_dead": after_stop_call,
               "median_from_stop_returning": statistics.median(after_stop), "refresh_interval_s": 2}  # fmt: skip
    (ARTIFACTS / "worker-death-timings.json").write_text(json.dumps(figures, indent=1))
    print("worker death -> row DEAD:", figures)


def test_insert_code_puts_the_magic_in_the_active_cell_and_running_it_attaches(page, head: LocalCluster) -> None:
    from playwright.sync_api import expect

    name = f"ray-{head.gcs_port}"
    cell = page.locator(".jp-Notebook:visible .jp-Cell").first
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    card(page, name).get_by_role("button", name="Insert code").click()
    expect(cell.locator(".jp-InputArea-editor")).to_contain_text(f"%castray connect {head.gcs_address} --name {name}")
    expect(cell.locator(".jp-InputArea-editor")).to_contain_text("%load_ext castray_nb")
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    output = cell.locator(".jp-OutputArea")  # the kernel's card of the cluster it attached and read
    expect(output.locator(".castray-card")).to_contain_text(name, timeout=60_000)
    expect(output).to_contain_text(head.gcs_address)
    expect(output).to_contain_text("via dashboard")
    expect(output.locator("a[href*='/castray/dashboard/session_']")).to_have_count(1)  # its link, through Jupyter


def test_open_dashboard_shows_rays_dashboard_in_a_tab(page, head: LocalCluster) -> None:
    from playwright.sync_api import expect

    name = f"ray-{head.gcs_port}"
    card(page, name).get_by_role("button", name="Dashboard").click()
    tab = page.locator(f"#castray-dashboard-{name}")
    expect(tab).to_be_visible(timeout=30_000)
    frame = page.frame_locator(f"#castray-dashboard-{name} iframe")
    expect(frame.get_by_text("Cluster", exact=True).first).to_be_visible(timeout=60_000)
    expect(frame.get_by_text("Overview", exact=True).first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "dashboard-tab.png"))


def test_collapsed_the_sidebar_rests_and_dashboard_tabs_come_back_after_a_reload(page, lab, head) -> None:
    """Hidden, the sidebar sends nothing and holds no events socket (so the server reads no
    cluster for it); shown, it is live again. A reload brings the dashboard tab back."""
    from playwright.sync_api import expect

    name = f"ray-{head.gcs_port}"
    asked: list[str] = []
    listener = lambda request: asked.append(request.url) if "/castray/api/" in request.url else None  # noqa: E731
    page.on("request", listener)
    try:
        assert events_sockets_open() == 1
        page.locator(".jp-SideBar .lm-TabBar-tab[data-id='castray-sidebar']").click()  # collapse it
        expect(page.locator("#castray-sidebar")).to_be_hidden()
        wait_until(lambda: events_sockets_open() == 0, 10)
        page.wait_for_timeout(1000)  # a fetch under way as it closed may still end
        asked.clear()
        page.wait_for_timeout(10_000)  # five refresh intervals
        assert asked == [], f"asked while hidden: {asked}"
        page.locator(".jp-SideBar .lm-TabBar-tab[data-id='castray-sidebar']").click()
        expect(page.locator("#castray-sidebar .castray-status")).to_have_text("live", timeout=30_000)
        assert any("/castray/api/cluster/external-info" in url for url in asked)
        assert events_sockets_open() == 1
    finally:
        page.remove_listener("request", listener)
    page.wait_for_timeout(2000)  # the workspace is saved a moment after it changes
    page.goto(f"{lab.url}{BASE}lab/workspaces/sidebar?token={lab.token}")
    tab = page.locator(f"#castray-dashboard-{name}")
    expect(tab).to_be_attached(timeout=60_000)
    expect(page.locator(".lm-TabBar-tab", has_text=f"Ray: {name}")).to_have_count(1)
    src = page.locator(f"#castray-dashboard-{name} iframe").get_attribute("src") or ""
    assert f"{BASE}castray/dashboard/" in src and "/cap-" in src, src
    expect(page.locator("#castray-sidebar")).to_be_visible(timeout=30_000)
    expect(page.locator("#castray-sidebar .castray-status")).to_have_text("live", timeout=30_000)


def test_a_bad_address_shows_one_line_inline(page) -> None:
    from playwright.sync_api import expect

    sidebar = page.locator("#castray-sidebar")
    sidebar.locator(".castray-address").fill("not an address!!")
    sidebar.get_by_role("button", name="Connect").click()
    error = sidebar.locator(".castray-connect-error")
    expect(error).not_to_be_empty(timeout=30_000)
    text = error.inner_text()
    assert "\n" not in text.strip() and "{" not in text and "not an address" in text, text
    assert page.locator(".jp-Dialog").count() == 0


def _theme_check(page: Any) -> dict[str, str]:
    return page.evaluate("""() => {
        const probe = document.createElement('div');
        probe.style.background = 'var(--jp-layout-color1)';
        probe.style.color = 'var(--jp-ui-font-color1)';
        document.body.appendChild(probe);
        const want = getComputedStyle(probe);
        const got = getComputedStyle(document.getElementById('castray-sidebar'));
        const result = {wantBg: want.backgroundColor, wantFg: want.color, bg: got.backgroundColor, fg: got.color};
        probe.remove();
        return result;
    }""")


SPARK_COLOURS = {"cpu": "--jp-brand-color1", "gpu": "--jp-warn-color1", "memory": "--jp-success-color1"}


def _spark_check(page: Any, name: str) -> dict[str, dict[str, Any]]:
    """Each sparkline of a card: its points, its lines, its label, the colour its lines
    are drawn in, and the colour of the theme variable they should take."""
    return page.evaluate(
        """([name, colours]) => {
        const out = {};
        for (const [kind, variable] of Object.entries(colours)) {
            const box = document.querySelector(`#castray-sidebar [data-cluster="${name}"] [data-sparkline="${kind}"]`);
            const line = box && box.querySelector('polyline');
            const probe = document.createElement('div');
            probe.style.color = `var(${variable})`;
            document.body.appendChild(probe);
            out[kind] = {points: box ? Number(box.dataset.points) : -1,
                         lines: box ? box.querySelectorAll('polyline').length : -1,
                         label: box ? box.textContent : '', stroke: line ? getComputedStyle(line).stroke : null,
                         want: getComputedStyle(probe).color};
            probe.remove();
        }
        return out;
    }""",
        [name, SPARK_COLOURS],
    )


def _luminance(rgb: str) -> float:
    r, g, b = (int(x) for x in re.findall(r"\d+", rgb)[:3])
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255


def test_the_sidebar_follows_the_theme_with_sparklines_of_the_recorded_hour(
    page, head: LocalCluster, headless: LocalCluster
) -> None:
    from playwright.sync_api import expect

    sidebar = page.locator("#castray-sidebar")
    sidebar.locator(".castray-address").fill(headless.gcs_address)
    sidebar.get_by_role("button", name="Connect").click()
    expect(card(page, f"ray-{headless.gcs_port}")).to_be_visible(timeout=30_000)
    expect(card(page, f"ray-{headless.gcs_port}").get_by_role("button", name="Dashboard")).to_be_disabled()
    light = _theme_check(page)
    assert (light["bg"], light["fg"]) == (light["wantBg"], light["wantFg"]) and _luminance(light["bg"]) > 0.7
    # The head has been recorded since the first test attached it: its card draws the last
    # hour from the server's history (a point a minute), the sidebar fetching it every 30 s.
    # (Host CPU comes from the dashboard's node summary, which a head fills some seconds
    # after it starts.)
    recorded = f"ray-{head.gcs_port}"
    page.wait_for_function(
        f"Number(document.querySelector('#castray-sidebar [data-cluster=\"{recorded}\"] [data-sparkline=\"cpu\"]')"
        "?.dataset.points) > 0", timeout=120_000)  # fmt: skip
    sparks = _spark_check(page, recorded)
    for kind in ("cpu", "memory"):  # the head reports host CPU and memory; it has no GPU
        assert sparks[kind]["points"] >= 1 and sparks[kind]["lines"] >= 1, sparks
        assert sparks[kind]["stroke"] == sparks[kind]["want"], sparks
        assert re.fullmatch(rf"{'CPU' if kind == 'cpu' else 'memory'} \d+%", sparks[kind]["label"]), sparks
    assert (sparks["gpu"]["points"], sparks["gpu"]["lines"], sparks["gpu"]["label"]) == (0, 0, "GPU –"), sparks
    assert sparks["cpu"]["stroke"] != sparks["memory"]["stroke"]
    card(page, recorded).screenshot(path=str(ARTIFACTS / "sparklines-light.png"))
    sidebar.screenshot(path=str(ARTIFACTS / "sidebar-light.png"))
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    expect(page.locator("body")).to_have_attribute("data-jp-theme-name", "JupyterLab Dark", timeout=30_000)
    page.wait_for_timeout(500)
    dark = _theme_check(page)
    assert (dark["bg"], dark["fg"]) == (dark["wantBg"], dark["wantFg"]) and _luminance(dark["bg"]) < 0.3, dark
    assert _luminance(dark["fg"]) > 0.6
    dark_sparks = _spark_check(page, recorded)
    for kind in ("cpu", "memory"):  # the dark theme's colours, with no redraw
        assert dark_sparks[kind]["stroke"] == dark_sparks[kind]["want"] and dark_sparks[kind]["lines"] >= 1, dark_sparks
    card(page, recorded).screenshot(path=str(ARTIFACTS / "sparklines-dark.png"))
    sidebar.screenshot(path=str(ARTIFACTS / "sidebar-dark.png"))
    page.screenshot(path=str(ARTIFACTS / "lab-dark.png"))
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    expect(page.locator("body")).to_have_attribute("data-jp-theme-name", "JupyterLab Light", timeout=30_000)


def test_after_a_server_restart_the_sidebar_reconnects_with_the_same_clusters(page, lab, head, headless) -> None:
    from playwright.sync_api import expect

    names = sorted([f"ray-{head.gcs_port}", f"ray-{headless.gcs_port}"])
    page.evaluate("""() => {
        window.__castrayStatus = [];
        const line = document.querySelector('#castray-sidebar .castray-status');
        new MutationObserver(() => window.__castrayStatus.push(line.textContent)).observe(line,
            {childList: true, characterData: true, subtree: true});
    }""")
    expect(page.locator("#castray-sidebar .castray-status")).to_have_text("live", timeout=30_000)
    before = lab.process.pid if lab.process else None
    lab.restart()
    assert lab.process is not None and lab.process.pid != before
    page.wait_for_function("window.__castrayStatus.includes('reconnecting…')", timeout=30_000)
    expect(page.locator("#castray-sidebar .castray-status")).to_have_text("live", timeout=60_000)
    for name in names:
        expect(card(page, name)).to_be_visible()
    # the new server process has them attached again (from its file), not just the page
    import urllib.request

    request = urllib.request.Request(f"{lab.url}{BASE}castray/api/cluster/external-info",
                                     headers={"Authorization": f"token {lab.token}"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert sorted(c["name"] for c in json.loads(reply.read())["clusters"]) == names
    expect(card(page, names[0])).to_have_attribute("data-reachable", "reachable", timeout=30_000)
    page.locator("#castray-sidebar").screenshot(path=str(ARTIFACTS / "sidebar-after-restart.png"))
    # JupyterLab's own "Server Connection Error" dialog (shown while its server was away)
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        dialog.get_by_role("button").last.click()
        expect(dialog).to_have_count(0)
    card(page, f"ray-{headless.gcs_port}").get_by_role("button", name="Detach").click()
    expect(card(page, f"ray-{headless.gcs_port}")).to_have_count(0, timeout=30_000)
