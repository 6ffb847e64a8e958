"""The kernel's own Ray runtime as the session tracks it: its rows, and what happens when
it loses its GCS."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .address import cluster_key
from .changes import node_events
from .local import LOST_GCS_DONE, LOST_GCS_GRACE_S, LocalRuntime, local_runtime
from .model import Event
from .nodes import NodeRecord, mark_unreachable
from .settings import Settings

SHUT_DOWN = "the kernel's ray.shutdown() stopped the cluster it had started"
GCS_LOST = "the kernel's Ray runtime lost its GCS"


@dataclass(frozen=True)
class Outcome:
    """What one read of the runtime came to, for the recorder (:meth:`.Session.refresh`).

    ``kind``: ``"read"`` (``runtime`` answered), ``"lost"`` (its GCS does not answer) or
    ``"left"`` (the runtime is gone: ``runtime`` is the one that went, ``ended`` whether
    its cluster went with it, and then ``why`` says how)."""

    kind: str
    runtime: LocalRuntime
    ended: bool = False
    why: str = ""


class LocalTracker:
    """The rows of this process's ``ray.init`` runtime ("local"), read without starting one.

    Thread-safe; reads that overlap apply in the order they started, so an older reading
    never overwrites a newer one.
    """

    def __init__(self, gcs_timeout: float, settings: Settings | None = None) -> None:
        self._gcs_timeout = gcs_timeout
        self._settings = settings
        self._lock = threading.Lock()
        self._runtime: LocalRuntime | None = None  # as last read (its rows are ``_rows``)
        self._rows: list[NodeRecord] = []
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

    def read(self) -> tuple[list[Event], Outcome | None]:
        """Read the runtime (if this process has one); return what changed and what the
        read came to (None: no runtime, before or now, or a newer reading already landed)."""
        with self._lock:
            seq = self._started
            self._started += 1
            previous_rows = self._rows
        runtime = local_runtime(self._gcs_timeout, settings=self._settings, previous=previous_rows)
        with self._lock:
            if seq < self._applied:
                return [], None  # a newer reading already landed
            self._applied = seq
        if runtime is not None and not runtime.reachable:
            return self._lost(runtime)
        with self._lock:
            previous, before = self._rows, self._runtime
            self._runtime = runtime
            self._rows = runtime.nodes if runtime else []
            self._key = cluster_key(runtime.gcs_address) if runtime and runtime.gcs_address else None
            self._lost_since = None
        if runtime is not None:
            return node_events(runtime.name, previous, runtime.nodes), Outcome("read", runtime)
        if before is None:
            return [], None
        events = [Event("node_removed", before.name, r.node_id, "local runtime shut down") for r in previous]
        return events, Outcome("left", before, ended=before.started_here, why=SHUT_DOWN if before.started_here else "")

    def _lost(self, runtime: LocalRuntime) -> tuple[list[Event], Outcome | None]:
        """The runtime lost its GCS: rows turn UNREACHABLE; if it stays lost, end the
        runtime (Ray would end the whole kernel process a minute later)."""
        now = time.monotonic()
        name = runtime.name
        with self._lock:
            first = self._lost_since is None
            if first:
                self._lost_since = now
            self._rows = mark_unreachable(self._rows)
            lost_for = now - (self._lost_since or now)
        if first:
            return [Event("cluster_unreachable", name, detail=GCS_LOST)], Outcome("lost", runtime)
        if lost_for < LOST_GCS_GRACE_S:
            return [], Outcome("lost", runtime)
        from .connector import leave_driver

        leave_driver()
        with self._lock:
            gone, self._rows, self._key, self._runtime = self._rows, [], None, None
            self._lost_since = None
        events = [Event("node_removed", name, r.node_id, LOST_GCS_DONE) for r in gone]
        events.append(Event("cluster_detached", name, detail=LOST_GCS_DONE))
        return events, Outcome("left", runtime, ended=True, why=f"{GCS_LOST} for {LOST_GCS_GRACE_S:g} s")
