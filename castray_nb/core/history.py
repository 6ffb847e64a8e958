"""The history store: each cluster's usage over time, in the user's own SQLite file.

The storage layer: :mod:`.recorder` decides what is written and when (a kernel's session,
the Jupyter server); ``castray_nb.history()`` and ``events()`` read it.

One row per **step** (its resolution in seconds), **bucket** (``t``, the step's start,
Unix seconds) and **series** (a node, or a cluster's totals: ``node_id`` ``""``), keyed in
that order, its values packed into one BLOB (see :data:`POINTS_PACKED`). A reading lands in
the finest step's bucket as the running mean of the readings it holds (``n``), so several
readings of one bucket, from one process or several, leave one point.
:meth:`History.compact` moves old buckets to coarser steps, weighting each by the readings
it averages (``n``), and drops everything past the retention.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
import sqlite3
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

# The store's third version: the points keyed by time first. Keyed by series first, each
# reading's 101 rows (100 nodes and the totals) landed in 101 pages, every one rewritten
# into the WAL at each commit; keyed by time they share a few (measured: 2.9 ms of CPU a
# 100-node reading against 0.6 ms, benchmarks/history_store.py). Reads of a span scan it in
# time order; reads of totals alone (the sidebar's sparklines, a cluster's last reading)
# have their own small index (``total`` 1: a cluster's totals).
POINTS_BY_TIME = f"""
CREATE TABLE points_by_time_first (
    step INTEGER NOT NULL,          -- seconds
    t INTEGER NOT NULL,             -- the bucket's start, Unix seconds
    series INTEGER NOT NULL REFERENCES series(id),
    total INTEGER NOT NULL DEFAULT 0, -- 1: the series is a cluster's totals
    n INTEGER NOT NULL DEFAULT 1,   -- readings averaged into it
    at REAL NOT NULL,               -- Unix time of the newest of them
    {", ".join(f"{m} REAL" for m in METRICS)},
    PRIMARY KEY (step, t, series)
) WITHOUT ROWID;
INSERT INTO points_by_time_first (step, t, series, total, n, at, {_COLUMNS})
    SELECT step, t, series, series IN (SELECT id FROM series WHERE node_id = ''), n, at, {_COLUMNS} FROM points;
DROP INDEX IF EXISTS points_by_time;
DROP TABLE points;
ALTER TABLE points_by_time_first RENAME TO points;
CREATE INDEX totals_by_series ON points (series, step, t) WHERE total = 1
"""

# The store's fourth version: a point's values packed into one BLOB (``v``: float64,
# little-endian, in :data:`METRICS` order, NaN where nothing was read; a metric added
# later goes at the end, and shorter blobs read it as NaN). A column each, a day of 100
# nodes came out of SQLite as half a million Python objects before numpy saw one
# (measured: 565 ms for history(since="24h"); packed, numpy takes the bytes as they are).
# The running mean, the downsampling and this migration use the functions
# :func:`register_functions` gives each connection.
POINTS_PACKED = f"""
CREATE TABLE points_packed (
    step INTEGER NOT NULL,          -- seconds
    t INTEGER NOT NULL,             -- the bucket's start, Unix seconds
    series INTEGER NOT NULL REFERENCES series(id),
    total INTEGER NOT NULL DEFAULT 0, -- 1: the series is a cluster's totals
    n INTEGER NOT NULL DEFAULT 1,   -- readings averaged into it
    at REAL NOT NULL,               -- Unix time of the newest of them
    v BLOB NOT NULL,                -- the values, packed (see above)
    PRIMARY KEY (step, t, series)
) WITHOUT ROWID;
INSERT INTO points_packed (step, t, series, total, n, at, v)
    SELECT step, t, series, total, n, at, castray_pack({_COLUMNS}) FROM points;
DROP INDEX IF EXISTS totals_by_series;
DROP TABLE points;
ALTER TABLE points_packed RENAME TO points;
CREATE INDEX totals_by_series ON points (series, step, t) WHERE total = 1
"""
_FORMAT = f"<{len(METRICS)}d"


def _pack(*values: float | None) -> bytes:
    return struct.pack(_FORMAT, *(math.nan if v is None else v for v in values))


def _unpack(blob: bytes) -> tuple[float, ...]:
    values = struct.unpack(f"<{len(blob) // 8}d", blob)
    return values + (math.nan,) * (len(METRICS) - len(values))


def _merge(old: bytes, n: int, new: bytes, m: int) -> bytes:
    """Two buckets' values as one: each metric weighted by the readings each holds (``n``
    and ``m``), or the one that has it."""
    return struct.pack(
        _FORMAT,
        *(b if a != a else a if b != b else (a * n + b * m) / (n + m) for a, b in zip(_unpack(old), _unpack(new))),  # noqa: B905 (both METRICS long)
    )


class _Weighted:
    """``castray_weighted(v, n)``: the buckets grouped, each metric averaged over those that
    hold it, weighted by their readings (``n``)."""

    def __init__(self) -> None:
        self.sums = [0.0] * len(METRICS)
        self.weights = [0] * len(METRICS)

    def step(self, blob: bytes, n: int) -> None:
        for i, value in enumerate(_unpack(blob)):
            if value == value:  # not NaN
                self.sums[i] += value * n
                self.weights[i] += n

    def finalize(self) -> bytes:
        return struct.pack(_FORMAT, *(s / w if w else math.nan for s, w in zip(self.sums, self.weights)))  # noqa: B905


def _integers(text: str) -> Any:
    """A ``group_concat`` of integers ("1,2,3") as a numpy array, parsed by numpy."""
    import numpy as np

    return np.fromstring(text, dtype=np.int64, sep=",")


def register_functions(db: sqlite3.Connection) -> None:
    """The SQL functions the points' packed values need, on one connection (:mod:`.store`
    calls it on each it opens, before migrating)."""
    db.create_function("castray_pack", -1, _pack, deterministic=True)
    db.create_function("castray_mean", 4, _merge, deterministic=True)
    db.create_aggregate("castray_weighted", 2, _Weighted)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Point:
    """One value of one metric of one series at one time (a row of ``history()``)."""

    time: float
    cluster: str
    node_id: str | None  # None: the cluster's totals
    metric: str
    value: float


_PHYSICAL = NODE_METRICS[1:]  # what a node record holds under the metric's own name
_read_physical = operator.attrgetter(*_PHYSICAL)
_PERCENTAGES = frozenset({"cpu_percent", "gpu_percent"})
_NO_TOTALS = (None,) * len(TOTAL_METRICS)


def node_values(row: NodeRecord) -> tuple[float | None, ...]:
    """What one node's series records of a reading, in :data:`METRICS` order (its
    totals' metrics None)."""
    return (1.0 if row.state == ALIVE else 0.0, *_read_physical(row), *_NO_TOTALS)


def total_values(rows: Sequence[NodeRecord]) -> dict[str, float | None]:
    """What a cluster's totals record of a reading: sums over its alive nodes (percentages
    averaged), and how many nodes there are. Column by column (a server records every
    reading of every attached cluster)."""
    alive = [r for r in rows if r.state == ALIVE]
    values: dict[str, float | None] = {"nodes_alive": float(len(alive)), "nodes_total": float(len(rows))}
    for metric in ("CPU", "GPU", "memory_bytes", "object_store_bytes"):
        values[metric] = float(sum(getattr(r, metric) for r in alive))
    columns = zip(*map(_read_physical, alive), strict=True) if alive else ((),) * len(_PHYSICAL)
    for metric, column in zip(_PHYSICAL, columns, strict=True):
        known = [v for v in column if v is not None]
        values[metric] = None if not known else sum(known) / len(known) if metric in _PERCENTAGES else float(sum(known))
    return values


# A reading merged into the bucket it lands in: the running mean of the readings it holds.
_MERGE = "v = castray_mean(v, n, excluded.v, excluded.n), n = n + excluded.n, at = max(at, excluded.at)"
_RECORD = (
    "INSERT INTO points (step, t, series, total, n, at, v) VALUES (?, ?, ?, ?, 1, ?, ?)"
    f" ON CONFLICT (step, t, series) DO UPDATE SET {_MERGE}"
)
# Buckets of one step averaged into the next step's (weighted by the readings each holds),
# merged with what such a bucket already holds. Parameters: the coarser step three times,
# the finer step, the cutoff, the coarser step.
_DOWNSAMPLE = (
    "INSERT INTO points (step, t, series, total, n, at, v)"
    " SELECT ?, t / ? * ?, series, max(total), sum(n), max(at), castray_weighted(v, n) FROM points"
    f" WHERE step = ? AND t < ? GROUP BY series, t / ? ON CONFLICT (step, t, series) DO UPDATE SET {_MERGE}"
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


# The sidebar's sparklines: what each draws, and the metrics of the totals they read.
SPARKLINES = ("cpu", "gpu", "memory")
SPARK_STEP_S = 60
_SPARK_METRICS = (
    "cpu_percent",
    "gpu_percent",
    "host_memory_used_bytes",
    "host_memory_total_bytes",
    "memory_used_bytes",
    "memory_bytes",
)


def _percent(used: float | None, total: float | None) -> float | None:
    if used is None or not total:
        return None
    return 100.0 * used / total


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
        import numpy as np

        totals = total_values(rows)
        values = np.array([*map(node_values, rows), [totals.get(m) for m in METRICS]], dtype="<f8")  # None: NaN
        ids = [self._series_id(db, cluster, r.node_id) for r in rows]
        ids.append(self._series_id(db, cluster, ""))
        last = len(ids) - 1
        db.executemany(
            _RECORD,
            [(step, bucket, i, int(k == last), when, row.tobytes()) for k, (i, row) in enumerate(zip(ids, values))],  # noqa: B905
        )
        return len(ids)

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

    def _matrix(
        self,
        cluster: str | None,
        since: float,
        until: float | None,
        metrics: Iterable[str] | None,
        node: str | None,
        step: int | None,
    ) -> tuple[list[str], Any, Any, Any, dict[int, tuple[str, str]]]:
        """The wanted metrics, and the points from ``since`` to ``until`` averaged to
        ``step`` seconds (default: :func:`resolution`), oldest first, as numpy arrays:
        their bucket starts, their series, their values (a row each, a column per wanted
        metric, NaN where not read); and each series' (cluster, node_id)."""
        import numpy as np

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
        # In time order, the series wanted picked out as they pass; a cluster's totals
        # alone through their own index (``total = 1`` lets SQLite use it).
        picked = [f"series IN (SELECT id FROM series WHERE {' AND '.join(which)})"] if len(which) > 1 else []
        table = "points"
        if node == "":  # named: SQLite's own choice, the key's time range, read every node too
            picked.append("total = 1")
            table = "points INDEXED BY totals_by_series"
        where = " AND ".join([*picked, *times])
        args = [*which_args, *time_args] if len(which) > 1 else time_args
        # Each tier's step named, so that its time range is one stretch of the key.
        steps = ", ".join(str(s) for _, s in TIERS)
        with self.store.connection() as db:
            names = {
                i: (c, n)
                for i, c, n in db.execute(
                    f"SELECT id, cluster, node_id FROM series WHERE {' AND '.join(which)}", which_args
                )
            }
            # Each column as one value, not a row each: a day of 100 nodes is 65,000 rows,
            # and SQLite hands over one string (the packed values: one BLOB) per column for
            # numpy to parse, rather than Python building a tuple a row (measured: half the time).
            count, t, series, n, packed = db.execute(
                "SELECT count(*), group_concat(t), group_concat(series), group_concat(n),"
                f" CAST(group_concat(v, '') AS BLOB) FROM {table} WHERE step IN ({steps}) AND {where}",
                args,
            ).fetchone()
            if count and len(packed) != 8 * len(METRICS) * count:  # blobs from before a metric was added
                blobs = db.execute(f"SELECT v FROM {table} WHERE step IN ({steps}) AND {where}", args).fetchall()
                packed = b"".join(_pack(*_unpack(b)) for (b,) in blobs)
        columns = [METRICS.index(m) for m in wanted]
        if not count:
            return wanted, np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, len(wanted))), names
        values = np.frombuffer(packed, dtype="<f8").reshape(count, len(METRICS))[:, columns]
        buckets = _integers(t) // step * step
        ids = _integers(series)
        readings = _integers(n).astype(float)[:, None]
        # Every bucket of a series within one of the step, averaged weighted by the readings
        # each holds: a day's last hour (10 s buckets) to 5 minutes; elsewhere one bucket
        # each (after a compaction the tiers never overlap; a late write into an old
        # bucket meets its coarser one here).
        order = np.lexsort((buckets, ids))
        buckets, ids, values, readings = buckets[order], ids[order], values[order], readings[order]
        starts = np.flatnonzero(np.r_[True, (buckets[1:] != buckets[:-1]) | (ids[1:] != ids[:-1])])
        known = ~np.isnan(values)
        sums = np.add.reduceat(np.where(known, values, 0.0) * readings, starts)
        weights = np.add.reduceat(known * readings, starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(weights > 0, sums / np.where(weights > 0, weights, 1.0), np.nan)
        buckets, ids = buckets[starts], ids[starts]
        oldest_first = np.argsort(buckets, kind="stable")
        return wanted, buckets[oldest_first], ids[oldest_first], means[oldest_first], names

    def _wide(
        self,
        cluster: str | None,
        since: float,
        until: float | None,
        metrics: Iterable[str] | None,
        node: str | None,
        step: int | None,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """:meth:`_matrix` as rows (t, cluster, node_id, *values), None where not read."""
        wanted, buckets, ids, values, names = self._matrix(cluster, since, until, metrics, node, step)
        rows = []
        for t, series, row in zip(buckets.tolist(), ids.tolist(), values.tolist()):  # noqa: B905 (one length)
            c, n = names[series]
            rows.append((t, c, n, *(None if v != v else v for v in row)))
        return wanted, rows

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
            Point(float(row[0]), row[1], row[2] or None, metric, float(value))
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

        wanted, buckets, ids, values, names = self._matrix(cluster, since, until, metrics, node, step)
        if not len(buckets):
            return empty_frame(FRAME_COLUMNS)
        size = int(ids.max()) + 1
        clusters, nodes = np.empty(size, dtype=object), np.empty(size, dtype=object)
        for i, (c, n) in names.items():
            if i < size:
                clusters[i], nodes[i] = c, n or None  # "": the cluster's totals
        present = ~np.isnan(values)
        which_row, which_metric = np.nonzero(present)
        series = ids[which_row]
        return pd.DataFrame(
            {
                "time": pd.to_datetime(buckets[which_row], unit="s", utc=True),
                "cluster": clusters[series],
                "node_id": nodes[series],
                "metric": np.array(wanted, dtype=object)[which_metric],
                "value": values[present],
            }
        )

    def sparklines(self, *, since: float, until: float, step: int = SPARK_STEP_S) -> dict[str, dict[str, object]]:
        """Each recorded cluster's totals from ``since`` to ``until`` as three short series
        of percentages, ``step`` seconds apart, aligned to the same buckets (None where
        nothing was read): ``cpu`` (host CPU), ``gpu`` (GPU utilisation) and ``memory``
        (host memory used of total, or Ray's logical memory where the cluster gave no
        physical figures). What the sidebar's cards draw."""
        _, rows = self._wide(None, since, until, _SPARK_METRICS, "", step)
        first = int(since // step * step)
        slots = (int(until // step * step) - first) // step + 1
        lines: dict[str, dict[str, list[float | None]]] = {}
        for t, cluster, _, cpu, gpu, used, total, logical_used, logical_total in rows:
            i = (int(t) - first) // step
            if not 0 <= i < slots:
                continue
            line = lines.setdefault(cluster, {name: [None] * slots for name in SPARKLINES})
            memory = _percent(used, total)
            line["cpu"][i] = cpu
            line["gpu"][i] = gpu
            line["memory"][i] = memory if memory is not None else _percent(logical_used, logical_total)
        return {cluster: {"start": first, "step": step, **line} for cluster, line in lines.items()}

    def last_reading(self, cluster: str) -> float | None:
        """Unix time of the newest reading recorded of ``cluster`` (its totals), or None."""
        with self.store.connection() as db:
            row = db.execute(
                "SELECT max(at) FROM points WHERE total = 1"
                " AND series IN (SELECT id FROM series WHERE cluster = ? AND node_id = '')",
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
