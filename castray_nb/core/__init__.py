"""castray_nb.core: discovery, reading, the session. No IPython or widget imports; Ray lazily.

The flow: sources -> candidates -> verified clusters (:class:`ClusterInfo`) -> attached
clusters in a :class:`Session` -> node records -> one DataFrame.

Names load on first use, so importing this package costs almost nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Address": "address",
    "parse_address": "address",
    "find_token": "auth",
    "ClusterClient": "client",
    "Reading": "client",
    "RayClusterConnector": "compat",
    "RayClusterDiscovery": "compat",
    "discover_and_connect_external_clusters": "compat",
    "become_driver": "connector",
    "driver_address": "connector",
    "leave_driver": "connector",
    "resolve": "connector",
    "ClusterInfo": "discovery",
    "DiscoveryReport": "discovery",
    "discover": "discovery",
    "discover_report": "discovery",
    "AmbiguousAddress": "errors",
    "AuthRequired": "errors",
    "CastrayError": "errors",
    "ClusterUnreachable": "errors",
    "ConfigError": "errors",
    "DriverConflict": "errors",
    "InvalidAddress": "errors",
    "InvalidArgument": "errors",
    "InvalidName": "errors",
    "NameTaken": "errors",
    "UnknownCluster": "errors",
    "COLUMNS": "nodes",
    "NodeRecord": "nodes",
    "to_dataframe": "nodes",
    "ClusterState": "model",
    "Event": "model",
    "Snapshot": "model",
    "Session": "session",
    "Settings": "settings",
    "load_settings": "settings",
    "Candidate": "sources",
    "SourceContext": "sources",
    "register_source": "sources",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
