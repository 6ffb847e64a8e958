"""Every piece of HTML and text castray_nb draws: the cards of a cluster (its repr in a
notebook), and the panel's status, node table, jobs and actors. Plain strings, no widget
or IPython import: the panel, the cards and the magics all draw with these, in the same
colours (the theme's where JupyterLab has them) and with times in one zone (:mod:`.times`).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .nodes import ALIVE, DEAD, NodeRecord
from .times import clock, now, stamp

if TYPE_CHECKING:  # the value types draw themselves with the cards below
    from .actors import ActorRecord
    from .discovery import ClusterInfo
    from .history import Happened
    from .jobs import JobRecord
    from .model import ClusterState

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


def one_line(kind: str, name: str, facts: Sequence[tuple[str, str]]) -> str:
    """``Kind(name · key value · key value)``: one line, whatever the cluster."""
    return f"{kind}({name} · " + " · ".join(f"{key} {value}" for key, value in facts) + ")"


def card(name: str, facts: Sequence[tuple[str, str]], link: str | None, error: str | None = None) -> str:
    """A small HTML card: the name, one line per fact, the dashboard link, the error."""
    e = _e
    key_cell = "<td style='text-align:left;padding:0 8px 0 0;opacity:.7'>"
    value_cell = "<td style='text-align:left;padding:0'>"
    rows = "".join(f"<tr>{key_cell}{e(key)}</td>{value_cell}<code>{e(value)}</code></td></tr>" for key, value in facts)
    if link:
        rows += f"<tr>{key_cell}dashboard</td>{value_cell}<a href='{e(link)}' target='_blank'>{e(link)}</a></td></tr>"
    if error:
        rows += f"<tr>{key_cell}error</td>{value_cell}<span style='color:#cf222e'>{e(error)}</span></td></tr>"
    return (
        "<div class='castray-card' style='display:inline-block;border:1px solid rgba(128,128,128,.4);"
        f"border-radius:4px;padding:4px 8px;font-size:12px'><b>{e(name)}</b>"
        f"<table style='border-collapse:collapse;margin:0'>{rows}</table></div>"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def message_line(message: str, *, error: bool = False) -> str:
    """One line of the panel's messages: its time (in UTC, as every time shown) and text."""
    colour = "#cf222e" if error else _MUTED
    return f"<div style='color:{colour}'>{clock(now())} {_e(message)}</div>"


# Where a cluster is (ClusterInfo.location), as the panel writes it; the sidebar writes the same.
PLACES = {
    "this-machine": "this machine",
    "listed-host": "a listed host (hosts setting)",
    "address": "another machine, by address",
    "plug-in": "another machine, from a discovery plug-in",
    "recent": "another machine, attached before",
}


def discovered_list(found: Sequence[ClusterInfo], attached: dict[str | None, str]) -> str:
    """What a discovery found, one line each: attached as which name, whose, token needed."""

    def item(c: ClusterInfo) -> str:
        as_name = f" (attached as <b>{_e(attached[c.gcs_address])}</b>)" if c.gcs_address in attached else ""
        owner = f", owner <b>{_e(c.owner or '?')}</b> (another user's)" if c.other_user else ""
        where = f"{c.dashboard_url or '-'}" if not c.gcs_address else c.gcs_address
        return (
            f"<li><code>{_e(c.name)}</code> {'GCS' if c.gcs_address else 'dashboard'} <code>{_e(where)}</code>, "
            f"{'?' if c.num_nodes is None else c.num_nodes} node(s), "
            f"<span data-location='{_e(c.location)}'>on {_e(PLACES[c.location])}</span>"
            f"{', token needed' if c.auth_required else ''}{owner}{as_name}</li>"
        )

    items = "".join(item(c) for c in found)
    return f"<b>Discovered {len(found)} live cluster(s)</b><ul style='margin:2px 0'>{items}</ul>"


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
            when = clock(c.last_refresh)
            took = f"{c.read_s * 1000:.0f} ms" if c.read_s is not None else "?"
            dot, how = "#1a7f37", f"via {c.via}, refreshed {when} in {took}"
        else:
            dot, how = "#cf222e", f"unreachable: {_e(c.error or '')}"
        href = c.dashboard_link
        link = f" &middot; <a href='{_e(href)}' target='_blank'>dashboard</a>" if href else ""
        warn = f" &middot; <span style='color:#9a6700'>{_e('; '.join(c.notes))}</span>" if c.notes else ""
        owner = f" &middot; owner <b>{_e(c.info.owner or '?')}</b>" if c.info.other_user else ""
        where = f"<span data-location='{_e(c.info.location)}'>on {_e(PLACES[c.info.location])}</span>"
        lines.append(
            f"<div><span style='color:{dot}'>&#9679;</span> <b>{_e(c.name)}</b>: {c.num_nodes} node(s), "
            f"{c.alive_nodes} alive, {where}; {how}{link}{owner}{warn}</div>"
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
    titles = ("cluster", "job", "type", "status", "started", "seconds", "entrypoint", "message")
    head = "".join(f"<th style='text-align:left'>{h}</th>" for h in titles)
    body = []
    for j in jobs:
        colour = _JOB_COLOURS.get(j.status, "#57606a")
        started = stamp(j.start_time)
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


_EVENT_COLOURS = {"node_died": "#cf222e", "cluster_unreachable": "#cf222e", "cluster_ended": "#57606a",
                  "node_joined": "#1a7f37", "cluster_recovered": "#1a7f37"}  # fmt: skip


def render_events(events: Sequence[Happened], shown: int = 20) -> str:
    """A cluster's recorded events as HTML, the newest first (at most ``shown``)."""
    if not events:
        return f"<div style='color:{_MUTED}'>No events recorded in this span.</div>"
    newest = list(reversed(events))[:shown]
    rows = []
    for e in newest:
        colour = _EVENT_COLOURS.get(e.kind, "inherit")
        when = stamp(dt.datetime.fromtimestamp(e.time, dt.UTC))
        node = f"<code>{_e(e.node_id[:12])}</code>" if e.node_id else ""
        rows.append(
            f"<tr data-kind='{_e(e.kind)}'><td>{when}</td><td style='color:{colour}'>{_e(e.kind)}</td>"
            f"<td>{node}</td><td>{_e(e.job or '')}</td><td>{_e(e.message[:120])}</td></tr>"
        )
    more = f" ({len(events)} in all, the newest {len(newest)} shown)" if len(events) > len(newest) else ""
    head = "".join(f"<th style='text-align:left'>{h}</th>" for h in ("time", "event", "node", "job", "message"))
    return (
        f"<div class='castray-table castray-events'><div><b>Events</b>{more}</div>"
        "<table style='border-collapse:collapse;font-size:12px'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
