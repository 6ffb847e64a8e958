"""A picture of the clusters: each cluster a band, each node a tile.

Tiles are coloured by state (ALIVE green, DEAD grey, UNREACHABLE red), the head has a
star and a thicker edge, and three bars inside each tile show CPU, GPU and memory in
use where the cluster reports it (a faint dashed outline where it does not). Drawn with
matplotlib into SVG, so the same markup shows in the live panel (an ipywidgets HTML
widget: no front-end extension needed), in the static HTML fallback, in nbconvert
output and on GitHub. Every tile's SVG group has the id ``castray-node-<STATE>-<node_id>``.

>>> svg = render_picture(castray_nb.session().rows())     # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import io
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .core.nodes import ALIVE, DEAD, UNREACHABLE, NodeRecord

TILES_PER_ROW = 10
MAX_TILES = 40  # per cluster; the rest are summed up in one "+N more" tile
FILL = {ALIVE: "#2da44e", DEAD: "#afb8c1", UNREACHABLE: "#cf222e"}
# Text outside the tiles takes the page's own text colour (light or dark theme): drawn in
# this stand-in colour, then written as ``currentColor`` into the SVG.
TEXT = "#010203"
_DRAW_LOCK = threading.Lock()  # matplotlib's font cache and text layout are not thread-safe


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
    rows: Sequence[NodeRecord], actors: Mapping[tuple[str, str], int] | None = None, *, width: float = 9.0
) -> str:
    """The clusters of ``rows`` as inline SVG markup (an empty string when there are no rows)."""
    if not rows:
        return ""
    clusters: dict[str, list[NodeRecord]] = {}
    for r in rows:
        clusters.setdefault(r.cluster, []).append(r)
    with _DRAW_LOCK:
        return _draw(clusters, actors or {}, width)


def _draw(clusters: dict[str, list[NodeRecord]], actors: Mapping[tuple[str, str], int], width: float) -> str:
    import matplotlib

    # Text stays text (not glyph outlines): several times smaller, and searchable.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "castray"}):
        return _figure(clusters, actors, width)


def _figure(clusters: dict[str, list[NodeRecord]], actors: Mapping[tuple[str, str], int], width: float) -> str:
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch, Rectangle

    tile_w, tile_h = 0.82, 0.62
    pitch = tile_h + 0.4  # from one row of tiles to the next: the tile, its label, a gap
    band_rows = [-(-min(len(nodes), MAX_TILES + 1) // TILES_PER_ROW) for nodes in clusters.values()]
    height_units = sum(r * pitch + 0.55 for r in band_rows) + 0.1
    fig = Figure(figsize=(width, max(1.2, height_units * width / (TILES_PER_ROW + 0.4))), dpi=72)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.2, TILES_PER_ROW + 0.2)
    ax.set_ylim(height_units, 0)
    ax.axis("off")

    def tile(i: int, **style: Any) -> tuple[int, float]:
        """Draw the rounded tile of slot ``i`` of the band that starts at ``y``; return its corner."""
        x, top = i % TILES_PER_ROW, y + (i // TILES_PER_ROW) * pitch
        ax.add_patch(
            FancyBboxPatch((x + 0.04, top), tile_w, tile_h, boxstyle="round,pad=0,rounding_size=0.08", **style)
        )
        return x, top

    y = 0.1
    for (name, nodes), n_rows in zip(clusters.items(), band_rows, strict=True):
        counts = {s: sum(n.state == s for n in nodes) for s in (ALIVE, DEAD, UNREACHABLE)}
        parts = [f"{counts[s]} {s.lower()}" for s in (ALIVE, DEAD, UNREACHABLE) if counts[s]]
        alive_cpu = sum(n.CPU for n in nodes if n.state == ALIVE)
        title = f"{name}  ·  {len(nodes)} node{'s' * (len(nodes) != 1)}: {', '.join(parts)}  ·  {alive_cpu:g} CPU"
        ax.text(0, y + 0.3, title, fontsize=10, fontweight="bold", color=TEXT, va="center")
        y += 0.55
        # Order first, then cap: the head and the live nodes come first, whatever order the
        # State API listed them in, so the head never vanishes into the "+N" tile.
        ordered = heapq.nsmallest(MAX_TILES if len(nodes) > MAX_TILES + 1 else len(nodes), nodes, key=_tile_order)
        for i, node in enumerate(ordered):
            x, top = tile(
                i,
                facecolor=FILL.get(node.state, "#8c959f"),
                edgecolor="#1f2328" if node.is_head else "white",
                linewidth=2.0 if node.is_head else 0.8,
                alpha=0.95 if node.state == ALIVE else 0.75,
                gid=f"castray-node-{node.state}-{node.node_id}",
            )
            live = node.state == ALIVE  # a dead node's last usage means nothing now
            usage = (
                (
                    _share(node.CPU_used, node.CPU),
                    _share(node.GPU_used, node.GPU),
                    _share(node.memory_used_bytes, node.memory_bytes),
                )
                if live
                else (None, None, None)
            )
            for j, (label, share) in enumerate(zip("CGM", usage, strict=True)):
                by = top + 0.1 + j * 0.15
                ax.text(x + 0.1, by + 0.05, label, fontsize=6, color="white", va="center")
                known = share is not None  # unknown usage (or none to have): a faint dashed outline
                ax.add_patch(
                    Rectangle(
                        (x + 0.22, by),
                        0.56,
                        0.1,
                        facecolor="none",
                        edgecolor="white",
                        linewidth=0.6,
                        linestyle="-" if known else (0, (2, 2)),
                        alpha=1.0 if known else 0.5,
                    )
                )
                if share is not None:
                    ax.add_patch(Rectangle((x + 0.22, by), 0.56 * share, 0.1, facecolor="white", linewidth=0))
            if node.is_head:
                ax.text(x + 0.8, top + 0.02, "★", fontsize=11, color="#bf8700", ha="center", va="center")
            count = actors.get((node.cluster, node.node_id))
            label = node.node_ip + (f" · {count} actor{'s' * (count != 1)}" if count else "")
            ax.text(x + 0.45, top + tile_h + 0.12, label, fontsize=6, color=TEXT, alpha=0.7, ha="center", va="center")
        if len(ordered) < len(nodes):
            x, top = tile(len(ordered), facecolor="#eaeef2", edgecolor="#8c959f", linewidth=0.8, gid="castray-more")
            alive = sum(n.state == ALIVE for n in nodes) - sum(n.state == ALIVE for n in ordered)
            ax.text(
                x + 0.45,
                top + 0.25,
                f"+{len(nodes) - len(ordered)}",
                fontsize=9,
                ha="center",
                va="center",
                color="#24292f",
            )  # fmt: skip  (on the light "+N" tile, whatever the theme)
            ax.text(x + 0.45, top + 0.47, f"{alive} alive", fontsize=6, ha="center", va="center", color="#57606a")
        y += n_rows * pitch
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None}, transparent=True)
    svg = out.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: inline markup
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    return svg.replace(f"fill: {TEXT}", "fill: currentColor")


def _tile_order(node: NodeRecord) -> tuple[bool, bool, str, str]:
    return (not node.is_head, node.state != ALIVE, node.node_ip, node.node_id)
