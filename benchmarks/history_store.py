"""The history store's size and query time for one week of a 100-node cluster.

    python benchmarks/history_store.py [--nodes 100]

It builds the store a week of recording leaves behind, without recording for a week: a
reading every 10 s for the last hour, every minute for the day before it, and every 15
minutes for the six days before that. Then :meth:`History.compact` runs at "now", with an
injected clock, and puts each bucket in its tier, as a week of compactions would. It prints:

- the file's size;
- its rows per tier;
- the time to read 24 hours of points as a long DataFrame (what ``history(since="24h")`` will
  return), the median of 5.

No pass/fail: this machine is shared. Not yet beside Prometheus's TSDB: that comparison
comes with the Prometheus backend (issue 22).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from castray_nb.core.history import History
from castray_nb.core.nodes import ALIVE, NodeRecord
from castray_nb.core.store import Store

DAY, HOUR = 86400.0, 3600.0


def nodes(count: int, rng: random.Random) -> list[NodeRecord]:
    seen = dt.datetime.now(dt.UTC)
    return [
        NodeRecord(
            cluster="big",
            source="external",
            node_id=f"{i:056x}",
            node_ip=f"10.0.{i // 250}.{i % 250}",
            is_head=i == 0,
            state=ALIVE,
            CPU=32.0,
            GPU=4.0,
            memory_bytes=2.0e11,
            object_store_bytes=6.0e10,
            last_seen=seen,
            CPU_used=float(rng.randint(0, 32)),
            GPU_used=float(rng.randint(0, 4)),
            memory_used_bytes=float(rng.randrange(0, 2 * 10**11, 2**20)),
            object_store_used_bytes=float(rng.randrange(0, 6 * 10**10, 2**20)),
            cpu_percent=round(rng.uniform(0, 100), 1),
            host_memory_used_bytes=float(rng.randrange(10**9, 2 * 10**11, 4096)),
            host_memory_total_bytes=2.5e11,
            gpu_percent=round(rng.uniform(0, 100), 1),
            gpu_memory_used_bytes=float(rng.randrange(0, 3 * 10**11, 2**20)),
        )
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(7)
    folder = Path(tempfile.mkdtemp(prefix="castray-history-bench-"))
    now = 1_795_996_800.0 + 7 * DAY
    clock = [now - 7 * DAY]
    history = History(Store(folder / "history.sqlite3", clock=lambda: clock[0]))
    readings = 0
    started = time.perf_counter()
    for begin, end, every in ((now - 7 * DAY, now - DAY, 1800), (now - DAY, now - HOUR, 300), (now - HOUR, now, 10)):
        at = begin
        while at < end:
            history.record("big", nodes(args.nodes, rng), at=at)
            readings += 1
            at += every
    took = time.perf_counter() - started
    clock[0] = now
    history.compact()
    with sqlite3.connect(history.store.path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        tiers = dict(db.execute("SELECT step, count(*) FROM points GROUP BY step").fetchall())
    size = history.store.path.stat().st_size

    import pandas as pd

    def day_frame() -> pd.DataFrame:
        return history.frame(since=now - DAY)

    times = []
    for _ in range(5):
        begin = time.perf_counter()
        frame = day_frame()
        times.append(time.perf_counter() - begin)
    print(f"{args.nodes} nodes, one week at the default steps ({readings} readings recorded in {took:.1f} s)")
    print(f"  file: {size / 2**20:.1f} MiB (goal <= 50 MB)")
    print(f"  rows per step: {', '.join(f'{step} s: {rows}' for step, rows in sorted(tiers.items()))}")
    print(f"  24 h of points as a long DataFrame: {len(frame)} rows in {statistics.median(times) * 1000:.0f} ms"
          " (median of 5; goal <= 200 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
