"""One attached cluster: how it is read, and what its last reading found."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .auth import Token
from .client import Reading
from .discovery import ClusterInfo
from .model import ClusterState
from .nodes import ALIVE, NodeRecord


class ClusterReader(Protocol):
    """What a session needs of a cluster reader (:class:`.client.ClusterClient`, or a fake in tests)."""

    def read(self, *, cluster: str, previous: Sequence[NodeRecord] = ()) -> Reading: ...

    def actors(self, *, cluster: str, node_ids: list[str], state: str | None = None) -> Any: ...


@dataclass
class Attachment:
    """Mutable, and changed only under its session's lock."""

    name: str
    info: ClusterInfo
    client: ClusterReader
    token: Token | None = field(default=None, repr=False)  # given on purpose (connect(token=...)), else None
    next_read: int = 0  # sequence of reads started; a reading older than the applied one is dropped
    applied_read: int = -1
    rows: list[NodeRecord] = field(default_factory=list)
    seen: dt.datetime | None = None  # when the rows were read; a record kept unchanged carries an older time
    reachable: bool | None = None
    session_name: str | None = None
    via: str | None = None
    last_refresh: dt.datetime | None = None
    last_ok: dt.datetime | None = None
    read_s: float | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()
    remembered: float = 0.0  # monotonic time its last_seen was last written to the user's store

    @property
    def address(self) -> str:
        """What it was attached by: its GCS address, else its dashboard URL."""
        return self.info.gcs_address or self.info.dashboard_url or ""

    def current_rows(self) -> list[NodeRecord]:
        """Its rows, each with ``last_seen`` the time of the reading that saw it.

        A reading keeps the record of a node read unchanged (so a refresh of 10,000 quiet
        nodes leaves no new long-lived objects, see :mod:`.gcpause`); the copy with the new
        time is made here, for the caller only, and is short-lived."""
        seen = self.seen
        if seen is None or self.reachable is False:
            return list(self.rows)
        return [r if r.last_seen == seen else replace(r, last_seen=seen) for r in self.rows]

    def state(self, link: str | None) -> ClusterState:
        return ClusterState(
            name=self.name,
            info=self.info,
            reachable=self.reachable,
            session_name=self.session_name or self.info.name,
            via=self.via,
            last_refresh=self.last_refresh,
            last_ok=self.last_ok,
            read_s=self.read_s,
            error=self.error,
            num_nodes=len(self.rows),
            alive_nodes=sum(r.state == ALIVE for r in self.rows),
            warnings=self.warnings,
            link=link,
        )
