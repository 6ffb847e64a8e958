"""castray_nb: find, attach and watch Ray clusters from a notebook.

>>> import castray_nb
>>> castray_nb.discover()                 # doctest: +SKIP
>>> castray_nb.connect("auto")            # doctest: +SKIP
>>> castray_nb.nodes()                    # doctest: +SKIP

In IPython: ``%load_ext castray_nb`` then ``%castray --help``.
Loading this package imports neither Ray, pandas, IPython nor ipywidgets; the
functions below load what they need on first use.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from .core.errors import (
    AmbiguousAddress,
    AuthRequired,
    CastrayError,
    ClusterTimeout,
    ClusterUnreachable,
    DriverConflict,
    InvalidAddress,
    InvalidArgument,
    InvalidName,
    NameTaken,
    UnknownCluster,
    UnknownJob,
)

__version__ = "0.1.0"

# A library stays quiet unless the application configures logging; in a notebook, a log
# line from a background refresh would otherwise land in whatever cell runs next.
logging.getLogger(__name__).addHandler(logging.NullHandler())

_WHERE = {
    "actors": "castray_nb.api",
    "clusters": "castray_nb.api",
    "connect": "castray_nb.api",
    "disconnect": "castray_nb.api",
    "discover": "castray_nb.api",
    "discover_report": "castray_nb.api",
    "follow_job_logs": "castray_nb.api",
    "forget": "castray_nb.api",
    "recent": "castray_nb.api",
    "job_logs": "castray_nb.api",
    "jobs": "castray_nb.api",
    "nodes": "castray_nb.api",
    "session": "castray_nb.api",
    "status": "castray_nb.api",
    "stop_job": "castray_nb.api",
    "submit": "castray_nb.api",
    "panel": "castray_nb.widgets",
    "history": "castray_nb.api",
    "events": "castray_nb.api",
    "ClusterInfo": "castray_nb.core.discovery",
    "ClusterState": "castray_nb.core.model",
    "Event": "castray_nb.core.model",
}

__all__ = [
    "AmbiguousAddress",
    "AuthRequired",
    "CastrayError",
    "ClusterTimeout",
    "ClusterUnreachable",
    "DriverConflict",
    "InvalidAddress",
    "InvalidArgument",
    "InvalidName",
    "NameTaken",
    "UnknownCluster",
    "UnknownJob",
    *_WHERE,
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext castray_nb``: register the ``%castray`` magic."""
    from .magics import load_ipython_extension as _load

    _load(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter Server extension (REST API and event WebSocket): see castray_nb.server."""
    return [{"module": "castray_nb.server"}]
