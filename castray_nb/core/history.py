"""The history store: each cluster's usage over time, in the user's own SQLite file.

The storage layer: :mod:`.recorder` decides what is written and when (a kernel's session,
the Jupyter server); ``castray_nb.history()`` and ``events()`` read it.

One wide row per **series** (a node, or a cluster's totals: ``node_id`` ``""``), **step**
(its resolution in seconds) and **bucket** (``t``, the step's start, Unix seconds). A
reading lands in the finest step's bucket as the running mean of the readings it holds
(``n``), so several readings of one bucket, from one process or several, leave one point.
:meth:`History.compact` moves old buckets to coarser steps, weighting each by the readings
it averages (``n``), and drops everything past the retention.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .nodes import ALIVE, NodeRecord
from .store import Store

if TYPE_CHECKING:
    import pandas as pd

FRAME_COLUMNS = ("time", "cluster", "node_id", "metric", "value")

# (age up to which a step is kept, its step in seconds): full resolution (10 s) for an
# hour, 5 minutes for a day, half hours to the retention. Measured (benchmarks/
# history_store.py): minutes for a day made a week of 100 nodes 41 MiB, and 24 hours of it
# 175,000 rows to read.
TIERS: tuple[tuple[float, int], ...] = ((3600.0, 10), (86400.0, 300), (math.inf, 1800))
RETENTION_S = 7 * 86400.0

NODE_METRICS = (
    "alive",
    "CPU_used",
    "GPU_used",
    "memory_used_bytes",
    "object_store_used_bytes",
    "cpu_percent",
    "host_memory_used_bytes",
    "host_memory_total_bytes",
    "gpu_percent",
    "gpu_memory_used_bytes",
)
TOTAL_METRICS = ("nodes_alive", "nodes_total", "CPU", "GPU", "memory_bytes", "object_store_bytes")
METRICS = NODE_METRICS + TOTAL_METRICS
_COLUMNS = ", ".join(METRICS)

EVENT_COLUMNS = ("time", "cluster", "kind", "node_id", "job", "message")

# Part of the user's store (:mod:`.store` runs it as a migration): the series and their
# points, the events, the clusters seen (with their last snapshot) and the leases that say
# which process records which cluster (see :mod:`.recorder`).
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    cluster TEXT NOT NULL,
    node_id TEXT NOT NULL,          -- '' for the cluster's totals
    UNIQUE (cluster, node_id)
);
CREATE TABLE IF NOT EXISTS points (
    series INTEGER NOT NULL REFERENCES series(id),
    step INTEGER NOT NULL,          -- seconds
    t INTEGER NOT NULL,             -- the bucket's start, Unix seconds
    n INTEGER NOT NULL DEFAULT 1,   -- readings averaged into it
    at REAL NOT NULL,               -- Unix time of the newest of them
    {", ".join(f"{m} REAL" for m in METRICS)},
    PRIMARY KEY (series, step, t)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_time ON points (step, t);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    t REAL NOT NULL,                -- Unix time
    cluster TEXT NOT NULL,
    kind TEXT NOT NULL,
    node_id TEXT,
    job TEXT,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (t);
CREATE TABLE IF NOT EXISTS clusters (
    session_name TEXT PRIMARY KEY,  -- Ray's session: one per start of a cluster
    cluster TEXT NOT NULL,          -- the name it was recorded under
    address TEXT,
    ray_version TEXT,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,        -- the last reading that answered
    ended_at REAL,                  -- when it was found gone, NULL while it lives
    ended_reason TEXT,
    snapshot TEXT                   -- JSON: its nodes, totals and jobs at the last reading kept
);
CREATE TABLE IF NOT EXISTS leases (
    session_name TEXT PRIMARY KEY,  -- the cluster recorded
    holder TEXT NOT NULL,           -- which process records it: "server:PID@HOST", "kernel:PID@HOST"
    server INTEGER NOT NULL,        -- 1: a Jupyter server (it takes the lease from a kernel)
    expires REAL NOT NULL           -- Unix time: past it, anyone may take it
)
"""


@dataclass(frozen=True)
class Point:
    """One value of one metric of one series at one time (a row of ``history()``)."""

    time: float
    cluster: str
    node_id: str | None  # None: the cluster's totals
    metric: str
    value: float


def node_values(row: NodeRecord) -> dict[str, float | None]:
    """What one node's series records of a reading."""
    values: dict[str, float | None] = {m: getattr(row, m) for m in NODE_METRICS if m != "alive"}
    values["alive"] = 1.0 if row.state == ALIVE else 0.0
    return values


def total_values(rows: Sequence[NodeRecord]) -> dict[str, float | None]:
    """What a cluster's totals record of a reading: sums over its alive nodes (percentages
    averaged), and how many nodes there are."""
    alive = [r for r in rows if r.state == ALIVE]
    values: dict[str, float | None] = {"nodes_alive": float(len(alive)), "nodes_total": float(len(rows))}
    for metric in ("CPU", "GPU", "memory_bytes", "object_store_bytes"):
        values[metric] = float(sum(getattr(r, metric) for r in alive))
    for metric in NODE_METRICS:
        if metric == "alive":
            continue
        known = [v for v in (getattr(r, metric) for r in alive) if v is not None]
        if not known:
            values[metric] = None
        elif metric in ("cpu_percent", "gpu_percent"):
            values[metric] = sum(known) / len(known)
        else:
            values[metric] = float(sum(known))
    return values


# A reading merged into the bucket it lands in: the running mean of the readings it holds.
_MEAN = ", ".join(
    f"{m} = CASE WHEN {m} IS NULL THEN excluded.{m} WHEN excluded.{m} IS NULL THEN {m}"
    f" ELSE ({m} * n + excluded.{m} * excluded.n) / (n + excluded.n) END"
    for m in METRICS
)
_RECORD = (
    f"INSERT INTO points (series, step, t, n, at, {_COLUMNS}) VALUES (?, ?, ?, 1, ?, {', '.join('?' for _ in METRICS)})"
    f" ON CONFLICT (series, step, t) DO UPDATE SET {_MEAN}, n = n + excluded.n, at = max(at, excluded.at)"
)


def _weighted_means(metrics: Iterable[str]) -> str:
    """Each metric's mean over the buckets grouped, weighted by the readings each holds."""
    return ", ".join(f"sum({m} * n) / nullif(sum(CASE WHEN {m} IS NULL THEN 0 ELSE n END), 0)" for m in metrics)


# Buckets of one step averaged into the next step's (weighted by the readings each holds),
# merged with what such a bucket already holds. Parameters: the coarser step three times,
# the finer step, the cutoff, the coarser step.
_AVERAGES = _weighted_means(METRICS)
_DOWNSAMPLE = (
    f"INSERT INTO points (series, step, t, n, at, {_COLUMNS})"
    f" SELECT series, ?, t / ? * ?, sum(n), max(at), {_AVERAGES} FROM points WHERE step = ? AND t < ?"
    f" GROUP BY series, t / ? ON CONFLICT (series, step, t) DO UPDATE SET {_MEAN}, n = n + excluded.n,"
    " at = max(at, excluded.at)"
)
# A read aims at about this many points per series: the step it reads at is the finest
# tier step that gives no more (24 hours: 5 minutes), so a day of 100 nodes stays quick.
POINTS_PER_SERIES = 400


def resolution(since: float, until: float) -> int:
    """The step (seconds) a read of ``since`` to ``until`` averages to."""
    span = max(0.0, until - since)
    for _, step in TIERS:
        if span / step <= POINTS_PER_SERIES:
            return step
    return TIERS[-1][1]


@dataclass(frozen=True)
class Seen:
    """A cluster session the store has seen: alive, or ended with its last snapshot."""

    session_name: str
    cluster: str
    address: str | None
    ray_version: str | None
    first_seen: float
    last_seen: float
    ended_at: float | None
    ended_reason: str | None
    snapshot: dict[str, object]

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def to_json(self) -> dict[str, object]:
        def iso(t: float | None) -> str | None:
            return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()

        return {
            "session_name": self.session_name,
            "name": self.cluster,
            "address": self.address,
            "ray_version": self.ray_version,
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "ended": self.ended,
            "ended_at": iso(self.ended_at),
            "ended_reason": self.ended_reason,
            "snapshot": self.snapshot,
        }


@dataclass(frozen=True)
class Happened:
    """One recorded event (a row of ``events()``)."""

    time: float
    cluster: str
    kind: str
    node_id: str | None
    job: str | None
    message: str

    def to_json(self) -> dict[str, object]:
        return {
            "time": dt.datetime.fromtimestamp(self.time, dt.UTC).isoformat(),
            "cluster": self.cluster,
            "kind": self.kind,
            "node_id": self.node_id,
            "job": self.job,
            "message": self.message,
        }


class History:
    """The series, events and clusters seen in the user's store (:class:`.store.Store`);
    ``store.clock`` is the time. Thread-safe: each call is one short transaction."""

    def __init__(self, store: Store | None = None, retention_s: float = RETENTION_S) -> None:
        self.store = store or Store()
        self.retention_s = retention_s
        self._series: dict[tuple[str, str], int] = {}

    # --- writing ---------------------------------------------------------------------

    def record(self, cluster: str, rows: Sequence[NodeRecord], at: float | None = None) -> int:
        """One reading of ``cluster``: a point for each node and one for its totals, merged
        into the finest step's bucket of ``at`` (default now) as the mean of the readings
        it holds. Returns the points written."""
        with self.store.connection() as db:
            return self.record_in(db, cluster, rows, at)

    def record_in(self, db: sqlite3.Connection, cluster: str, rows: Sequence[NodeRecord], at: float | None) -> int:
        """:meth:`record` inside the caller's transaction."""
        when = self.store.clock() if at is None else at
        step = TIERS[0][1]
        bucket = int(when // step * step)
        entries = [(r.node_id, node_values(r)) for r in rows]
        entries.append(("", total_values(rows)))
        db.executemany(
            _RECORD,
            [
                (self._series_id(db, cluster, node_id), step, bucket, when, *(v.get(m) for m in METRICS))
                for node_id, v in entries
            ],
        )
        return len(entries)

    def _series_id(self, db: sqlite3.Connection, cluster: str, node_id: str) -> int:
        key = (cluster, node_id)
        found = self._series.get(key)
        if found is None:
            db.execute("INSERT OR IGNORE INTO series (cluster, node_id) VALUES (?, ?)", key)
            (found,) = db.execute("SELECT id FROM series WHERE cluster = ? AND node_id = ?", key).fetchone()
            self._series[key] = found
        return found

    def add_events(self, db: sqlite3.Connection, events: Iterable[Happened]) -> None:
        db.executemany(
            "INSERT INTO events (t, cluster, kind, node_id, job, message) VALUES (?, ?, ?, ?, ?, ?)",
            [(e.time, e.cluster, e.kind, e.node_id, e.job, e.message) for e in events],
        )

    def compact(self, now: float | None = None) -> int:
        """Move buckets past each tier's age into the next tier's step (averaged, weighted
        by ``n``, merged with what that bucket already holds), and drop what is past the
        retention: points, events and ended clusters. Returns the point rows removed."""
        now = self.store.clock() if now is None else now
        removed = 0
        oldest = now - self.retention_s
        with self.store.connection() as db:
            for (age, step), (_, coarser) in zip(TIERS, TIERS[1:], strict=False):
                cutoff = int((now - age) // coarser * coarser)  # whole coarse buckets only
                db.execute(_DOWNSAMPLE, (coarser, coarser, coarser, step, cutoff, coarser))
                removed += db.execute("DELETE FROM points WHERE step = ? AND t < ?", (step, cutoff)).rowcount
            removed += db.execute("DELETE FROM points WHERE t < ?", (int(oldest),)).rowcount
            db.execute("DELETE FROM series WHERE id NOT IN (SELECT DISTINCT series FROM points)")
            db.execute("DELETE FROM events WHERE t < ?", (oldest,))
            db.execute("DELETE FROM clusters WHERE last_seen < ?", (oldest,))
            db.execute("DELETE FROM leases WHERE expires < ?", (now,))
        self._series.clear()
        return removed

    # --- reading ---------------------------------------------------------------------

    def _wide(
        self,
        cluster: str | None,
        since: float,
        until: float | None,
        metrics: Iterable[str] | None,
        node: str | None,
        step: int | None,
    ) -> tuple[list[str], list[tuple[object, ...]]]:
        """The wanted metrics and the wide rows (t, cluster, node_id, *values), oldest first,
        averaged to ``step`` seconds (default: :func:`resolution`)."""
        wanted = list(metrics) if metrics is not None else list(METRICS)
        unknown = sorted(set(wanted) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
        end = self.store.clock() if until is None else until
        step = step or resolution(since, end)
        times, time_args = ["t >= ?"], [int(since // step * step)]
        if until is not None:
            times.append("t <= ?")
            time_args.append(int(until))
        which, which_args = ["1 = 1"], []
        if cluster is not None:  # the name it was recorded under, or its Ray session name
            which.append("(cluster = ? OR cluster IN (SELECT cluster FROM clusters WHERE session_name = ?))")
            which_args += [cluster, cluster]
        if node is not None:
            which.append("node_id = ?")
            which_args.append(node)
        if step <= TIERS[0][1]:
            select = f"SELECT t, series, {', '.join(wanted)} FROM points WHERE {' AND '.join(times)}"
            args: list[object] = list(time_args)
        else:  # each series averaged to the step, weighted by the readings each bucket holds
            means = _weighted_means(wanted)
            select = (
                f"SELECT t / ? * ? AS b, series, {means} FROM points WHERE {' AND '.join(times)} GROUP BY series, b"
            )
            args = [step, step, *time_args]
        with self.store.connection() as db:
            names = {
                i: (c, n)
                for i, c, n in db.execute(
                    f"SELECT id, cluster, node_id FROM series WHERE {' AND '.join(which)}", which_args
                )
            }
            # No join and no ORDER BY: a join with a sort cost 40 % more (measured); the rows
            # are sorted by time below.
            rows = db.execute(select, args).fetchall()
        # After a compaction the steps never overlap (its cutoff is a whole coarse bucket); a
        # late write into an old bucket is merged by the next one.
        kept = [(t, *names[series], *values) for t, series, *values in rows if series in names]
        kept.sort(key=lambda row: row[0])
        return wanted, kept

    def points(
        self,
        *,
        cluster: str | None = None,
        since: float,
        until: float | None = None,
        metrics: Iterable[str] | None = None,
        node: str | None = None,
        step: int | None = None,
    ) -> list[Point]:
        """Every point from ``since`` to ``until`` (Unix seconds), oldest first, averaged to
        ``step`` seconds (default: :func:`resolution`). ``node=""`` gives the clusters' totals."""
        wanted, rows = self._wide(cluster, since, until, metrics, node, step)
        return [
            Point(float(row[0]), row[1], row[2] or None, metric, float(value))  # type: ignore[arg-type]
            for row in rows
            for metric, value in zip(wanted, row[3:], strict=True)
            if value is not None
        ]

    def frame(
        self,
        *,
        cluster: str | None = None,
        since: float,
        until: float | None = None,
        metrics: Iterable[str] | None = None,
        node: str | None = None,
        step: int | None = None,
    ) -> pd.DataFrame:
        """:meth:`points` as a long DataFrame (:data:`FRAME_COLUMNS`; ``time`` in UTC),
        built column by column: a day of 100 nodes is hundreds of thousands of rows."""
        import numpy as np
        import pandas as pd

        wanted, rows = self._wide(cluster, since, until, metrics, node, step)
        if not rows:
            return empty_frame(FRAME_COLUMNS)
        keys = np.array([row[:3] for row in rows], dtype=object)
        values = np.array([row[3:] for row in rows], dtype=float)  # None becomes NaN
        present = ~np.isnan(values)
        which_row, which_metric = np.nonzero(present)
        node_ids = keys[which_row, 2]
        node_ids[node_ids == ""] = None
        return pd.DataFrame(
            {
                "time": pd.to_datetime(keys[which_row, 0].astype(np.int64), unit="s", utc=True),
                "cluster": keys[which_row, 1],
                "node_id": node_ids,
                "metric": np.array(wanted, dtype=object)[which_metric],
                "value": values[present],
            }
        )

    def last_reading(self, cluster: str) -> float | None:
        """Unix time of the newest reading recorded of ``cluster`` (its totals), or None."""
        with self.store.connection() as db:
            row = db.execute(
                "SELECT max(p.at) FROM points p JOIN series s ON s.id = p.series"
                " WHERE s.cluster = ? AND s.node_id = ''",
                (cluster,),
            ).fetchone()
        return row[0] if row else None

    def happened(self, *, cluster: str | None = None, since: float, until: float | None = None) -> list[Happened]:
        """The events from ``since`` to ``until`` (Unix seconds), oldest first."""
        where, args = ["t >= ?"], [since]
        if until is not None:
            where.append("t <= ?")
            args.append(until)
        if cluster is not None:
            where.append("(cluster = ? OR cluster IN (SELECT cluster FROM clusters WHERE session_name = ?))")
            args += [cluster, cluster]  # type: ignore[list-item]
        with self.store.connection() as db:
            rows = db.execute(
                f"SELECT t, cluster, kind, node_id, job, message FROM events WHERE {' AND '.join(where)}"
                " ORDER BY t, id",
                args,
            ).fetchall()
        return [Happened(*row) for row in rows]

    def events_frame(self, *, cluster: str | None = None, since: float, until: float | None = None) -> pd.DataFrame:
        """:meth:`happened` as a DataFrame (:data:`EVENT_COLUMNS`; ``time`` in UTC)."""
        import pandas as pd

        found = self.happened(cluster=cluster, since=since, until=until)
        if not found:
            return empty_frame(EVENT_COLUMNS)
        frame = pd.DataFrame(
            [(e.time, e.cluster, e.kind, e.node_id, e.job, e.message) for e in found],
            columns=EVENT_COLUMNS,
            dtype=object,
        )
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame

    def seen(self, *, ended: bool | None = None) -> list[Seen]:
        """The cluster sessions seen within the retention, the most recently seen first;
        ``ended=True`` only those that ended, ``False`` only those that did not."""
        where = {None: "1 = 1", True: "ended_at IS NOT NULL", False: "ended_at IS NULL"}[ended]
        with self.store.connection() as db:
            rows = db.execute(
                "SELECT session_name, cluster, address, ray_version, first_seen, last_seen, ended_at, ended_reason,"
                f" snapshot FROM clusters WHERE {where} ORDER BY last_seen DESC"
            ).fetchall()
        return [
            Seen(session, name, address, version, first, last, ended, why, json.loads(snap) if snap else {})
            for session, name, address, version, first, last, ended, why, snap in rows
        ]


def empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame({c: [] for c in columns}).astype(object)
    return frame.astype({"time": "datetime64[ns, UTC]", **({"value": float} if "value" in columns else {})})
