"""The live panel: an ipywidgets view of a core Session. It never talks to Ray itself.

The session's background watch refreshes; the panel re-renders when a refresh lands
(by setting widget values, so it works on ipykernel 7), and its buttons call the same
core functions as the magics. Where widgets cannot render, the panel shows as an HTML
or text table.

>>> castray_nb.panel(interval=1)     # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import html
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as W

from . import cells
from .core.actors import ActorRecord
from .core.discovery import ClusterInfo
from .core.errors import CastrayError
from .core.jobs import JobRecord
from .core.nodes import ALIVE, DEAD, NodeRecord
from .core.session import ClusterState, Event, Session, Watch

HIGHLIGHT_SECONDS = 3.0
PICTURE_USAGE_EVERY = 10.0  # usage alone redraws the picture at most this often; states redraw it at once
PAGE_SIZE = 200  # rows drawn at once: a 10,000-node cluster stays a small page to send
_STATE_COLOURS = {ALIVE: "#1a7f37", DEAD: "#8c959f", "UNREACHABLE": "#cf222e"}
_JOB_COLOURS = {
    "PENDING": "#9a6700",
    "RUNNING": "#0969da",
    "SUCCEEDED": "#1a7f37",
    "FAILED": "#cf222e",
    "STOPPED": "#8c959f",
}
_GIB = 1024**3
# The theme's own colours where JupyterLab has them (light and dark), these outside it.
_MUTED = "var(--jp-ui-font-color2, #57606a)"
_TRACK = "var(--jp-layout-color3, #eaeef2)"


class Panel(W.VBox):
    """The live panel: an ipywidgets ``VBox``, so it composes into any layout
    (``W.VBox([castray_nb.panel()])``, a tab, an ``AppLayout``, Voilà).

    It observes a session: a background watch refreshes the session and the panel
    re-renders from it; buttons call the session's own ``connect``/``discover``/``detach``.
    ``close()`` (or leaving a ``with`` block) ends its watch and subscription and closes
    its widgets; the session and its clusters stay. Every widget value is written under
    one lock, from whichever thread (refresh, button, kernel).
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

        # Buttons as wide as their labels: the toolbar stays on one line in a notebook cell.
        fit = {"width": "auto"}
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
        self.state_filter = W.Dropdown(options=["all states", ALIVE, DEAD, "UNREACHABLE"], layout={"width": "10em"})
        self.text_filter = W.Text(placeholder="filter: cluster, ip, node id", layout={"width": "16em"})
        self.prev_button = W.Button(icon="chevron-left", tooltip="previous page", layout={"width": "3em"})
        self.next_button = W.Button(icon="chevron-right", tooltip="next page", layout={"width": "3em"})
        self.page_label = W.HTML()
        self.page = 0
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
        self.messages = W.HTML()
        self._drawn: tuple[Any, ...] | None = None  # signature of the picture on show
        self._drawn_structure: tuple[Any, ...] | None = None
        self._drawn_at = 0.0
        self._draw_lock = threading.Lock()
        toolbar = W.HBox(
            [
                self.discover_button,
                self.address,
                self.connect_button,
                self.detach_choice,
                self.disconnect_button,
                self.pause,
                self.interval_box,
            ],
            layout={"flex_flow": "row wrap"},
        )
        pager = W.HBox(
            [self.state_filter, self.text_filter, self.prev_button, self.page_label, self.next_button],
            layout={"flex_flow": "row wrap"},
        )
        self.children = (
            toolbar,
            self.found,
            self.status,
            self.picture,
            pager,
            self.table,
            self.actor_choice,
            self.actor_list,
            self.jobs_table,
            self.job_choice,
            self.job_detail,
            self.messages,
        )
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

        self._unsubscribe: Callable[[], None] | None = None
        self._watch: Watch | None = None
        self._unsubscribe = session.subscribe(self._on_event)
        self._watch = self._start_watch()
        self.render()

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

        def item(c: ClusterInfo) -> str:
            as_name = f" (attached as <b>{_e(attached[c.gcs_address])}</b>)" if c.gcs_address in attached else ""
            owner = f", owner <b>{_e(c.owner or '?')}</b> (another user's)" if c.other_user else ""
            return (
                f"<li><code>{_e(c.name)}</code> GCS <code>{_e(c.gcs_address or '-')}</code>, "
                f"{'?' if c.num_nodes is None else c.num_nodes} node(s)"
                f"{', token needed' if c.auth_required else ''}{owner}{as_name}</li>"
            )

        items = "".join(item(c) for c in found)
        with self._lock:
            self.found.value = f"<b>Discovered {len(found)} live cluster(s)</b><ul style='margin:2px 0'>{items}</ul>"
            if found and not self.address.value.strip():
                self.address.value = next(
                    (c.gcs_address or c.name for c in found if c.gcs_address not in attached and not c.other_user), ""
                )
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

    def _start_watch(self) -> Watch:
        return self.session.watch(self.interval, self._on_refresh, actors=True, jobs=True)

    def _on_filter(self, change: dict[str, Any]) -> None:
        with self._lock:
            self.page = 0
        self.render()

    def _turn(self, step: int) -> None:
        with self._lock:
            self.page = max(0, self.page + step)
        self.render()

    def visible_rows(self) -> tuple[list[NodeRecord], list[NodeRecord]]:
        """(every row, the rows that pass the filters)."""
        rows = self.session.rows()
        with self._lock:
            state = self.state_filter.value
            text = self.text_filter.value.strip().lower()
        shown = [
            r
            for r in rows
            if (state == "all states" or r.state == state)
            and (not text or text in r.cluster.lower() or text in r.node_ip or text in r.node_id)
        ]
        return rows, shown

    def _on_interval(self, change: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return
            self.interval = float(change["new"])
            if not self.pause.value and self._watch is not None:
                self._watch.stop()
                self._watch = self._start_watch()

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
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        colour = "#cf222e" if error else _MUTED
        with self._lock:
            if self._closed:
                return
            self._messages.append(f"<div style='color:{colour}'>{stamp} {_e(message)}</div>")
            self.messages.value = "".join(self._messages)

    # --- drawing -----------------------------------------------------------------

    def render(self) -> None:
        states = self.session.clusters()
        local = self.session.rows(source="local")
        rows, shown = self.visible_rows()
        counts = self.session.actor_counts()
        jobs, jobs_skipped = self.session.cached_jobs()
        with self._lock:
            if self._closed:
                return
            now = time.monotonic()
            self._changed = {k: v for k, v in self._changed.items() if v > now}
            names = [c.name for c in states]
            if list(self.detach_choice.options) != names:
                keep = self.detach_choice.value
                self.detach_choice.options = names
                self.detach_choice.value = keep if keep in names else (names[0] if names else None)
            self.status.value = render_status(states, local)
            pages = max(1, -(-len(shown) // PAGE_SIZE))
            self.page = min(self.page, pages - 1)
            first = self.page * PAGE_SIZE
            page = shown[first : first + PAGE_SIZE]
            self.page_label.value = (
                f"rows {first + 1 if page else 0}-{first + len(page)} of {len(shown)}"
                + (f" (filtered from {len(rows)})" if len(shown) != len(rows) else "")
                + f", page {self.page + 1}/{pages}"
            )
            self.prev_button.disabled = self.page == 0
            self.next_button.disabled = self.page >= pages - 1
            self.table.value = render_table(page, set(self._changed), summary_of=rows, actor_counts=counts)
            self._text = render_text(page) + (f"\n... {len(shown)} rows in all" if len(shown) > len(page) else "")
            self._update_actor_choice(rows, counts)
            self._render_actors()
            shown_jobs = jobs[:JOBS_SHOWN]
            self.jobs_table.value = render_jobs(shown_jobs, len(jobs), jobs_skipped)
            self._jobs = {f"{j.cluster}\x1f{j.key}": j for j in shown_jobs}
            options = [(_NO_JOB, "")] + [
                (f"{j.cluster[-24:]} · {j.key[:32]} · {j.status}", k) for k, j in self._jobs.items()
            ]
            self.job_choice.layout.display = None if shown_jobs else "none"  # nothing to pick: no picker
            if list(self.job_choice.options) != options:
                keep = self.job_choice.value
                self.job_choice.options = options
                self.job_choice.value = keep if keep in self._jobs else ""
            self._render_job()
        if threading.current_thread() is threading.main_thread():
            # matplotlib's first import and a big drawing take a while: never on the kernel's thread
            threading.Thread(target=self.draw_picture, name="castray-picture", daemon=True).start()
        else:
            self.draw_picture()

    def draw_picture(self) -> bool:
        """Redraw the picture if what it shows changed; usage alone redraws it at most
        every :data:`PICTURE_USAGE_EVERY` seconds. Returns whether it was redrawn."""
        from .picture import render_picture, signature, structure

        with self._draw_lock:
            if self._closed:
                return False
            rows, counts = self.session.rows(), self.session.actor_counts()
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
            job = getattr(self, "_jobs", {}).get(self.job_choice.value or "")
            self.job_detail.value = render_job(job) if job is not None else ""

    # --- the end -------------------------------------------------------------------

    def close(self) -> None:
        """Stop live updates and close the panel's widgets; the session and its clusters
        stay. Idempotent; also what re-running the panel's cell does (see :func:`panel`)."""
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
                for child in _descendants(self):
                    child.close()
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


def _descendants(box: W.Box) -> list[W.Widget]:
    found: list[W.Widget] = []
    for child in box.children:
        if isinstance(child, W.Box):
            found.extend(_descendants(child))
        found.append(child)
    return found


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


_NO_NODE = "actors: pick a node to list them"
_NO_JOB = "jobs: pick one to see its message in full"
JOBS_SHOWN = 50  # rows of the jobs table: running first, then the most recent


def render_actors(actors: Sequence[ActorRecord]) -> str:
    """One node's actors as an HTML table."""
    if not actors:
        return f"<div style='color:{_MUTED}'>No ALIVE actors on this node.</div>"
    titles = ("class", "name", "actor id", "pid", "resources", "namespace")
    head = "".join(f"<th style='text-align:left'>{t}</th>" for t in titles)
    body = "".join(
        f"<tr data-actor-id='{_e(a.actor_id)}'><td><code>{_e(a.class_name)}</code></td>"
        f"<td>{_e(a.name) if a.name else '<i>(unnamed)</i>'}</td>"
        f"<td><code title='{_e(a.actor_id)}'>{_e(a.actor_id[:12])}</code></td><td>{a.pid or ''}</td>"
        f"<td>{_e(', '.join(f'{k} {v:g}' for k, v in sorted(a.required_resources.items())) or '-')}</td>"
        f"<td>{_e(a.ray_namespace or '')}</td></tr>"
        for a in sorted(actors, key=lambda a: (a.class_name, a.name or "", a.actor_id))
    )
    return (
        f"<div class='castray-actors castray-table'><b>{len(actors)} actor(s)</b>"
        f"<table style='border-collapse:collapse;font-size:12px'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_status(states: Sequence[ClusterState], local_rows: Sequence[NodeRecord]) -> str:
    lines = []
    if local_rows:
        alive = sum(r.state == ALIVE for r in local_rows)
        lines.append(
            f"<div><span style='color:#0969da'>&#9679;</span> <b>local runtime</b> "
            f"<code>{_e(local_rows[0].cluster)}</code>: {len(local_rows)} node(s), {alive} alive</div>"
        )
    for c in states:
        if c.reachable is None:
            dot, how = "#8c959f", "not read yet"
        elif c.reachable:
            when = c.last_refresh.strftime("%H:%M:%S UTC") if c.last_refresh else "?"
            took = f"{c.read_s * 1000:.0f} ms" if c.read_s is not None else "?"
            dot, how = "#1a7f37", f"via {c.via}, refreshed {when} in {took}"
        else:
            dot, how = "#cf222e", f"unreachable: {_e(c.error or '')}"
        href = c.dashboard_link
        link = f" &middot; <a href='{_e(href)}' target='_blank'>dashboard</a>" if href else ""
        warn = f" &middot; <span style='color:#9a6700'>{_e('; '.join(c.notes))}</span>" if c.notes else ""
        owner = f" &middot; owner <b>{_e(c.info.owner or '?')}</b>" if c.info.other_user else ""
        lines.append(
            f"<div><span style='color:{dot}'>&#9679;</span> <b>{_e(c.name)}</b>: {c.num_nodes} node(s), "
            f"{c.alive_nodes} alive; {how}{link}{owner}{warn}</div>"
        )
    if not lines:
        lines.append(
            f"<div style='color:{_MUTED}'>No cluster attached. Discover, or type an address and Connect.</div>"
        )
    return "<div class='castray-status'>" + "".join(lines) + "</div>"


def _bar(used: float | None, total: float, scale: float = 1.0, unit: str = "") -> str:
    if total <= 0:
        return "<span style='color:#8c959f'>-</span>"
    text = f"{total / scale:.1f}{unit}" if scale != 1 else f"{total:g}"
    if used is None:
        return text
    share = max(0.0, min(1.0, used / total))
    return (
        f"<div title='{used / scale:.2f} of {total / scale:.2f}{unit} in use' style='display:flex;gap:4px;"
        f"align-items:center'><div style='width:48px;height:7px;background:{_TRACK};border-radius:3px'>"
        f"<div style='width:{share * 100:.0f}%;height:7px;background:#0969da;border-radius:3px'></div></div>"
        f"{used / scale:.1f}/{text}</div>"
    )


def render_table(
    rows: Sequence[NodeRecord],
    highlight: set[str],
    summary_of: Sequence[NodeRecord] | None = None,
    actor_counts: dict[tuple[str, str], int] | None = None,
) -> str:
    """The node table as HTML: state coloured, head marked, usage bars, changed rows lit.

    The summary line counts ``summary_of`` (all rows) when only a page is drawn.
    """
    every = rows if summary_of is None else summary_of
    if not every:
        return f"<div style='color:{_MUTED}'>No nodes.</div>"
    counts = {s: sum(r.state == s for r in every) for s in (ALIVE, DEAD, "UNREACHABLE")}
    summary = (
        f"<div><b>{len(every)} node(s)</b> in {len({r.cluster for r in every})} cluster(s): "
        f"{counts[ALIVE]} alive, {counts[DEAD]} dead, {counts['UNREACHABLE']} unreachable; "
        f"{sum(r.CPU for r in every if r.state == ALIVE):g} CPU, "
        f"{sum(r.GPU for r in every if r.state == ALIVE):g} GPU alive</div>"
    )
    titles: tuple[str, ...] = (
        "cluster",
        "source",
        "node",
        "ip",
        "",
        "state",
        "CPU",
        "GPU",
        "memory GiB",
        "object store GiB",
    )
    if actor_counts is not None:
        titles += ("actors",)
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{h}</th>" for h in titles)
    body = []
    for r in rows:
        lit = " style='background:rgba(255, 212, 0, 0.28)'" if r.node_id in highlight else ""
        colour = _STATE_COLOURS.get(r.state, "#57606a")
        body.append(
            f"<tr{lit} data-node-id='{_e(r.node_id)}'>"
            f"<td style='padding:2px 8px'>{_e(r.cluster)}</td><td>{r.source}</td>"
            f"<td><code title='{_e(r.node_id)}'>{_e(r.node_id[:12])}</code></td><td>{_e(r.node_ip)}</td>"
            f"<td>{'&#9733; head' if r.is_head else ''}</td>"
            f"<td><span style='color:white;background:{colour};border-radius:3px;padding:0 5px'>{r.state}</span></td>"
            f"<td>{_bar(r.CPU_used, r.CPU)}</td><td>{_bar(r.GPU_used, r.GPU)}</td>"
            f"<td>{_bar(r.memory_used_bytes, r.memory_bytes, _GIB)}</td>"
            f"<td>{_bar(r.object_store_used_bytes, r.object_store_bytes, _GIB)}</td>"
            + ("" if actor_counts is None else f"<td>{actor_counts.get((r.cluster, r.node_id)) or ''}</td>")
            + "</tr>"
        )
    return (
        "<style>.castray-table td,.castray-table th{padding:2px 10px 2px 0;white-space:nowrap}</style>"
        f"<div class='castray-table'>{summary}<table style='border-collapse:collapse;font-size:12px'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def render_jobs(jobs: Sequence[JobRecord], total: int, skipped: dict[str, str]) -> str:
    """The jobs table as HTML: running first, then the most recent; status coloured."""
    notes = "".join(f"<div style='color:{_MUTED}'>no jobs from {_e(n)}: {_e(why)}</div>" for n, why in skipped.items())
    if not total:
        return f"<div style='color:{_MUTED}'>No jobs.</div>{notes}"
    running = sum(j.running for j in jobs)
    summary = f"<div><b>{total} job(s)</b>{f' ({running} running or pending shown)' if running else ''}"
    summary += f", the first {len(jobs)} shown</div>" if len(jobs) < total else "</div>"
    titles = ("cluster", "job", "type", "status", "started (UTC)", "seconds", "entrypoint", "message")
    head = "".join(f"<th style='text-align:left'>{h}</th>" for h in titles)
    body = []
    for j in jobs:
        colour = _JOB_COLOURS.get(j.status, "#57606a")
        started = j.start_time.strftime("%m-%d %H:%M:%S") if j.start_time else "-"
        seconds = f"{j.duration_s:.1f}" if j.duration_s is not None else "-"
        message = (j.message or "").strip().splitlines()
        body.append(
            f"<tr data-job='{_e(j.key)}' data-status='{j.status}'><td>{_e(j.cluster)}</td>"
            f"<td><code>{_e(j.key[:32])}</code></td><td>{j.type.lower()}</td>"
            f"<td><span style='color:white;background:{colour};border-radius:3px;padding:0 5px'>{j.status}</span></td>"
            f"<td>{started}</td><td>{seconds}</td><td><code>{_e(j.entrypoint[:60])}</code></td>"
            f"<td>{_e(message[0][:80]) if message else ''}</td></tr>"
        )
    return (
        f"<div class='castray-table castray-jobs'>{summary}{notes}"
        "<table style='border-collapse:collapse;font-size:12px'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def render_job(job: JobRecord) -> str:
    """One job in full: its message (all of it), entrypoint and ids."""
    facts = [("cluster", job.cluster), ("submission id", job.submission_id or "-"), ("job id", job.job_id or "-"),
             ("type", job.type), ("status", job.status), ("entrypoint", job.entrypoint),
             ("error type", job.error_type or "-"),
             ("driver node", job.driver_node_id or job.driver_ip or "-")]  # fmt: skip
    rows = "".join(f"<tr><td style='color:{_MUTED};padding-right:8px'>{k}</td><td><code>{_e(v)}</code></td></tr>"
                   for k, v in facts)  # fmt: skip
    message = f"<pre style='white-space:pre-wrap;margin:4px 0'>{_e(job.message or '(no message)')}</pre>"
    return f"<div class='castray-job'><table style='font-size:12px'>{rows}</table>{message}</div>"


def render_text(rows: Sequence[NodeRecord]) -> str:
    """The node table as plain text, for terminals."""
    if not rows:
        return "castray panel: no nodes"
    lines = [f"{'CLUSTER':<40} {'SOURCE':<8} {'NODE':<12} {'IP':<15} {'HEAD':<4} {'STATE':<11} CPU"]
    lines += [
        f"{r.cluster[-40:]:<40} {r.source:<8} {r.node_id[:12]:<12} {r.node_ip:<15} "
        f"{'yes' if r.is_head else '':<4} {r.state:<11} {r.CPU:g}"
        for r in rows
    ]
    return "\n".join(lines)
