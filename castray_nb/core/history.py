"""The history store: each cluster's usage over time, in the user's own SQLite file.

Not yet wired to a recorder (issue 22): this is the storage layer the session and the
server will write each refresh into, and ``history()`` will read.

One wide row per **series** (a node, or a cluster's totals: ``node_id`` ``""``), **step**
(its resolution in seconds) and **bucket** (``t``, the step's start, Unix seconds). A
reading lands in the finest step's bucket; a second reading in the same bucket replaces
it, so several processes that record one cluster leave one point per bucket, never two.
:meth:`History.compact` moves old buckets to coarser steps, weighting each by the readings
it averages (``n``), and drops everything past the retention.
"""

from __future__ import annotations

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
    {", ".join(f"{m} REAL" for m in METRICS)},
    PRIMARY KEY (series, step, t)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_time ON points (step, t);
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


# Buckets of one step averaged into the next step's (weighted by the readings each holds),
# merged with what such a bucket already holds. Parameters: the coarser step three times,
# the finer step, the cutoff, the coarser step.
_AVERAGES = ", ".join(f"sum({m} * n) / nullif(sum(CASE WHEN {m} IS NULL THEN 0 ELSE n END), 0)" for m in METRICS)
_MERGE = ", ".join(
    f"{m} = CASE WHEN {m} IS NULL THEN excluded.{m} WHEN excluded.{m} IS NULL THEN {m}"
    f" ELSE ({m} * n + excluded.{m} * excluded.n) / (n + excluded.n) END"
    for m in METRICS
)
_DOWNSAMPLE = (
    f"INSERT INTO points (series, step, t, n, {_COLUMNS})"
    f" SELECT series, ?, t / ? * ?, sum(n), {_AVERAGES} FROM points WHERE step = ? AND t < ?"
    f" GROUP BY series, t / ? ON CONFLICT (series, step, t) DO UPDATE SET {_MERGE}, n = n + excluded.n"
)


class History:
    """The series in the user's store (:class:`.store.Store`); ``store.clock`` is the time."""

    def __init__(self, store: Store | None = None, retention_s: float = RETENTION_S) -> None:
        self.store = store or Store()
        self.retention_s = retention_s
        self._schema = False

    def _ready(self, db: sqlite3.Connection) -> None:
        """The tables, made once per object, inside the caller's transaction."""
        if not self._schema:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            self._schema = True

    def record(self, cluster: str, rows: Sequence[NodeRecord], at: float | None = None) -> int:
        """One reading of ``cluster``: a point for each node and one for its totals, in the
        finest step's bucket of ``at`` (default now). Returns the points written."""
        when = self.store.clock() if at is None else at
        step = TIERS[0][1]
        bucket = int(when // step * step)
        entries = [(r.node_id, node_values(r)) for r in rows]
        entries.append(("", total_values(rows)))
        insert = (
            f"INSERT OR REPLACE INTO points (series, step, t, n, {_COLUMNS})"
            f" VALUES (?, ?, ?, 1, {', '.join('?' for _ in METRICS)})"
        )
        with self.store.connection() as db:
            self._ready(db)
            for node_id, values in entries:
                db.execute("INSERT OR IGNORE INTO series (cluster, node_id) VALUES (?, ?)", (cluster, node_id))
                (series,) = db.execute(
                    "SELECT id FROM series WHERE cluster = ? AND node_id = ?", (cluster, node_id)
                ).fetchone()
                db.execute(insert, (series, step, bucket, *(values.get(m) for m in METRICS)))
        return len(entries)

    def compact(self, now: float | None = None) -> int:
        """Move buckets past each tier's age into the next tier's step (averaged, weighted
        by ``n``, merged with what that bucket already holds), and drop what is past the
        retention. Returns the rows removed from the finer steps and the retention."""
        now = self.store.clock() if now is None else now
        removed = 0
        with self.store.connection() as db:
            self._ready(db)
            for (age, step), (_, coarser) in zip(TIERS, TIERS[1:], strict=False):
                cutoff = int((now - age) // coarser * coarser)  # whole coarse buckets only
                db.execute(_DOWNSAMPLE, (coarser, coarser, coarser, step, cutoff, coarser))
                removed += db.execute("DELETE FROM points WHERE step = ? AND t < ?", (step, cutoff)).rowcount
            removed += db.execute("DELETE FROM points WHERE t < ?", (int(now - self.retention_s),)).rowcount
            db.execute("DELETE FROM series WHERE id NOT IN (SELECT DISTINCT series FROM points)")
        return removed

    def _wide(
        self,
        cluster: str | None,
        since: float,
        until: float | None,
        metrics: Iterable[str] | None,
        node: str | None,
    ) -> tuple[list[str], list[tuple[object, ...]]]:
        """The wanted metrics and the wide rows (t, cluster, node_id, *values), oldest first."""
        wanted = list(metrics) if metrics is not None else list(METRICS)
        unknown = sorted(set(wanted) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
        times, time_args = ["t >= ?"], [int(since)]
        if until is not None:
            times.append("t <= ?")
            time_args.append(int(until))
        which, which_args = ["1 = 1"], []
        for column, wanted_value in (("cluster", cluster), ("node_id", node)):
            if wanted_value is not None:
                which.append(f"{column} = ?")
                which_args.append(wanted_value)
        with self.store.connection() as db:
            self._ready(db)
            names = {
                i: (c, n)
                for i, c, n in db.execute(
                    f"SELECT id, cluster, node_id FROM series WHERE {' AND '.join(which)}", which_args
                )
            }
            # No join and no ORDER BY: 24 hours of 100 nodes is 64,000 rows, and a join with
            # a sort cost 40 % more (measured); the rows are sorted by time below.
            rows = db.execute(
                f"SELECT t, series, {', '.join(wanted)} FROM points WHERE {' AND '.join(times)}", time_args
            ).fetchall()
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
    ) -> list[Point]:
        """Every point from ``since`` to ``until`` (Unix seconds), oldest first.
        ``node=""`` gives the clusters' totals."""
        wanted, rows = self._wide(cluster, since, until, metrics, node)
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
    ) -> pd.DataFrame:
        """:meth:`points` as a long DataFrame (:data:`FRAME_COLUMNS`; ``time`` in UTC),
        built column by column: 24 hours of 100 nodes is over a million rows."""
        import numpy as np
        import pandas as pd

        wanted, rows = self._wide(cluster, since, until, metrics, node)
        if not rows:
            return pd.DataFrame({c: [] for c in FRAME_COLUMNS}).astype({"time": "datetime64[ns, UTC]", "value": float})
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
