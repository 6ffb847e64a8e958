"""Short reprs for clusters: one line as text, a small card as HTML.

Plain strings only (no IPython import): IPython and JupyterLab pick them up through
``__repr__`` and ``_repr_html_``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence


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
