"""The kernel's own Ray runtime as the session tracks it: its rows, and what happens when
it loses its GCS."""

from __future__ import annotations

import threading
import time

from .address import cluster_key
from .changes import node_events
from .local import LOST_GCS_DONE, LOST_GCS_GRACE_S, local_runtime
from .model import Event
from .nodes import NodeRecord, mark_unreachable


class LocalTracker:
    """The rows of this process's ``ray.init`` runtime ("local"), read without starting one.

    Thread-safe; reads that overlap apply in the order they started, so an older reading
    never overwrites a newer one.
    """

    def __init__(self, gcs_timeout: float) -> None:
        self._gcs_timeout = gcs_timeout
        self._lock = threading.Lock()
        self._rows: list[NodeRecord] = []
        self._name: str | None = None
        self._key: tuple[str, int] | None = None
        self._lost_since: float | None = None
        self._started = 0  # sequence of reads started, and the newest applied
        self._applied = -1

    @property
    def rows(self) -> list[NodeRecord]:
        with self._lock:
            return list(self._rows)

    @property
    def key(self) -> tuple[str, int] | None:
        """The runtime's GCS as :func:`.address.cluster_key`, to tell it apart among attachments."""
        with self._lock:
            return self._key

    def read(self) -> list[Event]:
        """Read the runtime (if this process has one); return what changed."""
        with self._lock:
            seq = self._started
            self._started += 1
        runtime = local_runtime(self._gcs_timeout)
        with self._lock:
            if seq < self._applied:
                return []  # a newer reading already landed
            self._applied = seq
        if runtime is not None and not runtime.reachable:
            return self._lost(runtime.name)
        with self._lock:
            previous, previous_name = self._rows, self._name
            self._rows = runtime.nodes if runtime else []
            self._name = runtime.name if runtime else None
            self._key = cluster_key(runtime.gcs_address) if runtime and runtime.gcs_address else None
            self._lost_since = None
        if runtime is None:
            return [
                Event("node_removed", previous_name or "local", r.node_id, "local runtime shut down") for r in previous
            ]
        return node_events(runtime.name, previous, runtime.nodes)

    def _lost(self, name: str) -> list[Event]:
        """The runtime lost its GCS: rows turn UNREACHABLE; if it stays lost, end the
        runtime (Ray would end the whole kernel process a minute later)."""
        now = time.monotonic()
        with self._lock:
            first = self._lost_since is None
            if first:
                self._lost_since = now
            self._rows = mark_unreachable(self._rows)
            lost_for = now - (self._lost_since or now)
        if first:
            return [Event("cluster_unreachable", name, detail="the kernel's Ray runtime lost its GCS")]
        if lost_for < LOST_GCS_GRACE_S:
            return []
        from .connector import leave_driver

        leave_driver()
        with self._lock:
            gone, self._rows, self._name, self._key = self._rows, [], None, None
            self._lost_since = None
        return [Event("node_removed", name, r.node_id, LOST_GCS_DONE) for r in gone] + [
            Event("cluster_detached", name, detail=LOST_GCS_DONE)
        ]
