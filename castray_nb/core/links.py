"""The dashboard link a user can open: through the Jupyter server when there is one.

A browser on another machine (JupyterHub, a remote workstation) cannot open a cluster's
own dashboard URL (``http://127.0.0.1:8265``); it can open what the Jupyter server serves.
So wherever castray_nb shows a dashboard link, it is, in this order:

1. the ``dashboard_link`` setting (``CASTRAY_DASHBOARD_LINK``), a template with the fields
   ``{base_url}``, ``{cluster}`` (the session name), ``{name}``, ``{dashboard_url}``,
   ``{host}``, ``{port}`` and any environment variable (``{JUPYTERHUB_SERVICE_PREFIX}``),
   as dask's ``distributed.dashboard.link``;
2. under a Jupyter server, ``{base_url}castray/dashboard/{cluster}/``: the server's proxy
   (:mod:`castray_nb.server.proxy`), keyed by the session name, which the server resolves
   (the kernel registers its clusters there, see :mod:`castray_nb.core.registry`);
3. otherwise the cluster's own dashboard URL.

How a kernel learns the server's base URL: JupyterHub's single-user server exports
``JUPYTERHUB_SERVICE_PREFIX`` (``/user/alice/``), which its kernels inherit. Otherwise
jupyter_client puts the server's process id in the kernel's ``JPY_PARENT_PID``, and Jupyter
Server describes itself in ``jpserver-<pid>.json`` in Jupyter's runtime directory (which the
kernel inherits too), ``base_url`` included. Jupyter Server also sets ``JPY_SESSION_NAME``
(the notebook's path) but no base URL.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

PROXY_PATH = "castray/dashboard"


@dataclass(frozen=True)
class JupyterContext:
    """The Jupyter server this process runs under, as far as it can tell."""

    base_url: str  # always begins and ends with "/"
    how: str  # where the base URL came from


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """Jupyter's runtime directory (``JUPYTER_RUNTIME_DIR``, else jupyter_core's default)."""
    env = os.environ if env is None else env
    if env.get("JUPYTER_RUNTIME_DIR"):
        return Path(env["JUPYTER_RUNTIME_DIR"])
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return Path.home() / ".local" / "share" / "jupyter" / "runtime"
    return Path(jupyter_runtime_dir())


def jupyter_context(env: Mapping[str, str] | None = None) -> JupyterContext | None:
    """The base URL of the Jupyter server whose kernel this is, or None outside one."""
    env = os.environ if env is None else env
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "").strip()
    if prefix:
        return JupyterContext(_slashed(prefix), "JUPYTERHUB_SERVICE_PREFIX")
    parent = env.get("JPY_PARENT_PID", "").strip()
    if not parent.isdigit():
        return None
    info = runtime_dir(env) / f"jpserver-{parent}.json"
    try:
        base_url = json.loads(info.read_text(encoding="utf-8")).get("base_url")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(base_url, str):
        return None
    return JupyterContext(_slashed(base_url), f"{info.name} (JPY_PARENT_PID)")


def _slashed(path: str) -> str:
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


@functools.lru_cache(maxsize=1)
def _context() -> JupyterContext | None:
    return jupyter_context()


def refresh_context() -> None:
    """Forget what was learnt about the Jupyter server (tests, a kernel moved to another)."""
    _context.cache_clear()


def dashboard_link(
    dashboard_url: str | None,
    session_name: str | None,
    name: str | None = None,
    *,
    context: JupyterContext | None = None,
    template: str | None = None,
    detect: bool = True,
) -> str | None:
    """The link to show for a cluster's dashboard (see the module's docstring).

    ``template`` is the ``dashboard_link`` setting of whoever asks (a session's own
    settings), never read here: this module knows the Jupyter server, not the settings."""
    if detect:
        context = context or _context()
    if not dashboard_url:
        return None
    key = session_name or name
    if template:
        parts = urlsplit(dashboard_url)
        fields = {
            "base_url": context.base_url if context else "/",
            "cluster": quote(key or "", safe=""),
            "name": quote(name or key or "", safe=""),
            "dashboard_url": dashboard_url,
            "host": parts.hostname or "",
            "port": parts.port or "",
        }
        return template.format(**{**os.environ, **fields})
    if context and key:
        return f"{context.base_url}{PROXY_PATH}/{quote(key, safe='')}/"
    return dashboard_url
