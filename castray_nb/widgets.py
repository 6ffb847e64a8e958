"""The live panel: an ipywidgets view of a core Session. It never talks to Ray itself.

The session's background watch refreshes; the panel re-renders from one snapshot of the
session when a refresh lands (by setting widget values, so it works on ipykernel 7), and
its buttons call the same core functions as the magics. Its HTML is drawn by
:mod:`castray_nb.core.render`, as every card is. Where widgets cannot render, the panel
shows as an HTML or text table.

>>> castray_nb.panel(interval=1)     # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as W

from . import cells
from .core.discovery import ClusterInfo
from .core.errors import CastrayError
from .core.jobs import JobRecord
from .core.model import Event, Snapshot
from .core.nodes import ALIVE, DEAD, NodeRecord
from .core.render import (
    discovered_list,
    message_line,
    render_actors,
    render_events,
    render_job,
    render_jobs,
    render_status,
    render_table,
    render_text,
)
from .core.session import Session
from .core.watch import Watch

HIGHLIGHT_SECONDS = 3.0
PICTURE_USAGE_EVERY = 10.0  # usage alone redraws the picture at most this often; states redraw it at once
PAGE_SIZE = 200  # rows drawn at once: a 10,000-node cluster stays a small page to send
JOBS_SHOWN = 50  # rows of the jobs table: running first, then the most recent
ALL_STATES = "all states"
_NO_NODE = "actors: pick a node to list them"
_NO_JOB = "jobs: pick one to see its message in full"
_NO_HISTORY = "history: pick a cluster to chart its last hour"
HISTORY_EVERY_S = 30.0  # the chosen cluster's chart is drawn again at most this often (points are 10 s apart)
# What the chart reads of a cluster's totals: host use, and Ray's logical use where a
# cluster gives no host figures.
CHART_METRICS = ["cpu_percent", "CPU_used", "CPU", "host_memory_used_bytes", "host_memory_total_bytes",
                 "memory_used_bytes", "memory_bytes", "gpu_percent"]  # fmt: skip


@dataclass(frozen=True)
class Page:
    """The rows one page of the table shows, after the filters."""

    rows: list[NodeRecord]
    matching: int  # rows that pass the filters
    total: int  # rows in all
    number: int  # 0-based, within range
    pages: int

    @property
    def label(self) -> str:
        first = self.number * PAGE_SIZE
        label = f"rows {first + 1 if self.rows else 0}-{first + len(self.rows)} of {self.matching}"
        if self.matching != self.total:
            label += f" (filtered from {self.total})"
        return label + f", page {self.number + 1}/{self.pages}"


def page_of(rows: Sequence[NodeRecord], state: str, text: str, number: int) -> Page:
    """Page ``number`` of the rows in ``state`` (or all states) that contain ``text``."""
    text = text.strip().lower()
    shown = [
        r
        for r in rows
        if (state == ALL_STATES or r.state == state)
        and (not text or text in r.cluster.lower() or text in r.node_ip or text in r.node_id)
    ]
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    number = max(0, min(number, pages - 1))
    return Page(shown[number * PAGE_SIZE : (number + 1) * PAGE_SIZE], len(shown), len(rows), number, pages)


class Panel(W.VBox):
    """The live panel: an ipywidgets ``VBox``, so it composes into any layout
    (``W.VBox([castray_nb.panel()])``, a tab, an ``AppLayout``, Voilà).

    It observes a session: a background watch refreshes the session and the panel
    re-renders from one :meth:`~castray_nb.core.session.Session.snapshot`; buttons call the
    session's own ``connect``/``discover``/``detach``. ``close()`` (or leaving a ``with``
    block) ends its watch and subscription and closes every widget model it made, their
    layouts and styles included; the session and its clusters stay. Every widget value is
    written under one lock, from whichever thread (refresh, button, kernel).
    """

    def __init__(self, session: Session, interval: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.interval = interval or session.settings.refresh_interval
        self._lock = threading.RLock()  # every widget write, and the panel's own state
        self._changed: dict[str, float] = {}  # node_id -> highlight until (monotonic)
        self._messages: deque[str] = deque(maxlen=6)
        self._closed = False
        self._text = "castray panel: no nodes"  # the last render as text, for the display bundle
        self._jobs: dict[str, JobRecord] = {}
        self.page = 0
        self._drawn: tuple[Any, ...] | None = None  # signature of the picture on show
        self._drawn_structure: tuple[Any, ...] | None = None
        self._drawn_at = 0.0
        self._draw_lock = threading.Lock()
        self._build()
        self._unsubscribe: Callable[[], None] | None = session.subscribe(self._on_event)
        self._watch: Watch | None = self._start_watch()
        self.render()

    def _build(self) -> None:
        """The widgets and their layout, and what each control does."""
        fit = {"width": "auto"}  # buttons as wide as their labels: the toolbar stays on one line
        self.discover_button = W.Button(
            description="Discover", icon="search", tooltip="find clusters on this machine", layout=fit
        )
        self.address = W.Text(placeholder="host:port, http://host:port, session name or auto", layout={"width": "24em"})
        self.connect_button = W.Button(description="Connect", icon="plug", button_style="primary", layout=fit)
        self.detach_choice = W.Dropdown(options=[], layout={"width": "12em"})
        self.disconnect_button = W.Button(description="Disconnect", icon="unlink", layout=fit)
        self.pause = W.ToggleButton(
            value=False, description="Pause", icon="pause", tooltip="pause live updates", layout=fit
        )
        self.interval_box = W.BoundedFloatText(
            value=self.interval, min=0.2, max=3600, step=0.5, description="every (s)", layout={"width": "11em"}
        )
        self.state_filter = W.Dropdown(options=[ALL_STATES, ALIVE, DEAD, "UNREACHABLE"], layout={"width": "10em"})
        self.text_filter = W.Text(placeholder="filter: cluster, ip, node id", layout={"width": "16em"})
        self.prev_button = W.Button(icon="chevron-left", tooltip="previous page", layout={"width": "3em"})
        self.next_button = W.Button(icon="chevron-right", tooltip="next page", layout={"width": "3em"})
        self.page_label = W.HTML()
        self.found = W.HTML()
        self.status = W.HTML()
        self.picture = W.HTML(layout={"max_width": "100%", "overflow": "auto"})
        # The table scrolls inside the panel rather than running off the cell's edge.
        self.table = W.HTML(layout={"max_width": "100%", "overflow": "auto"})
        self.actor_choice = W.Dropdown(options=[(_NO_NODE, "")], value="", layout={"width": "36em"})
        self.actor_list = W.HTML(layout={"max_width": "100%", "overflow": "auto"})
        self.jobs_table = W.HTML(layout={"max_width": "100%", "overflow": "auto"})
        self.job_choice = W.Dropdown(options=[(_NO_JOB, "")], value="", layout={"width": "36em"})
        self.job_detail = W.HTML(layout={"max_width": "100%", "overflow": "auto"})
        self.history_choice = W.Dropdown(options=[(_NO_HISTORY, "")], value="", layout={"width": "24em"})
        self.history_chart = W.HTML(layout={"max_width": "100%", "overflow": "auto"})
        self.history_events = W.HTML(layout={"max_width": "100%", "overflow": "auto"})
        self._history_at = 0.0  # monotonic time of the last history drawn
        self.messages = W.HTML()
        toolbar = W.HBox(
            [self.discover_button, self.address, self.connect_button, self.detach_choice, self.disconnect_button,
             self.pause, self.interval_box],
            layout={"flex_flow": "row wrap"},
        )  # fmt: skip
        pager = W.HBox(
            [self.state_filter, self.text_filter, self.prev_button, self.page_label, self.next_button],
            layout={"flex_flow": "row wrap"},
        )
        self.children = (
            toolbar, self.found, self.status, self.picture, pager, self.table, self.actor_choice, self.actor_list,
            self.jobs_table, self.job_choice, self.job_detail, self.history_choice, self.history_chart,
            self.history_events, self.messages,
        )  # fmt: skip
        self.layout.max_width = "100%"

        self.discover_button.on_click(lambda _: self._in_background(self._discover))
        self.connect_button.on_click(lambda _: self._in_background(self._connect))
        self.disconnect_button.on_click(lambda _: self._in_background(self._disconnect))
        self.pause.observe(self._on_pause, names="value")
        self.state_filter.observe(self._on_filter, names="value")
        self.text_filter.observe(self._on_filter, names="value")
        self.prev_button.on_click(lambda _: self._turn(-1))
        self.next_button.on_click(lambda _: self._turn(+1))
        self.interval_box.observe(self._on_interval, names="value")
        self.actor_choice.observe(lambda _: self._render_actors(), names="value")
        self.job_choice.observe(lambda _: self._render_job(), names="value")
        self.history_choice.observe(lambda _: self._in_background(self.draw_history), names="value")

    @property
    def widget(self) -> Panel:
        """The panel itself (it is the widget); kept for code written before it was."""
        return self

    @property
    def closed(self) -> bool:
        return self._closed

    # --- what the buttons do (always in a thread: the kernel stays free) -------------

    def _in_background(self, action: Callable[[], None]) -> None:
        def run() -> None:
            try:
                action()
            except CastrayError as exc:
                self.say(str(exc), error=True)
            except Exception as exc:  # a bug must land here, not in some cell's output
                self.say(f"{type(exc).__name__}: {exc}", error=True)
            self.render()

        threading.Thread(target=run, name="castray-panel-action", daemon=True).start()

    def _discover(self) -> None:
        found = self.session.discover()
        attached = {c.info.gcs_address: c.name for c in self.session.clusters()}
        with self._lock:
            self.found.value = discovered_list(found, attached)
            if found and not self.address.value.strip():
                self.address.value = _first_to_attach(found, attached)
        self.say(f"discovered {len(found)} live cluster(s)")

    def _connect(self) -> None:
        with self._lock:
            text = self.address.value.strip()
        state = self.session.connect(text or "auto")
        self.say(f"attached {state.name} ({state.session_name})")
        with self._lock:
            if self.address.value.strip() == text:
                self.address.value = ""

    def _disconnect(self) -> None:
        with self._lock:
            name = self.detach_choice.value
        if not name:
            raise CastrayError("no attached cluster to disconnect")
        self.session.detach(name)
        self.say(f"detached {name}")

    # --- the watch: paused, resumed, its interval changed ------------------------------

    def _start_watch(self) -> Watch:
        return self.session.watch(self.interval, self._on_refresh, actors=True, jobs=True)

    def _on_pause(self, change: dict[str, Any]) -> None:
        with self._lock:
            if self._closed or self._watch is None:
                return
            self._watch.stop()
            if change["new"]:
                self.pause.description, self.pause.icon = "Resume", "play"
            else:
                self._watch = self._start_watch()
                self.pause.description, self.pause.icon = "Pause", "pause"
        self.say("live updates paused" if change["new"] else "live updates resumed")

    def _on_interval(self, change: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return
            self.interval = float(change["new"])
            if not self.pause.value and self._watch is not None:
                self._watch.stop()
                self._watch = self._start_watch()

    # --- paging ------------------------------------------------------------------

    def _on_filter(self, change: dict[str, Any]) -> None:
        with self._lock:
            self.page = 0
        self.render()

    def _turn(self, step: int) -> None:
        with self._lock:
            self.page = max(0, self.page + step)
        self.render()

    # --- what the session tells us ---------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.node_id and event.kind in ("node_added", "node_state_changed"):
            with self._lock:
                self._changed[event.node_id] = time.monotonic() + HIGHLIGHT_SECONDS
        elif event.kind in ("job_added", "job_status_changed"):
            what = "new job" if event.kind == "job_added" else "job"
            self.say(f"{event.cluster}: {what} {event.job_id} {event.detail}", error=event.detail.endswith("FAILED"))
        elif event.kind in ("cluster_unreachable", "cluster_recovered"):
            self.say(
                f"{event.cluster}: {event.kind.split('_')[1]} {event.detail}", error=event.kind.endswith("unreachable")
            )

    def _on_refresh(self, events: list[Event]) -> None:
        self.render()

    def say(self, message: str, *, error: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._messages.append(message_line(message, error=error))
            self.messages.value = "".join(self._messages)

    # --- drawing: everything from one snapshot ------------------------------------------

    def render(self) -> None:
        snap = self.session.snapshot()
        rows = list(snap.rows)
        with self._lock:
            if self._closed:
                return
            now = time.monotonic()
            self._changed = {k: v for k, v in self._changed.items() if v > now}
            names = [c.name for c in snap.clusters]
            if list(self.detach_choice.options) != names:
                keep = self.detach_choice.value
                self.detach_choice.options = names
                self.detach_choice.value = keep if keep in names else (names[0] if names else None)
            self.status.value = render_status(snap.clusters, snap.local_rows)
            page = page_of(rows, self.state_filter.value, self.text_filter.value, self.page)
            self.page = page.number
            self.page_label.value = page.label
            self.prev_button.disabled = page.number == 0
            self.next_button.disabled = page.number >= page.pages - 1
            counts = dict(snap.actor_counts)
            self.table.value = render_table(page.rows, set(self._changed), summary_of=rows, actor_counts=counts)
            more = f"\n... {page.matching} rows in all" if page.matching > len(page.rows) else ""
            self._text = render_text(page.rows) + more
            self._update_actor_choice(rows, counts)
            self._render_actors()
            self._update_jobs(snap)
            history_due = self._update_history_choice(names)
        if history_due:
            self._in_background(self.draw_history)
        if threading.current_thread() is threading.main_thread():
            # a big drawing takes a while: never on the kernel's thread
            threading.Thread(target=self.draw_picture, args=(snap,), name="castray-picture", daemon=True).start()
        else:
            self.draw_picture(snap)

    def _update_jobs(self, snap: Snapshot) -> None:
        shown = list(snap.jobs[:JOBS_SHOWN])
        self.jobs_table.value = render_jobs(shown, len(snap.jobs), dict(snap.jobs_skipped))
        self._jobs = {f"{j.cluster}\x1f{j.key}": j for j in shown}
        options = [(_NO_JOB, "")] + [
            (f"{j.cluster[-24:]} · {j.key[:32]} · {j.status}", k) for k, j in self._jobs.items()
        ]
        self.job_choice.layout.display = None if shown else "none"  # nothing to pick: no picker
        if list(self.job_choice.options) != options:
            keep = self.job_choice.value
            self.job_choice.options = options
            self.job_choice.value = keep if keep in self._jobs else ""
        self._render_job()

    def _update_history_choice(self, names: list[str]) -> bool:
        """The clusters to chart; whether the chosen one's chart is due again."""
        options = [(_NO_HISTORY, "")] + [(f"history of {n} (last hour)", n) for n in names]
        if list(self.history_choice.options) != options:
            keep = self.history_choice.value
            self.history_choice.options = options
            self.history_choice.value = keep if keep in names else ""
        return bool(self.history_choice.value) and time.monotonic() - self._history_at >= HISTORY_EVERY_S

    def draw_history(self) -> None:
        """The chosen cluster's last hour from the history: its usage as a chart with its
        node deaths marked, and its events as a list (nothing when none is chosen)."""
        from .core import past
        from .picture import render_usage_chart, usage_lines

        name = self.history_choice.value
        self._history_at = time.monotonic()
        if not name:
            with self._lock:
                self.history_chart.value = self.history_events.value = ""
            return
        settings = self.session.settings
        until = time.time()
        frame = past.history(settings, cluster=name, since="1h", node="", metrics=CHART_METRICS)
        events = past.store_history(settings).happened(cluster=name, since=until - 3600)
        deaths = [(e.time, f"{e.node_id or '?'} died: {e.message}") for e in events if e.kind == "node_died"]
        chart = render_usage_chart(usage_lines(frame), deaths, until - 3600, until)
        with self._lock:
            if self._closed or self.history_choice.value != name:
                return
            self.history_chart.value = chart
            self.history_events.value = render_events(events)

    def draw_picture(self, snap: Snapshot | None = None) -> bool:
        """Redraw the picture if what it shows changed; usage alone redraws it at most
        every :data:`PICTURE_USAGE_EVERY` seconds. Returns whether it was redrawn."""
        from .picture import render_picture, signature, structure

        snap = snap or self.session.snapshot()
        with self._draw_lock:
            if self._closed:
                return False
            rows, counts = list(snap.rows), dict(snap.actor_counts)
            full = signature(rows, counts)
            if full == self._drawn:
                return False
            shape = structure(full)
            if shape == self._drawn_structure and time.monotonic() - self._drawn_at < PICTURE_USAGE_EVERY:
                return False
            try:
                svg = render_picture(rows, counts)
            except Exception as exc:  # a drawing problem must not stop the table
                self.say(f"picture: {type(exc).__name__}: {exc}", error=True)
                svg = None
            with self._lock:
                if self._closed:
                    return False
                if svg is not None:
                    self.picture.value = svg
            self._drawn, self._drawn_structure, self._drawn_at = full, shape, time.monotonic()
            return True

    def _update_actor_choice(self, rows: Sequence[NodeRecord], counts: dict[tuple[str, str], int]) -> None:
        by_key = {(r.cluster, r.node_id): r for r in rows}
        options = [(_NO_NODE, "")] + [
            (
                f"{cluster[-28:]} · {by_key[(cluster, node)].node_ip if (cluster, node) in by_key else '?'} "
                f"· {node[:12]} · {n} actor{'s' * (n != 1)}",
                f"{cluster}\x1f{node}",
            )
            for (cluster, node), n in sorted(counts.items())
        ]
        with self._lock:
            if list(self.actor_choice.options) != options:
                keep = self.actor_choice.value
                self.actor_choice.options = options
                self.actor_choice.value = keep if keep in {v for _, v in options} else ""

    def _render_actors(self) -> None:
        with self._lock:
            if self._closed:
                return
            choice = self.actor_choice.value or ""
            if not choice:
                self.actor_list.value = ""
                return
            cluster, _, node = choice.partition("\x1f")
            self.actor_list.value = render_actors(self.session.cached_actors(cluster, node))

    def _render_job(self) -> None:
        with self._lock:
            if self._closed:
                return
            job = self._jobs.get(self.job_choice.value or "")
            self.job_detail.value = render_job(job) if job is not None else ""

    # --- the end -------------------------------------------------------------------

    def close(self) -> None:
        """Stop live updates and close every widget model the panel made (their layouts
        and styles too: ipywidgets' ``close()`` leaves those open); the session and its
        clusters stay. Idempotent; also what re-running the panel's cell does (see :func:`panel`)."""
        lock = getattr(self, "_lock", None)  # ipywidgets may close a half-built widget
        if lock is not None:
            with lock:
                first, self._closed = not self._closed, True
            if first:
                if self._watch is not None:
                    self._watch.stop()
                if self._unsubscribe is not None:
                    self._unsubscribe()
                cells.forget(self)
                for model in list(_models(self)):
                    if model is not self:
                        model.close()
        super().close()

    def __enter__(self) -> Panel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The widget, plus the last render as HTML and text for front ends without
        widgets (nbconvert, a terminal): no fresh drawing per display."""
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        with self._lock:
            bundle["text/html"] = self.status.value + self.picture.value + self.table.value
            bundle["text/plain"] = self._text
        return bundle


def _models(widget: W.Widget) -> Iterator[W.Widget]:
    """``widget``, every widget inside it, and every layout and style model of each."""
    for child in getattr(widget, "children", ()):
        yield from _models(child)
    for name in ("layout", "style"):
        part = getattr(widget, name, None)
        if isinstance(part, W.Widget):
            yield part
    yield widget


def _first_to_attach(found: Sequence[ClusterInfo], attached: dict[str | None, str]) -> str:
    return next((c.gcs_address or c.name for c in found if c.gcs_address not in attached and not c.other_user), "")


def panel(interval: float | None = None, session: Session | None = None) -> Panel:
    """A live panel over the default session (or ``session``), refreshing every ``interval`` s.

    It is an ipywidgets ``VBox``. It belongs to the notebook cell that made it: running
    that cell again closes it (see :mod:`castray_nb.cells`); so do ``panel.close()`` and
    leaving ``with castray_nb.panel() as p:``.

    >>> castray_nb.panel(interval=1)                        # doctest: +SKIP
    >>> ipywidgets.Tab([castray_nb.panel(), other_widget])  # doctest: +SKIP
    """
    from .api import session as default_session

    cells.hook_cells()
    cell = cells.current_cell_id()
    made = Panel(session or default_session(), interval)
    cells.adopt(made, cell)
    return made


def open_panels() -> list[Panel]:
    """The panels made by :func:`panel` that are still open."""
    return cells.owned()
