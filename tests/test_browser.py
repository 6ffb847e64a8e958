"""The panel in a real browser: JupyterLab 4 and Chromium (Debian's), driven by Playwright.

Checks on the rendered page, not in the kernel: the panel appears with the head node and
ALIVE, follows a worker joining and dying without any user action (in the table and in
the picture's tiles), and its own Connect and Discover controls work. Screenshots land in test-artifacts/browser/.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from castray_nb.launch import LocalCluster
from tests.conftest import HOME
from tests.jupyter import jupyter_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.slow


def _needs() -> None:
    """Outside CI a missing browser skips, saying why; in CI (``CI`` set) it fails the run."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (.ci/run installs Debian's chromium: apt-get install chromium)")
    for module in ("playwright.sync_api", "jupyterlab"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(f"{module} (in the test extra)")
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("missing: " + "; ".join(missing))


@pytest.fixture(scope="module")
def lab() -> Iterator[dict[str, str]]:
    """JupyterLab 4 on 127.0.0.1 with a token, in a temporary directory of its own."""
    _needs()
    args = ("--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
    with jupyter_server("jupyterlab", env={"HOME": HOME}, args=args) as server:
        yield {"url": server.url, "token": server.token, "root": str(server.root)}


@pytest.fixture(scope="module")
def two_clusters() -> Iterator[tuple[LocalCluster, LocalCluster]]:
    _needs()
    first, second = LocalCluster(home=HOME), LocalCluster(home=HOME)
    try:
        first.launch(), second.launch()
        first.wait_ready(), second.wait_ready()
        yield first, second
    finally:
        first.stop()
        second.stop()


def _notebook(root: str, cells: list[str], name: str = "e2e.ipynb") -> str:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, Path(root) / name)
    return name


def test_the_panel_in_jupyterlab_follows_the_cluster(lab, two_clusters) -> None:
    from playwright.sync_api import expect

    first, second = two_clusters
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = _notebook(lab["root"], [
        "%load_ext castray_nb",
        f"state = %castray connect {first.gcs_address} --name e2e\nprint('attached', state.name, state.reachable)",
        "panel = %castray panel --interval 1\npanel",
    ])  # fmt: skip
    head_id = _head_id(first)
    with _notebook_page(lab, name, {"width": 1600, "height": 1000}) as page:
        panel = page.locator(".widget-vbox").filter(has_text="every (s)").first
        expect(panel).to_contain_text(head_id[:12], timeout=60_000)
        expect(panel.locator(f"tr[data-node-id='{head_id}']")).to_contain_text("ALIVE")
        panel.screenshot(path=str(ARTIFACTS / "panel-before.png"))

        worker = first.add_worker()  # from outside: no user action in the page
        worker_id = _new_node(first, {head_id})
        row = panel.locator(f"tr[data-node-id='{worker_id}']")
        expect(row).to_contain_text("ALIVE", timeout=15_000)
        # the picture, drawn on the page: a green tile for the new node, then a grey one
        tile = panel.locator(f"svg g[id='castray-node-ALIVE-{worker_id}']")
        expect(tile).to_be_visible(timeout=15_000)
        panel.screenshot(path=str(ARTIFACTS / "panel-worker-joined.png"))
        worker.stop()
        expect(row).to_contain_text("DEAD", timeout=60_000)
        expect(panel.locator(f"svg g[id='castray-node-DEAD-{worker_id}']")).to_be_visible(timeout=15_000)
        expect(tile).to_have_count(0)
        panel.screenshot(path=str(ARTIFACTS / "panel-worker-dead.png"))

        panel.get_by_placeholder("host:port, http://host:port, session name or auto").fill(second.gcs_address)
        panel.get_by_role("button", name=re.compile(r"^\W*Connect$")).click()
        expect(panel).to_contain_text(_head_id(second)[:12], timeout=20_000)
        panel.get_by_role("button", name=re.compile(r"^\W*Discover$")).click()
        expect(panel).to_contain_text("Discovered", timeout=20_000)
        expect(panel).to_contain_text(second.gcs_address)
        panel.screenshot(path=str(ARTIFACTS / "panel-after-controls.png"))


def test_the_panel_composes_in_a_vbox_and_a_rerun_cell_leaves_one(lab, two_clusters) -> None:
    """``W.VBox([castray_nb.panel()])`` renders in JupyterLab; the connect card is short;
    running the panel's cell again (JupyterLab sends the cell's id) closes the old panel."""
    from playwright.sync_api import expect

    first, _ = two_clusters
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = _notebook(lab["root"], [
        # (the kernel's registration with the Jupyter server is a subscriber from the start)
        "%load_ext castray_nb\nimport castray_nb, ipywidgets as W\nbase = len(castray_nb.session().bus)",
        f"castray_nb.connect({first.gcs_address!r})",
        "W.VBox([W.HTML('<b>My Ray dashboard</b>'), castray_nb.panel(interval=1)])",
        "import castray_nb.cells as cells\ns = castray_nb.session()\n"
        "print('left:', len(cells.owned()), len(s.scheduler.watches), len(s.bus) - base)",
    ], "compose.ipynb")  # fmt: skip
    head_id = _head_id(first)
    with _notebook_page(lab, name, {"width": 1700, "height": 1100}) as page:
        cells = page.locator(".jp-Notebook:visible .jp-Cell")
        card = cells.nth(1).locator(".castray-card")
        expect(card).to_contain_text(f"ray-{first.gcs_port}", timeout=30_000)
        expect(card).to_contain_text(re.compile(r"1/\d+ alive"))  # the head (the first test stopped a worker)
        cells.nth(1).locator(".jp-OutputArea").screenshot(path=str(ARTIFACTS / "connect-card.png"))
        box = cells.nth(2).locator(".widget-vbox").first
        expect(box).to_contain_text("My Ray dashboard", timeout=30_000)
        expect(box.locator(f"tr[data-node-id='{head_id}']")).to_contain_text("ALIVE", timeout=60_000)
        # the panel fits its cell: nothing sticks out past the output area's right edge
        area = cells.nth(2).locator(".jp-OutputArea-output").first.bounding_box()
        inner = box.locator(".castray-table").first.bounding_box()
        assert area and inner and inner["x"] + inner["width"] <= area["x"] + area["width"] + 1, (area, inner)
        expect(box.locator(f"svg g[id='castray-node-ALIVE-{head_id}']")).to_be_visible(timeout=30_000)
        cells.nth(2).screenshot(path=str(ARTIFACTS / "panel-in-a-vbox.png"))
        expect(cells.nth(3)).to_contain_text("left: 1 1 1", timeout=30_000)

        for run in range(4):  # the same cell, run again and again
            cells.nth(2).locator(".jp-InputArea-editor").click()
            page.keyboard.press("Control+Enter")
            expect(cells.nth(2).locator(".jp-InputPrompt")).to_contain_text(f"[{5 + run}]", timeout=30_000)
        expect(cells.nth(2).locator(f"tr[data-node-id='{head_id}']")).to_contain_text("ALIVE", timeout=60_000)
        cells.nth(3).locator(".jp-InputArea-editor").click()
        page.keyboard.press("Control+Enter")
        expect(cells.nth(3).locator(".jp-OutputArea")).to_contain_text("left: 1 1 1", timeout=30_000)


@contextmanager
def _notebook_page(
    lab: dict[str, str], name: str, viewport: dict[str, int], executable: str = CHROMIUM
) -> Iterator[Any]:
    """Chromium with the notebook ``name`` open in JupyterLab and every cell run once."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport=viewport)
            # a workspace of its own, reset: only this notebook is open
            workspace = Path(name).stem
            page.goto(f"{lab['url']}/lab/workspaces/{workspace}/tree/{name}?token={lab['token']}&reset")
            _run_all(page)
            yield page
        finally:
            browser.close()


def _run_all(page) -> None:
    """Run every cell once the kernel is idle; a Run All before the kernel exists is dropped."""
    from playwright.sync_api import expect

    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)
    for attempt in range(2):
        page.locator(".jp-Notebook:visible").first.click()
        page.keyboard.press("Escape")
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            expect(page.locator(".jp-Notebook:visible .jp-InputPrompt").first).to_contain_text("[1]", timeout=20_000)
            return
        except AssertionError:
            if attempt:
                raise


def _head_id(cluster: LocalCluster) -> str:
    from castray_nb.core.http import get_json

    nodes = get_json(f"{cluster.dashboard_url}/api/v0/nodes", 5)["data"]["result"]["result"]
    return next(n["node_id"] for n in nodes if n["is_head_node"])


def _new_node(cluster: LocalCluster, known: set[str]) -> str:
    from castray_nb.core.http import get_json

    nodes = get_json(f"{cluster.dashboard_url}/api/v0/nodes", 5)["data"]["result"]["result"]
    (new,) = [n["node_id"] for n in nodes if n["node_id"] not in known and n["state"] == "ALIVE"]
    return new


def test_no_jupyterlab_chromium_or_ray_left_behind(lab, two_clusters) -> None:
    """Runs last in this module; the fixtures' teardown is checked by the next session's
    before-stop look at the process table, and here we check nothing of ours is orphaned yet."""
    import psutil

    mine = [p for p in psutil.process_iter(["cmdline"]) if "chromium" in " ".join(p.info["cmdline"] or [])
            and "--headless" in " ".join(p.info["cmdline"] or [])]  # fmt: skip
    assert not mine, "a browser outlived its test"
