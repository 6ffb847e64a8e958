"""Who owns a panel: the notebook cell that made it.

ipywidgets keeps every widget alive until ``close()``, and the kernel is never told that
an output was cleared. So a panel made by :func:`castray_nb.panel` belongs to the cell
that ran it, and is closed when that cell runs again (IPython's ``pre_run_cell`` event
carries the cell's id, which JupyterLab and Notebook 7 send with every execution).
Where there is no cell id (a terminal IPython, nbval, a plain script), the newest panel
made there replaces the previous one.

Light on purpose: ``%load_ext castray_nb`` hooks the cells without importing ipywidgets.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol


class Closable(Protocol):
    def close(self) -> None: ...


_lock = threading.Lock()
_owned: dict[str | None, list[Any]] = {}
_hooked: set[int] = set()
_running: str | None = None  # the cell IPython said is running, as of its pre_run_cell


def adopt(thing: Closable, cell: str | None) -> None:
    """Make ``cell`` the owner of ``thing``; without a cell, close the last one made so."""
    with _lock:
        replaced = _owned.pop(None, []) if cell is None else []
        _owned.setdefault(cell, []).append(thing)
    for old in replaced:
        old.close()


def forget(thing: Closable) -> None:
    """``thing`` was closed: it has no owner any more."""
    with _lock:
        for cell, things in list(_owned.items()):
            if thing in things:
                things.remove(thing)
                if not things:
                    del _owned[cell]


def owned() -> list[Any]:
    with _lock:
        return [thing for things in _owned.values() for thing in things]


def _on_pre_run_cell(info: Any) -> None:
    global _running
    cell = getattr(info, "cell_id", None)
    _running = cell if isinstance(cell, str) and cell else None
    if _running is None:
        return
    with _lock:
        things = _owned.pop(_running, [])
    for old in things:
        old.close()


def hook_cells(shell: Any = None) -> None:
    """Close a cell's panels when that cell runs again (once per IPython shell)."""
    shell = shell or _shell()
    if shell is None or id(shell) in _hooked:
        return
    shell.events.register("pre_run_cell", _on_pre_run_cell)
    _hooked.add(id(shell))


def current_cell_id() -> str | None:
    """The id of the notebook cell running now, or None.

    From the kernel's request (``metadata.cellId``, as JupyterLab sends it), else from
    the last ``pre_run_cell`` event IPython gave us.
    """
    kernel = getattr(_shell(), "kernel", None)
    get_parent = getattr(kernel, "get_parent", None)
    if callable(get_parent):
        try:
            cell = (get_parent().get("metadata") or {}).get("cellId")
        except Exception:
            cell = None
        if isinstance(cell, str) and cell:
            return cell
    return _running


def _shell() -> Any:
    from IPython import get_ipython

    return get_ipython()
