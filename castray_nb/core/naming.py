"""What an attached cluster is called, and when two finds are the same cluster."""

from __future__ import annotations

import re
from collections.abc import Container

from .address import cluster_key, is_this_machine, split_hostport
from .discovery import ClusterInfo
from .errors import NAME_RULE, InvalidName

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def checked_name(name: object) -> str:
    """A name to attach a cluster under; raises :class:`InvalidName`.

    Names go into URL paths and onto magic lines, so they are letters, digits, ``.``,
    ``_`` and ``-``, at most 64 characters (and not ``.`` or ``..``).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        shown = repr(name) if len(repr(name)) <= 40 else repr(name)[:37] + "..."
        shown = "".join(ch if ch.isprintable() else "?" for ch in shown)
        raise InvalidName(f"invalid cluster name {shown}: use {NAME_RULE}")
    return name


def default_name(info: ClusterInfo) -> str:
    """The short name a cluster is attached under when none is given.

    ``ray-<port>`` for a cluster on this machine (the GCS port, else the dashboard's),
    ``<host>-<port>`` for one elsewhere; a session that already uses it adds ``-2``,
    ``-3``, ... (:func:`free_name`). The session name stays in ``ClusterState.session_name``.
    """
    address = info.gcs_address
    if not address and info.dashboard_url:
        address = info.dashboard_url.partition("://")[2].split("/", 1)[0]
    try:
        host, port = split_hostport(address or "")
    except ValueError:
        return re.sub(r"[^A-Za-z0-9._-]", "-", info.name)[-64:] or "cluster"
    if is_this_machine(host):
        return f"ray-{port}"
    return re.sub(r"[^A-Za-z0-9.-]", "-", host.strip("[]"))[:50] + f"-{port}"


def free_name(base: str, taken: Container[str]) -> str:
    """``base``, or ``base-2``, ``base-3``, ...: the first that is not ``taken``."""
    name, n = base, 2
    while name in taken:
        name, n = f"{base[:60]}-{n}", n + 1
    return name


def same_cluster(a: ClusterInfo, b: ClusterInfo) -> bool:
    """Whether two finds are one cluster: the same GCS, else the same dashboard."""
    if a.gcs_address and b.gcs_address:
        return cluster_key(a.gcs_address) == cluster_key(b.gcs_address)
    return bool(a.dashboard_url) and a.dashboard_url == b.dashboard_url
