"""The recorder: what a session reads, written into the user's history (:mod:`.history`).

A session with a recorder hands it every reading and every failed read of an attached
cluster, and the recorder writes, in one short transaction each:

- a point per node and one for the cluster's totals;
- the events: a node joined or died (with Ray's death reason), the cluster became
  unreachable, came back or ended, a job changed status, a cluster was attached or detached;
- the cluster session's row in ``clusters``: when it was first and last seen, its last
  snapshot (nodes, totals, jobs), and when it ended.

**Who records.** A Jupyter server records every cluster it has attached for as long as it
runs; a kernel records a cluster only while no server does. Each cluster session has a
**lease** in the store: its holder renews it with every reading, a server takes it from a
kernel, and anyone takes it once it has expired or its holder's process is gone. So two
processes that watch one cluster write one set of events, not two. A kernel's own
``ray.init()`` runtime is handed over as a cluster named by its session name
(:meth:`.Session.refresh`); when the runtime leaves the kernel, :meth:`Recorder.left`
ends it (a cluster that ``ray.init()`` started) or lets its lease go (one it joined).

**Ended.** A cluster has ended when nothing listens at its address any more (the connection
is refused), when it answers as a new Ray session (a restart), or when it has not answered
for :data:`ENDED_AFTER_S`. It keeps its last snapshot, its series and its events for the
retention.

**Missed while nobody watched.** The first reading of a cluster in a process compares its
nodes with when the store last saw the cluster: a node that started since, or died since
(Ray keeps dead nodes with their end time and death reason), becomes an event at Ray's own
time for it.

Recording never breaks reading: a store that cannot be used is logged once and skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .history import Happened, History, total_values
from .model import Event
from .nodes import ALIVE, DEAD, NodeRecord, row_to_json
from .store import StoreError

if TYPE_CHECKING:
    from .discovery import ClusterInfo
    from .jobs import JobRecord

log = logging.getLogger("castray_nb")

LEASE_S = 30.0  # a lease not renewed for this long may be taken
SNAPSHOT_EVERY_S = 30.0  # the last snapshot is rewritten at most this often (and on any change)
ENDED_AFTER_S = 300.0  # unreachable this long: ended
COMPACT_EVERY_S = 600.0

# The session's event kinds, as the history names them.
_KINDS = {
    "cluster_attached": "cluster_attached",
    "cluster_detached": "cluster_detached",
    "cluster_recovered": "cluster_recovered",
    "node_removed": "node_removed",
    "job_added": "job_status",
    "job_status_changed": "job_status",
}


def _this_host() -> str:
    return socket.gethostname()


def _alive(holder: str) -> bool:
    """Whether the process a lease names may still run (a process of this host that is
    gone is not; another host's is taken on trust until its lease expires)."""
    _, _, rest = holder.partition(":")
    pid, _, host = rest.partition("@")
    if host != _this_host() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Tracked:
    """What the recorder remembers of one attachment between readings."""

    session_name: str | None = None
    first: bool = True  # no reading of it applied yet in this process
    snapshot_at: float = 0.0
    unreachable_since: float | None = None
    ended: bool = False
    holding: bool = False


class Recorder:
    """Writes a session's readings into :class:`.history.History`; see the module's text.

    ``server=True`` for the Jupyter server's session (it takes leases from kernels).
    ``clock`` is the time (tests inject one)."""

    def __init__(
        self,
        history: History | None = None,
        *,
        server: bool = False,
        clock: Callable[[], float] | None = None,
        ended_after_s: float = ENDED_AFTER_S,
    ) -> None:
        self.history = history or History()
        self.server = server
        self.clock = clock or self.history.store.clock
        self.ended_after_s = ended_after_s
        self.holder = f"{'server' if server else 'kernel'}:{os.getpid()}@{_this_host()}"
        self._lock = threading.Lock()
        self._tracked: dict[str, _Tracked] = {}
        self._compacted = 0.0
        self._warned = False

    # --- what the session hands over ---------------------------------------------------

    def reading(
        self,
        name: str,
        info: ClusterInfo,
        session_name: str | None,
        rows: Sequence[NodeRecord],
        events: Sequence[Event],
        jobs: Sequence[JobRecord] = (),
    ) -> None:
        """A reading of attachment ``name`` was applied; ``events`` are the session's for it."""
        now = self.clock()
        key = _session_key(name, info, session_name)
        with self._lock:
            tracked = self._tracked.setdefault(name, _Tracked())
            previous_session, first = tracked.session_name, tracked.first
            was_ended = tracked.ended
            tracked.session_name = key
            tracked.unreachable_since, tracked.ended = None, False
            snapshot_due = bool(events) or first or now - tracked.snapshot_at >= SNAPSHOT_EVERY_S

        def write(db: sqlite3.Connection) -> bool:
            if not self._take_lease(db, key, now):
                return False
            happened: list[Happened] = []
            if previous_session is not None and previous_session != key:
                happened += self._end(db, name, previous_session, now, "it answered as a new Ray session " + key)
            last_seen = self._last_seen(db, key)
            if first:
                happened += _missed(name, rows, last_seen)
            else:
                happened += self._node_events(name, rows, events, now)
            if was_ended and previous_session == key:
                db.execute("UPDATE clusters SET ended_at = NULL, ended_reason = NULL WHERE session_name = ?", (key,))
            self.history.record_in(db, name, rows, now)
            snapshot = _snapshot(rows, jobs or _kept_jobs(db, key), now) if snapshot_due else None
            db.execute(
                "INSERT INTO clusters (session_name, cluster, address, ray_version, first_seen, last_seen, snapshot)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_name) DO UPDATE SET cluster = excluded.cluster,"
                " address = excluded.address, ray_version = coalesce(excluded.ray_version, ray_version),"
                " last_seen = excluded.last_seen, snapshot = coalesce(excluded.snapshot, snapshot)",
                (key, name, info.gcs_address or info.dashboard_url, info.ray_version, now, now, snapshot),
            )
            self.history.add_events(db, happened)
            return True

        wrote = self._write(write)
        self._hold(name, wrote)
        if wrote:  # a reading it did not record (another holds the lease) is not yet seen
            with self._lock:
                tracked.first = False
                if snapshot_due:
                    tracked.snapshot_at = now
        self._compact_when_due(now)

    def failure(self, name: str, info: ClusterInfo, session_name: str | None, error: str, *, gone: bool) -> None:
        """A read of attachment ``name`` failed with ``error``; ``gone``: nothing listens there."""
        now = self.clock()
        key = _session_key(name, info, session_name)
        with self._lock:
            tracked = self._tracked.setdefault(name, _Tracked())
            tracked.session_name = tracked.session_name or key
            became = tracked.unreachable_since is None and not tracked.ended
            if tracked.unreachable_since is None:
                tracked.unreachable_since = now
            ends = not tracked.ended and (gone or now - tracked.unreachable_since >= self.ended_after_s)
            if ends:
                tracked.ended = True
        if not (became or ends):
            return

        def write(db: sqlite3.Connection) -> bool:
            if not self._take_lease(db, key, now):
                return False
            happened = [Happened(now, name, "cluster_unreachable", None, None, error)] if became else []
            if ends:
                why = "nothing listens at its address any more" if gone else f"unreachable for {self.ended_after_s:g} s"
                happened += self._end(db, name, key, now, f"{why} ({error})")
            self.history.add_events(db, happened)
            return True

        self._hold(name, self._write(write))

    def left(self, name: str, info: ClusterInfo, session_name: str | None, *, ended: bool, why: str) -> None:
        """The kernel's own runtime ``name`` is gone from this process. ``ended``: its
        cluster went with it (a ``ray.init()`` that started one); it ends here with ``why``
        and keeps its last snapshot. Otherwise the cluster lives on: its lease is let go
        at once, for whoever else watches it."""
        now = self.clock()
        key = _session_key(name, info, session_name)
        with self._lock:
            tracked = self._tracked.pop(name, None)
        if tracked is None or not tracked.holding:
            return  # another process records it, or nothing of it was recorded here

        def write(db: sqlite3.Connection) -> bool:
            if not ended:
                db.execute("DELETE FROM leases WHERE session_name = ? AND holder = ?", (key, self.holder))
                return True
            if not self._take_lease(db, key, now):
                return False
            self.history.add_events(db, self._end(db, name, key, now, why))
            return True

        self._write(write)

    def event(self, event: Event) -> None:
        """A bus subscriber: attach and detach (always: they are this process's own acts)
        and job changes (of the clusters this recorder holds)."""
        kind = _KINDS.get(event.kind)
        if kind is None or kind in ("cluster_recovered", "node_removed"):
            return  # those arrive with the readings
        if kind == "job_status":
            with self._lock:
                tracked = self._tracked.get(event.cluster)
                if tracked is None or not tracked.holding:
                    return
                tracked.snapshot_at = 0.0  # the next reading's snapshot has the job as it is now
        where = "the Jupyter server" if self.server else "a kernel"
        message = event.detail
        if kind in ("cluster_attached", "cluster_detached"):
            message = f"in {where}" + (f": {event.detail}" if event.detail else "")
        happened = Happened(event.time.timestamp(), event.cluster, kind, event.node_id, event.job_id, message)

        def write(db: sqlite3.Connection) -> bool:
            self.history.add_events(db, [happened])
            return True

        self._write(write)
        if kind == "cluster_detached":
            with self._lock:
                self._tracked.pop(event.cluster, None)

    # --- the parts -------------------------------------------------------------------

    def _write(self, work: Callable[[sqlite3.Connection], bool]) -> bool | None:
        try:
            with self.history.store.connection() as db:
                return work(db)
        except (StoreError, OSError, sqlite3.Error) as exc:
            if not self._warned:
                self._warned = True
                log.warning("castray_nb: history is not recorded: %s", exc)
            return None

    def _hold(self, name: str, holding: bool | None) -> None:
        with self._lock:
            tracked = self._tracked.get(name)
            if tracked is not None and holding is not None:
                tracked.holding = holding

    def _take_lease(self, db: sqlite3.Connection, key: str, now: float) -> bool:
        row = db.execute("SELECT holder, server, expires FROM leases WHERE session_name = ?", (key,)).fetchone()
        if row is not None:
            holder, server, expires = row
            ours = holder == self.holder
            free = expires < now or (self.server and not server) or not _alive(holder)
            if not ours and not free:
                return False
        db.execute(
            "INSERT OR REPLACE INTO leases (session_name, holder, server, expires) VALUES (?, ?, ?, ?)",
            (key, self.holder, int(self.server), now + LEASE_S),
        )
        return True

    @staticmethod
    def _last_seen(db: sqlite3.Connection, key: str) -> float | None:
        row = db.execute("SELECT last_seen FROM clusters WHERE session_name = ?", (key,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _end(db: sqlite3.Connection, name: str, key: str, now: float, why: str) -> list[Happened]:
        changed = db.execute(
            "UPDATE clusters SET ended_at = ?, ended_reason = ? WHERE session_name = ? AND ended_at IS NULL",
            (now, why, key),
        ).rowcount
        db.execute("DELETE FROM leases WHERE session_name = ?", (key,))
        return [Happened(now, name, "cluster_ended", None, None, f"{key}: {why}")] if changed else []

    @staticmethod
    def _node_events(name: str, rows: Sequence[NodeRecord], events: Sequence[Event], now: float) -> list[Happened]:
        by_id = {r.node_id: r for r in rows}
        happened = []
        for event in events:
            if event.cluster != name:
                continue
            row = by_id.get(event.node_id or "")
            if event.kind == "node_added":
                if row is not None and row.state == DEAD:
                    happened.append(_death(name, row, now))
                else:
                    happened.append(Happened(now, name, "node_joined", event.node_id, None, _where(row)))
            elif event.kind == "node_state_changed" and row is not None and row.state == DEAD:
                happened.append(_death(name, row, now))
            elif event.kind in ("node_state_changed", "node_removed", "cluster_recovered"):
                kind = "node_state" if event.kind == "node_state_changed" else event.kind
                happened.append(Happened(now, name, kind, event.node_id, None, event.detail))
        return happened

    def _compact_when_due(self, now: float) -> None:
        with self._lock:
            if now - self._compacted < COMPACT_EVERY_S:
                return
            self._compacted = now
        try:
            started = time.monotonic()
            removed = self.history.compact(now)
            log.debug("castray_nb: history compacted (%d rows) in %.3f s", removed, time.monotonic() - started)
        except (StoreError, OSError, sqlite3.Error) as exc:
            log.warning("castray_nb: history could not be compacted: %s", exc)


def _session_key(name: str, info: ClusterInfo, session_name: str | None) -> str:
    """What the store keys a cluster session by: its Ray session name, else its address,
    else the attachment's name."""
    return session_name or info.gcs_address or info.dashboard_url or name


def _where(row: NodeRecord | None) -> str:
    if row is None:
        return ""
    return f"{row.node_ip}" + (" (head)" if row.is_head else "")


def _death(name: str, row: NodeRecord, now: float) -> Happened:
    """A node's death, at Ray's end time where it gives one, with Ray's reason."""
    when = row.end_time.timestamp() if row.end_time is not None else now
    reason = row.state_message or "no reason given"
    return Happened(min(when, now), name, "node_died", row.node_id, None, f"{_where(row)}: {reason}")


def _missed(name: str, rows: Sequence[NodeRecord], last_seen: float | None) -> list[Happened]:
    """What happened to a cluster's nodes since the store last saw it (nothing on the very
    first sight: what came before it is not history castray_nb recorded)."""
    if last_seen is None:
        return []
    happened = []
    for row in rows:
        started = row.start_time.timestamp() if row.start_time is not None else None
        if started is not None and started > last_seen:
            happened.append(Happened(started, name, "node_joined", row.node_id, None, _where(row)))
        if row.state == DEAD and row.end_time is not None and row.end_time.timestamp() > last_seen:
            happened.append(_death(name, row, row.end_time.timestamp()))
    return sorted(happened, key=lambda h: h.time)


def _kept_jobs(db: sqlite3.Connection, key: str) -> list[dict[str, object]]:
    """The jobs of the snapshot kept so far (a process that has not read the jobs yet keeps them)."""
    row = db.execute("SELECT snapshot FROM clusters WHERE session_name = ?", (key,)).fetchone()
    try:
        return list(json.loads(row[0]).get("jobs", [])) if row and row[0] else []
    except (ValueError, AttributeError):
        return []


def _snapshot(rows: Sequence[NodeRecord], jobs: Sequence[JobRecord] | list[dict[str, object]], now: float) -> str:
    from .jobs import job_to_json

    alive = [r for r in rows if r.state == ALIVE]
    return json.dumps(
        {
            "nodes": [row_to_json(r) for r in rows],
            "totals": total_values(rows),
            "alive_nodes": len(alive),
            "jobs": [j if isinstance(j, dict) else job_to_json(j) for j in jobs],
            "taken_at": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
        }
    )
