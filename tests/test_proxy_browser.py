"""Ray's dashboard through Jupyter, in Chromium: JupyterLab under a JupyterHub-style base
URL (``/user/alice/``), a real Ray head, and a fake "dashboard" with a hostile page.

- Ray's own web app loads through the proxy; its Cluster page lists the node, its Jobs
  page and a log view load, and every request it makes stays under the proxy.
- A hostile page served through the proxy cannot use the user's Jupyter session.
- The dashboard link in a kernel's panel, clicked, opens that cluster's dashboard; when
  the kernel ends, the server forgets what it registered.
Screenshots land in test-artifacts/browser/.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from castray_nb.launch import LocalCluster
from tests.conftest import HOME
from tests.fake_dashboard import FakeDashboard
from tests.jupyter import jupyter_server
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, _needs, _notebook, _notebook_page

pytestmark = pytest.mark.slow
BASE = "/user/alice/"


@pytest.fixture(scope="module")
def hub_lab(fake: FakeDashboard) -> Iterator[dict[str, str]]:
    """JupyterLab as JupyterHub runs it: under a base URL."""
    _needs()
    args = ("--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--ServerApp.base_url={BASE}")  # fmt: skip
    with jupyter_server("jupyterlab", env={"HOME": HOME}, args=args, status_path=BASE) as server:
        yield {"url": server.url + BASE.rstrip("/"), "token": server.token, "root": str(server.root),
               "runtime": str(server.root / "runtime")}  # fmt: skip


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDashboard]:
    with FakeDashboard(session_name="session_2026-01-01_00-00-00_000000_9", jupyter_base=BASE) as running:
        yield running


def rest(lab: dict[str, str], method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else (b"" if method != "GET" else None)
    request = urllib.request.Request(f"{lab['url']}/castray/api{path}", data=data, method=method,
                                     headers={"Authorization": f"token {lab['token']}"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_rays_own_dashboard_works_through_jupyter(hub_lab, head: LocalCluster, browser) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cluster = rest(hub_lab, "POST", "/cluster/connect-external", {"cluster_address": head.dashboard_url,
                                                                  "name": "ray-ui"})["cluster"]  # fmt: skip
    link = cluster["dashboard_link"]
    assert link.startswith(f"{BASE}castray/dashboard/ray-ui/cap-")
    origin = hub_lab["url"].removesuffix(BASE.rstrip("/"))
    page = browser.new_page(viewport={"width": 1500, "height": 950})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))

    page.goto(origin + link + "#/cluster")
    table = page.locator("table").filter(has_text="ALIVE")
    expect(table).to_contain_text("(Head)", timeout=60_000)
    expect(table).to_contain_text(head.gcs_address.split(":")[0])
    page.screenshot(path=str(ARTIFACTS / "dashboard-cluster-through-jupyter.png"))

    page.goto(origin + link + "#/jobs")
    expect(page.get_by_text("Job List", exact=True)).to_be_visible(timeout=30_000)
    expect(page.locator("body")).to_contain_text("Fetched jobs", timeout=30_000)

    page.goto(origin + link + "#/logs")
    page.get_by_text(re.compile(r"Node ID: [0-9a-f]{12}")).first.click(timeout=30_000)
    page.get_by_text("dashboard.log", exact=True).first.click(timeout=30_000)
    # the log's own lines (Python logging: "2026-11-29 05:40:01,123 INFO ...")
    expect(page.locator("body")).to_contain_text(
        re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+INFO"), timeout=30_000
    )
    page.screenshot(path=str(ARTIFACTS / "dashboard-log-through-jupyter.png"))

    assert requests and all(u.startswith(origin + link) or u.startswith("data:") for u in requests), [
        u for u in requests if not u.startswith(origin + link)
    ]
    rest(hub_lab, "DELETE", "/cluster/disconnect-external?name=ray-ui")


def test_a_hostile_dashboard_page_cannot_use_the_jupyter_session(hub_lab, fake: FakeDashboard, browser) -> None:
    from playwright.sync_api import expect

    body = {"cluster_address": fake.url, "name": "hostile"}
    link = rest(hub_lab, "POST", "/cluster/connect-external", body)["cluster"]["dashboard_link"]
    origin = hub_lab["url"].removesuffix(BASE.rstrip("/"))
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{hub_lab['url']}/lab?token={hub_lab['token']}")  # logged in: Jupyter's cookies are set
    expect(page.locator("#jp-main-statusbar")).to_be_visible(timeout=60_000)
    assert any(c["name"].startswith("username-") for c in context.cookies())
    kernels_before = _kernels(hub_lab)

    page.goto(origin + link + "hostile")
    out = page.locator("#out")
    expect(out).to_contain_text("done=1", timeout=30_000)
    report = dict(line.split("=", 1) for line in out.inner_text().splitlines() if "=" in line)
    assert report["target"] == f"{origin}{BASE}api/kernels"  # Jupyter's API itself, not a proxied path
    assert report["cookie"] in ('""', "error:SecurityError")  # no _xsrf, no login cookie to read
    assert not report["list"].startswith("200")  # Jupyter's API is not readable from the page
    assert report["start"] != "201" and not report["start"].startswith("2")
    assert _kernels(hub_lab) == kernels_before  # nothing was started
    page.screenshot(path=str(ARTIFACTS / "dashboard-hostile-page.png"))
    rest(hub_lab, "DELETE", "/cluster/disconnect-external?name=hostile")


def _kernels(lab: dict[str, str]) -> list[str]:
    request = urllib.request.Request(f"{lab['url']}/api/kernels", headers={"Authorization": f"token {lab['token']}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return sorted(k["id"] for k in json.loads(reply.read()))


def test_the_link_in_a_kernels_panel_opens_that_dashboard(hub_lab, head: LocalCluster, fake: FakeDashboard) -> None:
    from playwright.sync_api import expect

    name = _notebook(hub_lab["root"], [
        "%load_ext castray_nb\nimport castray_nb",
        f"castray_nb.connect({head.dashboard_url!r}, name='mine')\n"
        f"castray_nb.connect({fake.url!r}, name='faked')",
        "castray_nb.panel(interval=1)",
    ], "link.ipynb")  # fmt: skip
    registry = Path(hub_lab["runtime"]) / "castray_nb"
    with _notebook_page(hub_lab, name, {"width": 1500, "height": 1000}) as page:
        panel = page.locator(".widget-vbox").filter(has_text="every (s)").first
        anchor = panel.locator("a", has_text="dashboard").first
        expect(anchor).to_be_visible(timeout=60_000)
        href = anchor.get_attribute("href") or ""
        assert re.fullmatch(rf"{BASE}castray/dashboard/session_[0-9_-]+/", href), href
        (entry,) = [p for p in registry.glob("kernel-*.json")]
        assert oct(entry.stat().st_mode & 0o777) == "0o600"
        with page.expect_popup() as popup_info:
            anchor.click()
        popup = popup_info.value
        expect(popup.get_by_text("Cluster", exact=True).first).to_be_visible(timeout=60_000)
        assert "/cap-" in popup.url
        popup.goto(popup.url.split("#")[0] + "#/cluster")
        expect(popup.locator("table").filter(has_text="ALIVE")).to_contain_text("(Head)", timeout=60_000)
        popup.screenshot(path=str(ARTIFACTS / "dashboard-from-the-panel-link.png"))
        # the kernel ends: what it registered goes; the fake, which only it attached, is
        # still a recent attachment of the user's (discovery offers it again) until forgotten
        page.get_by_role("menuitem", name="Kernel", exact=True).click()
        page.get_by_role("menuitem", name="Shut Down Kernel", exact=True).click()
        expect(page.locator("#jp-main-statusbar")).to_contain_text("No Kernel", timeout=30_000)
    assert fake.url in {e["address"] for e in rest(hub_lab, "GET", "/recent")["clusters"]}
    assert [e["address"] for e in rest(hub_lab, "DELETE", "/recent?name=faked")["forgotten"]] == [fake.url]
    request = urllib.request.Request(f"{hub_lab['url']}/castray/dashboard/{fake.session_name}/",
                                     headers={"Authorization": f"token {hub_lab['token']}"})  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as gone:
            if gone.code == 404:
                assert json.loads(gone.read())["error"] == "unknown_cluster"
                break
        assert time.monotonic() < deadline, "the ended kernel's cluster still resolves"
        time.sleep(1)
    assert not list(registry.glob("kernel-*.json"))
