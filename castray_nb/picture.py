"""A picture of the clusters: each cluster a band, each node a tile.

Tiles are coloured by state (ALIVE green, DEAD grey, UNREACHABLE red), the head has a
star and a thicker edge, and three bars inside each tile show CPU, GPU and memory in
use where the cluster reports it (a faint dashed outline where it does not). Written as
SVG markup, so the same picture shows in the live panel (an ipywidgets HTML widget: no
front-end extension needed), in the static HTML fallback, in nbconvert output and on
GitHub. Every tile's SVG group has the id ``castray-node-<STATE>-<node_id>``.

>>> svg = render_picture(castray_nb.session().rows())     # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import html
from collections.abc import Mapping, Sequence
from typing import Any

from .core.nodes import ALIVE, DEAD, UNREACHABLE, NodeRecord

TILES_PER_ROW = 10
MAX_TILES = 40  # per cluster; the rest are summed up in one "+N more" tile
FILL = {ALIVE: "#2da44e", DEAD: "#afb8c1", UNREACHABLE: "#cf222e"}
# Text outside the tiles takes the page's own text colour (light or dark theme).
TEXT = "currentColor"


def _share(used: float | None, total: float) -> float | None:
    if used is None or total <= 0:
        return None
    return max(0.0, min(1.0, used / total))


def signature(rows: Sequence[NodeRecord], actors: Mapping[tuple[str, str], int] | None = None) -> tuple[Any, ...]:
    """What the picture depends on, one tuple per node, usage rounded so that tiny jitter
    does not redraw it. The first :data:`STRUCTURE` fields are what it shows apart from
    usage (see :func:`structure`)."""

    def tenth(value: float | None) -> int | None:
        return None if value is None else round(value * 10)

    actors = actors or {}
    return tuple(
        (
            r.cluster,
            r.node_id,
            r.state,
            r.is_head,
            actors.get((r.cluster, r.node_id)),
            r.node_ip,
            tenth(_share(r.CPU_used, r.CPU)),
            tenth(_share(r.GPU_used, r.GPU)),
            tenth(_share(r.memory_used_bytes, r.memory_bytes)),
        )
        for r in rows
    )


STRUCTURE = 5  # cluster, node id, state, head, actor count


def structure(signed: tuple[Any, ...]) -> tuple[Any, ...]:
    """The part of a :func:`signature` that is not usage: nodes, states, heads, actor counts."""
    return tuple(node[:STRUCTURE] for node in signed)


def render_picture(
    rows: Sequence[NodeRecord], actors: Mapping[tuple[str, str], int] | None = None, *, width: float = 648.0
) -> str:
    """The clusters of ``rows`` as inline SVG markup, ``width`` pixels wide (an empty
    string when there are no rows)."""
    if not rows:
        return ""
    clusters: dict[str, list[NodeRecord]] = {}
    for r in rows:
        clusters.setdefault(r.cluster, []).append(r)
    return _Drawing(width / (TILES_PER_ROW + 0.4)).draw(clusters, actors or {})


class _Drawing:
    """SVG written directly: a few hundred elements at most (40 tiles a cluster), so no
    plotting library is worth its cost here (importing one doubles a kernel's objects, and
    every full collection of them stalls the kernel's thread)."""

    TILE_W, TILE_H = 0.82, 0.62
    PITCH = TILE_H + 0.4  # from one row of tiles to the next: the tile, its label, a gap

    def __init__(self, scale: float) -> None:
        self.s = scale  # pixels per layout unit
        self.parts: list[str] = []

    def n(self, value: float) -> str:
        return f"{value * self.s:.1f}"

    def text(self, x: float, y: float, text: str, size: float, fill: str, *, anchor: str = "start",
             bold: bool = False, opacity: float = 1.0) -> None:  # fmt: skip
        style = f"font-size:{size:g}px;fill:{fill}" + (";font-weight:bold" if bold else "")  # 72 dpi: 1 pt = 1 px
        style += f";opacity:{opacity:g}" if opacity != 1.0 else ""
        self.parts.append(
            f'<text x="{self.n(x)}" y="{self.n(y)}" text-anchor="{anchor}" dominant-baseline="central" '
            f'style="{style}">{_escape(text)}</text>'
        )

    def rect(self, x: float, y: float, w: float, h: float, style: str, *, rx: float = 0.0) -> None:
        corner = f' rx="{self.n(rx)}"' if rx else ""
        self.parts.append(
            f'<rect x="{self.n(x)}" y="{self.n(y)}" width="{self.n(w)}" height="{self.n(h)}"{corner} style="{style}"/>'
        )

    def draw(self, clusters: dict[str, list[NodeRecord]], actors: Mapping[tuple[str, str], int]) -> str:
        band_rows = [-(-min(len(nodes), MAX_TILES + 1) // TILES_PER_ROW) for nodes in clusters.values()]
        height = max(1.2 * 72 / self.s, sum(r * self.PITCH + 0.55 for r in band_rows) + 0.1)
        y = 0.1
        for (name, nodes), n_rows in zip(clusters.items(), band_rows, strict=True):
            self.band(name, nodes, actors, y)
            y += 0.55 + n_rows * self.PITCH
        width = self.n(TILES_PER_ROW + 0.4)
        return (
            # In points, as matplotlib sized it: 648 user units show 864 px wide, text included.
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}pt" height="{self.n(height)}pt" '
            f'viewBox="0 0 {width} {self.n(height)}" font-family="sans-serif" class="castray-picture">'
            + "".join(self.parts)
            + "</svg>"
        )

    def band(self, name: str, nodes: list[NodeRecord], actors: Mapping[tuple[str, str], int], y: float) -> None:
        counts = {s: sum(n.state == s for n in nodes) for s in (ALIVE, DEAD, UNREACHABLE)}
        parts = [f"{counts[s]} {s.lower()}" for s in (ALIVE, DEAD, UNREACHABLE) if counts[s]]
        alive_cpu = sum(n.CPU for n in nodes if n.state == ALIVE)
        title = f"{name}  ·  {len(nodes)} node{'s' * (len(nodes) != 1)}: {', '.join(parts)}  ·  {alive_cpu:g} CPU"
        self.text(0.2, y + 0.3, title, 10, TEXT, bold=True)
        top0 = y + 0.55
        # Order first, then cap: the head and the live nodes come first, whatever order the
        # State API listed them in, so the head never vanishes into the "+N" tile.
        ordered = heapq.nsmallest(MAX_TILES if len(nodes) > MAX_TILES + 1 else len(nodes), nodes, key=_tile_order)
        for i, node in enumerate(ordered):
            self.tile(i, top0, node, actors.get((node.cluster, node.node_id)))
        if len(ordered) < len(nodes):
            x, top = self.slot(len(ordered), top0)
            alive = sum(n.state == ALIVE for n in nodes) - sum(n.state == ALIVE for n in ordered)
            self.parts.append('<g id="castray-more">')
            self.rect(
                x + 0.04 + 0.2, top, self.TILE_W, self.TILE_H, "fill:#eaeef2;stroke:#8c959f;stroke-width:0.8", rx=0.08
            )  # fmt: skip  (light, whatever the theme: its text is dark)
            self.text(x + 0.45 + 0.2, top + 0.25, f"+{len(nodes) - len(ordered)}", 9, "#24292f", anchor="middle")
            self.text(x + 0.45 + 0.2, top + 0.47, f"{alive} alive", 6, "#57606a", anchor="middle")
            self.parts.append("</g>")

    def slot(self, i: int, top0: float) -> tuple[float, float]:
        return float(i % TILES_PER_ROW), top0 + (i // TILES_PER_ROW) * self.PITCH

    def tile(self, i: int, top0: float, node: NodeRecord, actors: int | None) -> None:
        x, top = self.slot(i, top0)
        x += 0.2  # the band's margin
        edge, line = ("#1f2328", 2.0) if node.is_head else ("white", 0.8)
        opacity = 0.95 if node.state == ALIVE else 0.75
        self.parts.append(f'<g id="castray-node-{_escape(node.state)}-{_escape(node.node_id)}">')
        self.rect(x + 0.04, top, self.TILE_W, self.TILE_H,
                  f"fill:{FILL.get(node.state, '#8c959f')};fill-opacity:{opacity};stroke:{edge};stroke-width:{line}",
                  rx=0.08)  # fmt: skip
        live = node.state == ALIVE  # a dead node's last usage means nothing now
        usage = (
            (_share(node.CPU_used, node.CPU), _share(node.GPU_used, node.GPU),
             _share(node.memory_used_bytes, node.memory_bytes))
            if live else (None, None, None)
        )  # fmt: skip
        for j, (label, share) in enumerate(zip("CGM", usage, strict=True)):
            by = top + 0.1 + j * 0.15
            self.text(x + 0.1, by + 0.05, label, 6, "white")
            known = share is not None  # unknown usage (or none to have): a faint dashed outline
            outline = "fill:none;stroke:white;stroke-width:0.6" + ("" if known else ";stroke-dasharray:2,2;opacity:0.5")
            self.rect(x + 0.22, by, 0.56, 0.1, outline)
            if share is not None:
                self.rect(x + 0.22, by, 0.56 * share, 0.1, "fill:white")
        if node.is_head:
            self.text(x + 0.8, top + 0.02, "★", 11, "#bf8700", anchor="middle")
        label = node.node_ip + (f" · {actors} actor{'s' * (actors != 1)}" if actors else "")
        self.text(x + 0.45, top + self.TILE_H + 0.12, label, 6, TEXT, anchor="middle", opacity=0.7)
        self.parts.append("</g>")


def _escape(text: str) -> str:
    return html.escape(str(text), quote=True)


def _tile_order(node: NodeRecord) -> tuple[bool, bool, str, str]:
    return (not node.is_head, node.state != ALIVE, node.node_ip, node.node_id)


# --- a cluster's usage over time (the panel's history chart) -------------------------

CHART_LINES = {"cpu": ("#0969da", "CPU %"), "memory": ("#1a7f37", "memory %"), "gpu": ("#bf8700", "GPU %")}
DEATH = "#cf222e"


def usage_lines(frame: Any) -> dict[str, list[tuple[float, float]]]:
    """From a cluster's totals in ``history()``'s long frame, its CPU, memory and GPU use
    as percentages over time: host figures, or Ray's logical ones where the cluster gave
    no host figures. Each a list of (Unix time, percent), oldest first."""
    if frame is None or frame.empty:
        return {}
    totals = frame[frame["node_id"].isna()]
    wide = totals.pivot_table(index="time", columns="metric", values="value", aggfunc="mean").sort_index()
    times = [t.timestamp() for t in wide.index]

    def column(name: str) -> list[float | None]:
        if name not in wide:
            return [None] * len(times)
        return [None if v != v else float(v) for v in wide[name]]  # NaN is no reading

    def share(used: str, total: str) -> list[float | None]:
        return [None if u is None or not t else 100.0 * u / t for u, t in zip(column(used), column(total), strict=True)]

    def first(*options: list[float | None]) -> list[float | None]:
        return [next((v for v in values if v is not None), None) for values in zip(*options, strict=True)]

    found = {
        "cpu": first(column("cpu_percent"), share("CPU_used", "CPU")),
        "memory": first(
            share("host_memory_used_bytes", "host_memory_total_bytes"), share("memory_used_bytes", "memory_bytes")
        ),
        "gpu": column("gpu_percent"),
    }
    return {k: [(t, v) for t, v in zip(times, vs, strict=True) if v is not None] for k, vs in found.items()}


def render_usage_chart(
    lines: Mapping[str, Sequence[tuple[float, float]]],
    deaths: Sequence[tuple[float, str]],
    since: float,
    until: float,
    *,
    width: float = 648.0,
    height: float = 150.0,
) -> str:
    """A cluster's usage over ``since``..``until`` as inline SVG: a line per kind of use
    (0-100 %), and a red mark at each node death (``(time, what)``: its tooltip)."""
    left, right, top, bottom = 34.0, 8.0, 18.0, 20.0
    span = max(1.0, until - since)
    inner_w, inner_h = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + inner_w * min(1.0, max(0.0, (t - since) / span))

    def y(v: float) -> float:
        return top + inner_h * (1 - min(100.0, max(0.0, v)) / 100.0)

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='castray-usage-chart' width='{width:.0f}' "
        f"height='{height:.0f}' viewBox='0 0 {width:.0f} {height:.0f}' font-size='10' fill='{TEXT}'>"
    ]
    for v in (0, 50, 100):
        parts.append(
            f"<line x1='{left}' x2='{width - right}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='{TEXT}' "
            f"stroke-opacity='0.2'/><text x='{left - 4}' y='{y(v) + 3:.1f}' text-anchor='end'>{v}%</text>"
        )
    for t, label in ((since, _hhmm(since)), (until, _hhmm(until))):
        anchor = "start" if t == since else "end"
        parts.append(f"<text x='{x(t):.1f}' y='{height - 5}' text-anchor='{anchor}'>{label}</text>")
    legend_x = left
    for kind, (colour, label) in CHART_LINES.items():
        points = lines.get(kind) or []
        if points:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
            parts.append(
                f"<polyline data-line='{kind}' points='{path}' fill='none' stroke='{colour}' stroke-width='1.5'/>"
            )
        parts.append(f"<text x='{legend_x}' y='11' fill='{colour}'>{label}{'' if points else ' (none)'}</text>")
        legend_x += 90
    for t, what in deaths:
        parts.append(
            f"<line data-event='node_died' x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{top}' y2='{top + inner_h}' "
            f"stroke='{DEATH}' stroke-width='1.5' stroke-dasharray='3 2'><title>{html.escape(what)}</title></line>"
        )
    parts.append(
        f"<text x='{width - right}' y='11' text-anchor='end' fill='{DEATH}'>┆ node died ({len(deaths)})</text></svg>"
    )
    return "".join(parts)


def _hhmm(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M UTC")
