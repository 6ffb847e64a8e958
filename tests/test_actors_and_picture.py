"""Actors of attached clusters and the picture of the clusters, on the shared real head.

A separate driver process (tests/drivers.py ActorDriver) joins the head, which has a
worker for this module, and keeps named and unnamed actors of two classes spread over
both nodes, plus one it killed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import pandas as pd
import pytest
from IPython.core.error import UsageError

from castray_nb.core.actors import ACTOR_COLUMNS, read_actors
from castray_nb.core.http import get_json
from castray_nb.core.session import Session
from castray_nb.launch import LocalCluster
from castray_nb.picture import render_picture
from castray_nb.widgets import Panel
from tests.conftest import HOME, wait_until
from tests.drivers import ActorDriver
from tests.test_notebook_face import run, shell  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def actors(head: LocalCluster) -> Iterator[ActorDriver]:
    worker = head.add_worker()
    driver = None
    try:
        driver = ActorDriver(head.gcs_address, HOME)
        yield driver
    finally:
        if driver is not None:
            driver.stop()
        worker.stop()


@pytest.fixture
def attached(settings, head: LocalCluster) -> Iterator[Session]:
    session = Session(settings)
    session.attach(session_info(session, head), "main")
    yield session
    session.detach_all()


def session_info(session: Session, head: LocalCluster):
    from castray_nb.core.connector import resolve

    info = resolve(head.dashboard_url or "", session.settings)
    return info


def pictured(svg: str, state: str) -> set[str]:
    """Node ids drawn as tiles of ``state`` in the picture's SVG."""
    return set(re.findall(rf'id="castray-node-{state}-([0-9a-f]+)"', svg))


# --- actors --------------------------------------------------------------------------


def test_every_actor_is_listed_named_or_not(attached: Session, actors: ActorDriver) -> None:
    found, skipped = attached.actors()
    assert skipped == {}
    by_id = {a.actor_id: a for a in found}
    assert set(actors.alive.values()) <= set(by_id) and actors.dead in by_id
    assert by_id[actors.dead].state == "DEAD" and by_id[actors.dead].name == "doomed"
    for name, actor_id in actors.alive.items():
        actor = by_id[actor_id]
        assert actor.state == "ALIVE" and actor.cluster == "main"
        assert actor.name == (None if name == "None" else name)
        assert actor.pid and actor.pid > 0 and actor.ray_namespace == "castray-test"
        assert actor.class_name == ("Counter" if name in ("None", "counter-2") else "Keeper")
        assert actor.required_resources == ({"CPU": 0.01} if actor.class_name == "Counter" else {})
    # spread over both nodes by the driver
    assert {by_id[i].node_id for i in actors.alive.values()} == set(actors.nodes)

    alive, _ = attached.actors(state="ALIVE")
    assert {a.actor_id for a in alive} >= set(actors.alive.values()) and actors.dead not in {a.actor_id for a in alive}


def test_the_state_api_is_paged_when_a_reply_is_cut(head: LocalCluster, actors: ActorDriver) -> None:
    assert head.dashboard_url
    url = head.dashboard_url

    def fetch(query: str):
        return get_json(query, 5.0)

    everything = read_actors(fetch, url, cluster="c", node_ids=actors.nodes)
    assert everything.requests == 1 and not everything.warnings
    total = len(everything.actors)
    assert total >= 5

    asked_again = read_actors(fetch, url, cluster="c", node_ids=actors.nodes, limit=2)
    assert asked_again.requests == 2 and len(asked_again.actors) == total  # cut at 2, asked again at its size

    by_node = read_actors(fetch, url, cluster="c", node_ids=actors.nodes, limit=2, max_limit=3)
    assert by_node.requests == 1 + len(actors.nodes)  # past the cap: node by node
    # the shared head also keeps other tests' actors, some on workers that are gone
    on_these_nodes = {a.actor_id for a in everything.actors if a.node_id in actors.nodes}
    assert on_these_nodes <= {a.actor_id for a in by_node.actors} and set(actors.alive.values()) <= on_these_nodes

    alive = read_actors(fetch, url, cluster="c", node_ids=actors.nodes, state="ALIVE", limit=1)
    assert {a.state for a in alive.actors} == {"ALIVE"} and len(alive.actors) >= 4


def test_the_actors_magic(shell, head: LocalCluster, headless: LocalCluster, actors: ActorDriver, capsys) -> None:  # noqa: F811
    assert run(shell, f"%castray connect {head.gcs_address} --name main").success
    assert run(shell, f"%castray connect {headless.gcs_address} --name nodash").success
    assert run(shell, "df = %castray actors --state alive").success
    frame = shell.user_ns["df"]
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(ACTOR_COLUMNS)
    assert set(actors.alive.values()) <= set(frame.actor_id) and set(frame.state) == {"ALIVE"}
    assert "no dashboard" in frame.attrs["skipped"]["nodash"]
    assert "no actors from nodash" in capsys.readouterr().err

    assert run(shell, "df2 = %castray actors --cluster main").success
    assert actors.dead in set(shell.user_ns["df2"].actor_id)
    for line, says in (("--state SLEEPY", "unknown actor state"), ("--cluster nope", "no attached cluster")):
        with pytest.raises(UsageError, match=says):
            shell.run_line_magic("castray", f"actors {line}")


# --- the panel: actor counts and the picture ---------------------------------------


def test_the_panel_counts_actors_per_node_and_lists_them(attached: Session, actors: ActorDriver) -> None:
    panel = Panel(attached, interval=0.5)
    try:
        wait_until(lambda: len(attached.actor_counts()) == len(actors.nodes), 20, 0.2)
        counts = attached.actor_counts()
        assert sum(counts.values()) >= 4 and all(n >= 2 for n in counts.values())
        panel.render()
        assert "<th style='text-align:left;padding:2px 8px'>actors</th>" in panel.table.value
        keeper_a_node = next(v for _, v in panel.actor_choice.options if v and v.endswith(actors.nodes[0]))
        panel.actor_choice.value = keeper_a_node
        listed = panel.actor_list.value
        assert actors.alive["keeper-a"] in listed and "(unnamed)" in listed and "CPU 0.01" in listed
        assert actors.alive["keeper-b"] not in listed  # that one lives on the other node
    finally:
        panel.close()


def test_the_picture_follows_a_worker_joining_and_dying(attached: Session, head: LocalCluster) -> None:
    panel = Panel(attached, interval=0.5)
    try:
        wait_until(lambda: pictured(panel.picture.value, "ALIVE"), 20, 0.2)
        before = panel.picture.value
        alive_before = pictured(before, "ALIVE")
        head_id = next(r.node_id for r in attached.rows() if r.is_head)
        assert head_id in alive_before and "★" in before

        worker = head.add_worker()
        try:
            new = wait_until(lambda: pictured(panel.picture.value, "ALIVE") - alive_before, 30, 0.2)
            (new_id,) = new
        finally:
            worker.stop()
        wait_until(lambda: new_id in pictured(panel.picture.value, "DEAD"), 60, 0.2)
        assert new_id not in pictured(panel.picture.value, "ALIVE")
        assert panel.picture.value != before

        static = panel._repr_mimebundle_()["text/html"]  # the fallback carries the same picture
        assert "<svg" in static and new_id in pictured(static, "DEAD") and head_id in pictured(static, "ALIVE")
    finally:
        panel.close()


def test_a_big_cluster_is_drawn_capped_with_the_rest_summed_up() -> None:
    from castray_nb.core.client import ClusterClient
    from castray_nb.core.settings import Settings
    from castray_nb.testing.replay import ReplayDashboard

    with ReplayDashboard(nodes=2500) as url:
        rows = ClusterClient(None, url, Settings()).read(cluster="big").nodes
    svg = render_picture(rows)
    tiles = pictured(svg, "ALIVE") | pictured(svg, "DEAD")
    assert len(tiles) == 40 and 'id="castray-more"' in svg and "+2460" in svg
    assert "2500 nodes" in svg


def test_the_actors_command_line(head: LocalCluster, actors: ActorDriver) -> None:
    command = [sys.executable, "-m", "castray_nb.cli", "actors", "--address", head.dashboard_url or ""]
    result = subprocess.run([*command, "--state", "alive", "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    ids = {r["actor_id"] for r in rows}
    assert set(actors.alive.values()) <= ids and actors.dead not in ids
    assert all(list(r) == list(ACTOR_COLUMNS) and r["state"] == "ALIVE" for r in rows)

    table = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "keeper-a" in table.stdout and "doomed" in table.stdout

    bad = subprocess.run([*command, "--state", "sleepy"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1
    assert "unknown actor state" in bad.stderr
