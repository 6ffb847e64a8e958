"""A cluster of the other end of the supported Ray range, read from this environment.

In the main environment (the newest Ray) the clusters here are of Ray 2.40; in CI's
compatibility environment (castray-nb installed beside Ray 2.40) they are of the newest
Ray. Either way: discovery with the version note, nodes and usage through the dashboard
and the GCS, with and without a dashboard, actors, jobs and their logs, the dashboard
proxy and the sidebar.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from castray_nb.core.client import ClusterClient
from castray_nb.core.discovery import discover
from castray_nb.core.session import Session
from castray_nb.core.settings import Settings
from castray_nb.launch import LocalCluster
from tests.conftest import HOME, INSTALLED_RAY, other_ray_version, wait_until
from tests.jupyter import jupyter_server
from tests.test_jobs import ray_job_submit
from tests.test_server import call

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "versions"


@dataclass
class OtherRay:
    version: str
    ray: str  # its ray executable
    head: LocalCluster
    headless: LocalCluster


@pytest.fixture(scope="module")
def old(other_ray: str) -> Iterator[OtherRay]:
    version = other_ray_version(other_ray)
    assert version != INSTALLED_RAY, "the other Ray must be another version"
    clusters = [LocalCluster(home=HOME, ray=other_ray), LocalCluster(home=HOME, ray=other_ray, dashboard=False)]
    launched: list[LocalCluster] = []
    try:
        for cluster in clusters:
            launched.append(cluster.launch())
        for cluster in launched:
            cluster.wait_ready()
        yield OtherRay(version, other_ray, *clusters)
    finally:
        for cluster in launched:
            cluster.stop()


def test_discovery_finds_both_with_their_version_and_the_note(old: OtherRay, settings: Settings) -> None:
    found = {c.gcs_address: c for c in discover(settings)}
    for cluster, has_dashboard in ((old.head, True), (old.headless, False)):
        info = found[cluster.gcs_address]
        assert info.ray_version == old.version and info.num_nodes == 1
        assert (info.dashboard_url is not None) == has_dashboard
        assert info.note and f"Ray {old.version}" in info.note and f"Ray {INSTALLED_RAY}" in info.note


def test_nodes_and_usage_through_the_dashboard_and_the_gcs(old: OtherRay, settings: Settings) -> None:
    readings = {
        "dashboard": ClusterClient(None, old.head.dashboard_url, settings).read(cluster="old"),
        "gcs": ClusterClient(old.head.gcs_address, None, settings).read(cluster="old"),
        "headless": ClusterClient(old.headless.gcs_address, None, settings).read(cluster="old"),
    }
    for how, reading in readings.items():
        assert reading.via == ("dashboard" if how == "dashboard" else "gcs")
        (node,) = reading.nodes
        assert node.state == "ALIVE" and node.is_head and node.CPU == 1 and node.memory_bytes > 0, how
        assert reading.ray_version == old.version and any(old.version in w for w in reading.warnings), how
    key = lambda r: (r.node_id, r.is_head, r.CPU, r.memory_bytes, r.object_store_bytes)  # noqa: E731
    assert key(readings["dashboard"].nodes[0]) == key(readings["gcs"].nodes[0])
    client = ClusterClient(None, old.head.dashboard_url, settings)
    wait_until(lambda: any(r.CPU_used is not None for r in client.read(cluster="old").nodes), 60)


def test_jobs_logs_and_actors(old: OtherRay, settings: Settings) -> None:
    job = f"old-{time.time_ns()}"
    ray_job_submit(old.head, job, "print('hello from the old ray')")
    with Session(settings) as session:
        session.connect(old.head.dashboard_url or "", name="old")
        wait_until(lambda: session.job(job)[0].status == "SUCCEEDED", 120, 1)
        record, _ = session.job(job)
        assert record.type == "SUBMISSION" and record.cluster == "old" and record.end_time is not None
        assert "hello from the old ray" in session.job_logs(job)
        found, skipped = session.actors()
        assert skipped == {} and found, "a submitted job leaves its supervisor actor"
        assert {a.cluster for a in found} == {"old"}


def _get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return reply.status, reply.read()


def test_the_proxy_and_the_sidebar_show_it(old: OtherRay) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, _needs

    _needs()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    args = ("--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True")  # fmt: skip
    with jupyter_server("jupyterlab", env={"HOME": HOME}, args=args) as lab:
        status, reply = call(lab, "POST", "/cluster/connect-external",
                             {"cluster_address": old.head.dashboard_url, "name": "old"})  # fmt: skip
        assert status == 200, reply
        cluster: dict[str, Any] = reply["cluster"]
        assert cluster["ray_version"] == old.version and cluster["dashboard_link"]
        status, text = _get(f"{lab.url}{cluster['dashboard_link']}api/version", lab.token)
        assert status == 200 and json.loads(text)["ray_version"] == old.version
        status, page = _get(f"{lab.url}{cluster['dashboard_link']}", lab.token)
        assert status == 200 and b"<html" in page.lower()

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            try:
                page_ = browser.new_page(viewport={"width": 1300, "height": 900})
                page_.goto(f"{lab.url}/lab/workspaces/versions?token={lab.token}&reset")
                page_.locator(".jp-SideBar .lm-TabBar-tab[data-id='castray-sidebar']").click(timeout=60_000)
                card = page_.locator("#castray-sidebar [data-cluster='old']")
                expect(card).to_contain_text(f"Ray {old.version}", timeout=60_000)
                expect(card).to_contain_text("1 alive", timeout=30_000)
                page_.screenshot(path=str(ARTIFACTS / f"sidebar-ray-{old.version}.png"))
            finally:
                browser.close()
