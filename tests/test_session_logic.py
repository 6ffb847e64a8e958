"""The session's logic behind injected fakes: connect, names, discovery, stale readings,
UNREACHABLE, events, lifecycles, the panel's ownership and reprs. Milliseconds, no cluster;
the real clusters prove the integration elsewhere."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import ipywidgets as W
import pytest

from castray_nb import cells, widgets
from castray_nb.core.client import Reading
from castray_nb.core.discovery import ClusterInfo, DiscoveryReport
from castray_nb.core.errors import (
    AmbiguousAddress,
    CastrayError,
    ClusterUnreachable,
    InvalidName,
    NameTaken,
)
from castray_nb.core.model import Event
from castray_nb.core.naming import checked_name, default_name
from castray_nb.core.nodes import NodeRecord
from castray_nb.core.session import Session
from castray_nb.core.settings import Settings

NOW = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


def info(port: int, host: str = "127.0.0.1", session: str | None = None) -> ClusterInfo:
    return ClusterInfo(
        name=session or f"session_2026-11-29_00-00-00_000000_{port}",
        gcs_address=f"{host}:{port}",
        dashboard_url=None,
        ray_version="2.60.0",
        session_dir=None,
        num_nodes=1,
        auth_required=False,
        sources=("process",),
    )


def node(cluster: str, node_id: str, state: str = "ALIVE", head: bool = False) -> NodeRecord:
    return NodeRecord(cluster, "external", node_id, "192.0.2.1", head, state, 1.0, 0.0, 2.0**30, 2.0**29, NOW)


class FakeReader:
    """Answers reads from a script: a list of node-id lists, or exceptions; ``gate`` holds a read."""

    def __init__(self, session_name: str = "session_fake") -> None:
        self.session_name = session_name
        self.script: list[Any] = []
        self.reads = 0
        self.gates: dict[int, threading.Event] = {}

    def read(self, *, cluster: str, previous: Any = ()) -> Reading:
        number = self.reads
        self.reads += 1
        if number in self.gates:
            self.gates[number].wait(5)
        step = self.script[min(number, len(self.script) - 1)] if self.script else [("h", "ALIVE", True)]
        if isinstance(step, Exception):
            raise step
        nodes = [node(cluster, i, s, h) for i, s, h in step]
        return Reading(self.session_name, nodes, "dashboard", 0.001, len(nodes))

    def actors(self, **kwargs: Any) -> Any:
        return SimpleNamespace(actors=[])


@pytest.fixture
def world() -> Iterator[SimpleNamespace]:
    """A session whose discovery and readers are fakes; ``world.found`` is what discovery finds."""
    state = SimpleNamespace(found=[], readers={}, broken=set())

    def discoverer(settings: Settings) -> DiscoveryReport:
        return DiscoveryReport(clusters=tuple(state.found))

    def reader(cluster: ClusterInfo, settings: Settings, token: object = None) -> FakeReader:
        if cluster.name in state.broken:
            raise CastrayError(f"{cluster.name} cannot be read here")
        return state.readers.setdefault(cluster.name, FakeReader(cluster.name))

    state.session = Session(Settings(), reader=reader, discoverer=discoverer)
    yield state
    state.session.close()


def events_of(session: Session) -> list[Event]:
    seen: list[Event] = []
    session.subscribe(seen.append)
    return seen


# --- one connect path ------------------------------------------------------------------


def test_auto_attaches_the_only_cluster_under_a_short_name(world: SimpleNamespace) -> None:
    world.found = [info(6379)]
    state = world.session.connect("auto")
    assert state.name == "ray-6379"
    assert state.session_name == world.found[0].name  # the session name stays a field
    assert [c.name for c in world.session.clusters()] == ["ray-6379"]
    assert {r.cluster for r in world.session.rows()} == {"ray-6379"}


def test_auto_with_several_clusters_names_them_and_attaches_nothing(world: SimpleNamespace) -> None:
    world.found = [info(6379), info(6380)]
    with pytest.raises(AmbiguousAddress) as caught:
        world.session.connect("auto")
    message = str(caught.value)
    assert "\n" not in message and "discover --connect" in message
    assert world.found[0].name in message and world.found[1].name in message
    assert world.session.clusters() == []


def test_auto_with_no_cluster_is_unreachable(world: SimpleNamespace) -> None:
    with pytest.raises(ClusterUnreachable, match="no live Ray cluster"):
        world.session.connect("auto")


def test_a_session_name_attaches_that_cluster(world: SimpleNamespace) -> None:
    world.found = [info(6379), info(6380)]
    state = world.session.connect(world.found[1].name, name="second")
    assert state.name == "second" and state.info.gcs_address == "127.0.0.1:6380"


def test_a_name_taken_by_another_cluster_is_refused_and_nothing_changes(world: SimpleNamespace) -> None:
    world.found = [info(6379)]
    world.session.connect("auto", name="lab")
    world.found = [info(6380)]
    with pytest.raises(NameTaken, match="lab"):
        world.session.connect("auto", name="lab")
    assert [(c.name, c.info.gcs_address) for c in world.session.clusters()] == [("lab", "127.0.0.1:6379")]
    # the same cluster again is no error: it is already there
    world.found = [info(6379)]
    assert world.session.connect("auto", name="lab").name == "lab"


@pytest.mark.parametrize(
    "bad", ["", " lab", "lab/x", "a" * 65, "..", ".", "lab name", "\x1b[2J", "ünïcode", "a;b", "%2e", 7, None]
)
def test_names_are_safe_in_a_url_and_on_a_magic_line(bad: object) -> None:
    with pytest.raises(InvalidName) as caught:
        checked_name(bad)
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


@pytest.mark.parametrize("good", ["lab", "ray-6379", "a.b_c-d", "A" * 64, "10.213.0.2-6379"])
def test_good_names_pass(good: str) -> None:
    assert checked_name(good) == good


def test_default_names_are_short_and_unique_in_a_session(world: SimpleNamespace) -> None:
    assert default_name(info(6379)) == "ray-6379"
    assert default_name(info(6379, host="10.213.0.2")) == "10.213.0.2-6379"
    assert default_name(info(6379, host="[fe80::1]")) == "fe80--1-6379"
    dash_only = ClusterInfo("session_x", None, "http://127.0.0.1:8265", None, None, None, False, ("address",))
    assert default_name(dash_only) == "ray-8265"
    # a name already in use gets a suffix
    world.session.attach(info(6380), name="ray-6379")
    world.session.attach(info(6379))
    world.session.attach(info(6381), name="ray-6381")
    names = [c.name for c in world.session.clusters()]
    assert names == ["ray-6379", "ray-6379-2", "ray-6381"]
    assert all(checked_name(n) == n for n in names)


def test_discover_connect_attaches_what_it_can_and_reports_each_failure(world: SimpleNamespace) -> None:
    world.found = [info(6379), info(6380), info(6381)]
    world.broken = {world.found[1].name}
    found = world.session.discover(connect=True)
    assert len(found) == 3
    assert sorted(c.name for c in world.session.clusters()) == ["ray-6379", "ray-6381"]
    report = found.report
    assert report.attached == ("ray-6379", "ray-6381")
    assert report.attach_errors == ((world.found[1].name, f"{world.found[1].name} cannot be read here"),)
    assert all(c.reachable for c in world.session.clusters())  # and they were read


def test_two_discoveries_at_once_each_get_their_own_report() -> None:
    """The report comes back with what it found: a discovery running meanwhile (the
    server's proxy looks clusters up by discovering) cannot swap it."""
    slow = threading.Event()

    def discoverer(settings: Settings) -> DiscoveryReport:
        if settings.all_users:
            slow.wait(5)  # still running while the other one starts and ends
            return DiscoveryReport((info(6379), info(6380)), rejected=(("everyone's", "asked for all users"),))
        slow.set()
        return DiscoveryReport((info(6381),), rejected=(("mine", "only mine"),))

    with Session(Settings(), reader=lambda i, s, t: FakeReader(i.name), discoverer=discoverer) as session:
        results: dict[str, Any] = {}
        everyone = threading.Thread(target=lambda: results.update(all=session.discover(all_users=True)))
        everyone.start()
        results["mine"] = session.discover()
        everyone.join(10)
    assert [c.name for c in results["mine"]] == [info(6381).name]
    assert results["mine"].report.rejected == (("mine", "only mine"),)
    assert len(results["all"]) == 2 and results["all"].report.rejected == (("everyone's", "asked for all users"),)


# --- readings: stale ones dropped, UNREACHABLE, events -----------------------------------


def test_an_older_reading_never_overwrites_a_newer_one(world: SimpleNamespace) -> None:
    world.found = [info(6379)]
    world.session.connect("auto", refresh=False)
    reader = world.readers[world.found[0].name]
    reader.script = [[("h", "ALIVE", True), ("w", "ALIVE", False)], [("h", "ALIVE", True), ("w", "DEAD", False)]]
    reader.gates[0] = threading.Event()  # the first read hangs until released
    seen = events_of(world.session)
    slow = threading.Thread(target=world.session.refresh)
    slow.start()
    while reader.reads < 1:
        time.sleep(0.001)
    world.session.refresh()  # the second read lands first: the worker is DEAD
    reader.gates[0].set()  # now the first, older reading comes back: worker ALIVE
    slow.join(5)
    assert {r.node_id: r.state for r in world.session.rows()} == {"h": "ALIVE", "w": "DEAD"}
    assert not [e for e in seen if e.kind == "node_state_changed"]  # no false DEAD -> ALIVE


def test_a_cluster_that_stops_answering_turns_unreachable_once_then_recovers(world: SimpleNamespace) -> None:
    world.found = [info(6379)]
    world.session.connect("auto", refresh=False)
    reader = world.readers[world.found[0].name]
    gone = ClusterUnreachable("no GCS answers at 127.0.0.1:6379")
    reader.script = [[("h", "ALIVE", True), ("w", "DEAD", False)], gone, gone, [("h", "ALIVE", True)]]
    seen = events_of(world.session)
    world.session.refresh()
    world.session.refresh()
    assert {r.node_id: r.state for r in world.session.rows()} == {"h": "UNREACHABLE", "w": "DEAD"}
    (state,) = world.session.clusters()
    assert state.reachable is False and "no GCS answers" in (state.error or "")
    world.session.refresh()
    assert [e.kind for e in seen].count("cluster_unreachable") == 1
    world.session.refresh()
    recovery = [(e.kind, e.node_id, e.detail) for e in seen[-3:]]
    assert recovery[0] == ("cluster_recovered", None, "answering again")
    assert sorted(recovery[1:]) == [("node_removed", "w", ""), ("node_state_changed", "h", "UNREACHABLE -> ALIVE")]
    assert world.session.clusters()[0].reachable is True


def test_node_events_follow_a_worker_joining_and_dying(world: SimpleNamespace) -> None:
    world.found = [info(6379)]
    world.session.connect("auto", refresh=False)
    reader = world.readers[world.found[0].name]
    reader.script = [[("h", "ALIVE", True)], [("h", "ALIVE", True), ("w", "ALIVE", False)]]
    reader.script.append([("h", "ALIVE", True), ("w", "DEAD", False)])
    seen = events_of(world.session)
    for _ in range(3):
        world.session.refresh()
    assert [(e.kind, e.node_id, e.detail) for e in seen if e.kind.startswith("node")] == [
        ("node_added", "h", "ALIVE"),
        ("node_added", "w", "ALIVE"),
        ("node_state_changed", "w", "ALIVE -> DEAD"),
    ]


# --- lifecycles ----------------------------------------------------------------------------


def test_closing_a_session_ends_its_watches_subscribers_and_thread(world: SimpleNamespace) -> None:
    world.found = [info(6379)]
    with Session(Settings(), reader=lambda i, s, t: FakeReader(), discoverer=lambda s: DiscoveryReport(())) as session:
        session.attach(world.found[0])
        session.watch(0.2)
        session.subscribe(lambda e: None)
        assert session.watching
    assert session.closed and not session.watching and session.clusters() == []
    deadline = time.monotonic() + 3
    while any(t.name == "castray-refresh" and t.is_alive() for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the refresh thread outlived its session"
        time.sleep(0.05)
    with pytest.raises(CastrayError, match="closed"):
        session.watch(1)


def _counts(session: Session) -> tuple[int, int]:
    return len(session.scheduler.watches), len(session.bus)


def test_the_panel_is_a_widget_that_composes(world: SimpleNamespace) -> None:
    world.found = [info(6379)]
    world.session.connect("auto")
    with widgets.Panel(world.session, interval=5) as panel:
        assert isinstance(panel, W.DOMWidget) and isinstance(panel, W.VBox)
        box = W.VBox([panel])
        tabs = W.Tab(children=[box])
        assert tabs.children[0].children[0] is panel
        bundle = panel._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert "ray-6379" in bundle["text/html"] and "ray-6379" in bundle["text/plain"]
        assert _counts(world.session) == (1, 1)
    assert panel.closed and _counts(world.session) == (0, 0)
    assert all(model.comm is None for model in widgets._models(panel)), "every model closed, layouts and styles too"


def test_rerunning_a_cell_closes_its_panel(world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five runs of the same cell leave one panel, one watch, one subscriber; another
    cell's panel is left alone; a cell that runs again without a panel closes its own."""
    cell = {"id": "cell-a"}
    monkeypatch.setattr(cells, "current_cell_id", lambda: cell["id"])
    made = []
    for _ in range(5):
        cells._on_pre_run_cell(SimpleNamespace(cell_id="cell-a"))  # what IPython does first
        made.append(widgets.panel(interval=5, session=world.session))
    assert [p.closed for p in made] == [True, True, True, True, False]
    assert _counts(world.session) == (1, 1)
    cell["id"] = "cell-b"
    other = widgets.panel(interval=5, session=world.session)
    cells._on_pre_run_cell(SimpleNamespace(cell_id="cell-a"))  # cell a again, now without a panel
    assert made[-1].closed and not other.closed
    assert _counts(world.session) == (1, 1)
    other.close()
    assert _counts(world.session) == (0, 0) and widgets.open_panels() == []


def test_without_a_cell_id_the_newest_panel_replaces_the_last(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cells, "current_cell_id", lambda: None)
    first = widgets.panel(interval=5, session=world.session)
    second = widgets.panel(interval=5, session=world.session)
    assert first.closed and not second.closed and _counts(world.session) == (1, 1)
    second.close()


def test_a_real_shell_passes_cell_ids_to_the_panel_hook(world: SimpleNamespace) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # its database would live in the test HOME, removed at the end
    shell = InteractiveShell.instance(config=config)
    shell.run_cell("%load_ext castray_nb", cell_id="setup")  # hooks the cells, as in a notebook
    shell.user_ns["make"] = lambda: widgets.panel(interval=5, session=world.session)
    for _ in range(3):
        shell.run_cell("p = make()", cell_id="the-cell")
    assert len(widgets.open_panels()) == 1 and _counts(world.session) == (1, 1)
    shell.run_cell("1 + 1", cell_id="the-cell")  # the cell now holds other code
    assert widgets.open_panels() == [] and _counts(world.session) == (0, 0)


def test_panel_writes_from_many_threads_at_once(world: SimpleNamespace) -> None:
    """Refresh renders, events, messages and page turns from several threads: no error."""
    world.found = [info(6379)]
    world.session.connect("auto")
    errors: list[BaseException] = []

    def hammer(action: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                for _ in range(60):
                    action()
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        return run

    with widgets.Panel(world.session, interval=0.2) as panel:
        actions = [
            panel.render,
            lambda: panel.say("hello"),
            lambda: panel._on_event(Event("node_added", "ray-6379", "h", "ALIVE")),
            lambda: panel._turn(+1),
            world.session.refresh,
        ]
        threads = [threading.Thread(target=hammer(a)) for a in actions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(t.is_alive() for t in threads), "a writer is stuck: a lock is held for good"
        assert errors == []
        # What the threads left is one coherent picture of the session, not a mix of writes.
        rows = world.session.rows()
        assert f"<b>{len(rows)} node(s)</b>" in panel.table.value
        assert panel.page_label.value == f"rows 1-{len(rows)} of {len(rows)}, page 1/1" and panel.page == 0
        assert panel.messages.value.count("<div") == 6 and panel.messages.value.endswith("hello</div>")
        assert all(f"data-node-id='{r.node_id}'" in panel.table.value for r in rows)


# --- reprs and the picture -------------------------------------------------------------


def test_reprs_are_one_line_and_a_small_card(world: SimpleNamespace) -> None:
    world.found = [info(6379)]
    state = world.session.connect("auto")
    for thing in (state, state.info):
        text = repr(thing)
        assert "\n" not in text and len(text) < 160, text
        assert "127.0.0.1:6379" in text
    card = state._repr_html_()
    assert "ray-6379" in card and "127.0.0.1:6379" in card and "1/1 alive" in card and "via dashboard" in card
    assert "<script" not in card


def test_the_picture_shows_the_head_wherever_it_is_listed() -> None:
    from castray_nb.picture import render_picture

    rows = [node("big", f"w{i:03d}") for i in range(60)] + [node("big", "the-head", head=True)]
    svg = render_picture(rows, {})
    assert "castray-node-ALIVE-the-head" in svg
    assert svg.count("castray-node-ALIVE-") == 40 and "+21" in svg


# --- a big refresh leaves no new long-lived objects (the kernel's GC stays quiet) --------


def test_an_unchanged_node_keeps_its_record_and_no_record_handed_out_changes(world: SimpleNamespace) -> None:
    from castray_nb.core.nodes import reuse_unchanged

    class Reusing(FakeReader):
        def read(self, *, cluster: str, previous: Any = ()) -> Reading:
            fresh = super().read(cluster=cluster)
            later = NOW + dt.timedelta(seconds=self.reads)
            nodes = [dataclasses.replace(r, last_seen=later) for r in fresh.nodes]
            return dataclasses.replace(fresh, nodes=reuse_unchanged(nodes, previous), seen=later)

    world.found = [info(6379)]
    reader = Reusing(world.found[0].name)
    reader.script = [[("h", "ALIVE", True), ("w", "ALIVE", False)]] * 2 + [[("h", "ALIVE", True), ("w", "DEAD", False)]]
    world.readers[world.found[0].name] = reader
    state = world.session.connect("auto", refresh=False)
    kept = world.session._attached[state.name]

    world.session.refresh()
    stored = {r.node_id: r for r in kept.rows}
    first = {r.node_id: r for r in world.session.rows()}
    assert {r.last_seen for r in first.values()} == {NOW + dt.timedelta(seconds=1)}
    world.session.refresh()
    assert all(r is stored[r.node_id] for r in kept.rows), "unchanged nodes keep their stored record"
    second = {r.node_id: r for r in world.session.rows()}
    assert {r.last_seen for r in second.values()} == {NOW + dt.timedelta(seconds=2)}, "the table says when"
    assert {r.last_seen for r in first.values()} == {NOW + dt.timedelta(seconds=1)}, "a record handed out never changes"
    world.session.refresh()
    third = {r.node_id: r for r in world.session.rows()}
    assert third["w"].state == "DEAD" and third["w"].last_seen == NOW + dt.timedelta(seconds=3)
    assert kept.rows[0] is stored["h"] and kept.rows[1] is not stored["w"]


def test_the_collector_pause_is_counted_and_leaves_a_users_choice_alone() -> None:
    import gc

    from castray_nb.core.gcpause import gc_paused

    assert gc.isenabled()
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "an inner pause must not end the outer one"
    assert gc.isenabled()
    with gc_paused(enabled=False):
        assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled(), "a collector the user turned off stays off"
    finally:
        gc.enable()
    # overlapping pauses in several threads end once, with the last one
    inside, release = threading.Barrier(4), threading.Event()

    def hold() -> None:
        with gc_paused():
            inside.wait(5)
            release.wait(5)

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for thread in threads:
        thread.start()
    inside.wait(5)
    assert not gc.isenabled()
    release.set()
    for thread in threads:
        thread.join(5)
    assert gc.isenabled()
