"""Three machines on one box (network namespaces): a Ray head and a worker "on another
machine" (namespace A, 10.213.0.2), JupyterLab here (10.213.1.1 on a veth to B), and
Chromium in namespace B (10.213.1.2), which can reach the Jupyter server and nothing else.

From that browser: attach the remote cluster by host alone, see both nodes in the panel,
open the panel's dashboard link, and see Ray's Cluster page list both nodes, through
Jupyter. The test also shows that the dashboard's own URL does not load in that browser,
so what it sees came through the proxy. Traffic goes only to addresses inside the
namespaces made here; they are deleted afterwards, also when the test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.conftest import HOME
from tests.jupyter import jupyter_server
from tests.netns import IP, ray_node, wait_for_alive_nodes
from tests.test_browser import ARTIFACTS, CHROMIUM, _needs, _notebook, _notebook_page

pytestmark = pytest.mark.slow
RAY_HOST, JUPYTER_HOST, BROWSER_HOST = "10.213.0.2", "10.213.1.1", "10.213.1.2"


@contextmanager
def namespace(peer_ip: str, own_ip: str, prefix: int = 24) -> Iterator[str]:
    """A namespace joined to this one by a veth pair: ``own_ip`` inside, ``peer_ip`` here.
    No default route inside: it reaches this namespace's end of the pair and nothing more."""
    name = f"castray-{uuid.uuid4().hex[:8]}"
    inner, outer = f"ci{name[-6:]}", f"co{name[-6:]}"
    subprocess.run([IP, "netns", "add", name], check=True, capture_output=True)
    try:
        for args in (
            [IP, "link", "add", outer, "type", "veth", "peer", "name", inner],
            [IP, "link", "set", inner, "netns", name],
            [IP, "addr", "add", f"{peer_ip}/{prefix}", "dev", outer],
            [IP, "link", "set", outer, "up"],
            [IP, "-n", name, "addr", "add", f"{own_ip}/{prefix}", "dev", inner],
            [IP, "-n", name, "link", "set", inner, "up"],
            [IP, "-n", name, "link", "set", "lo", "up"],
        ):
            subprocess.run(args, check=True, capture_output=True)
        yield name
    finally:
        subprocess.run([IP, "netns", "delete", name], capture_output=True)
        subprocess.run([IP, "link", "delete", outer], capture_output=True)


def test_a_browser_on_another_machine_sees_a_remote_clusters_dashboard_through_jupyter() -> None:
    from playwright.sync_api import Error, expect

    _needs()
    if os.geteuid() != 0 or not Path(IP).exists():
        pytest.fail("this test needs root and iproute2 (network namespaces), as on these machines and in CI")
    root = Path(tempfile.mkdtemp(prefix="castray-remote-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        ray_ns = stack.enter_context(namespace("10.213.0.1", RAY_HOST))
        browser_ns = stack.enter_context(namespace(JUPYTER_HOST, BROWSER_HOST))
        head = ray_node(ray_ns, RAY_HOST, root)
        stack.callback(head.stop)
        _wait_for_dashboard(ray_ns)
        worker = ray_node(ray_ns, RAY_HOST, root / "worker", head=f"{RAY_HOST}:6379")
        stack.callback(worker.stop)
        wait_for_alive_nodes(f"http://{RAY_HOST}:8265", 2, [head, worker])
        chromium = root / "chromium-in-b"
        chromium.write_text(f'#!/bin/sh\nexec {IP} netns exec {browser_ns} {CHROMIUM} "$@"\n')
        chromium.chmod(0o755)
        args = ("--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
        server = stack.enter_context(jupyter_server("jupyterlab", env={"HOME": HOME}, args=args, ip=JUPYTER_HOST))
        lab = {"url": server.url, "token": server.token, "root": str(server.root)}
        name = _notebook(lab["root"], [
            "%load_ext castray_nb",
            f"%castray connect {RAY_HOST} --name remote",
            "%castray panel --interval 1",
        ], "remote.ipynb")  # fmt: skip
        with _notebook_page(lab, name, {"width": 1500, "height": 1000}, executable=str(chromium)) as page:
            panel = page.locator(".widget-vbox").filter(has_text="every (s)").first
            expect(panel.locator("tr[data-node-id]").filter(has_text="ALIVE")).to_have_count(2, timeout=120_000)
            panel.screenshot(path=str(ARTIFACTS / "remote-panel.png"))

            direct = page.context.browser.new_page()
            with pytest.raises(Error):  # the cluster's own address: no route from the browser's machine
                direct.goto(f"http://{RAY_HOST}:8265/", timeout=5_000)
            direct.close()

            anchor = panel.locator("a", has_text="dashboard").first
            with page.expect_popup() as popup_info:
                anchor.click()
            popup = popup_info.value
            expect(popup.get_by_text("Cluster", exact=True).first).to_be_visible(timeout=60_000)
            assert popup.url.startswith(server.url + "/castray/dashboard/")
            popup.goto(popup.url.split("#")[0] + "#/cluster")
            expect(popup.get_by_text("ALIVE x 2")).to_be_visible(timeout=60_000)
            expect(popup.locator("table").filter(has_text="(Head)")).to_contain_text(RAY_HOST)
            popup.screenshot(path=str(ARTIFACTS / "remote-dashboard-through-jupyter.png"))


def _wait_for_dashboard(ns: str) -> None:
    """Until the head's dashboard answers inside its namespace (it takes ~20 s to start)."""
    probe = ("import time,urllib.request\nfor _ in range(240):\n try:\n  urllib.request.urlopen("
             f"'http://{RAY_HOST}:8265/api/version',timeout=2);break\n except Exception: time.sleep(0.5)\n"
             "else: raise SystemExit('the dashboard never answered')")  # fmt: skip
    subprocess.run([IP, "netns", "exec", ns, sys.executable, "-c", probe], check=True, timeout=150)
