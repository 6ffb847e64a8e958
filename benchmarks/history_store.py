"""The history store's size and query time for one week of a 100-node cluster.

    python benchmarks/history_store.py [--nodes 100] [--prometheus] [--server SECONDS]

It builds the store a week of recording leaves behind, without recording for a week: a
reading every 10 s for the last hour, every minute for the day before it, and every 15
minutes for the six days before that. Then :meth:`History.compact` runs at "now", with an
injected clock, and puts each bucket in its tier, as a week of compactions would. It prints:

- the file's size;
- its rows per tier;
- the time to read 24 hours of points as a long DataFrame (what ``history(since="24h")``
  returns), the median of 5;
- the sidebar's sparklines of 10 such clusters (9 more recorded for the last hour), beside
  reading the same totals as ``history()`` frames, one per cluster;
- compactions of that store, as the recorder runs them every 10 minutes;
- what recording costs: the CPU of :meth:`Recorder.reading` for a 100-node reading over 20
  recorded minutes (an injected clock), as a share of one core for 5 clusters read every 2 s;
- with ``--server SECONDS``: a Jupyter server with 5 replayed 100-node clusters attached
  (``castray_nb.testing.replay``, physical usage included), an events socket open and the
  refresh at 2 s, its CPU over SECONDS with history on, then off, twice;
- beside Prometheus's TSDB for the same series (``--prometheus``): an hour of the same 100
  nodes scraped every 10 s, written by ``promtool tsdb create-blocks-from openmetrics``, its
  size times 168 for a week (Prometheus keeps every sample for its retention).

No pass/fail: this machine is shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from castray_nb.core.changes import node_events
from castray_nb.core.discovery import ClusterInfo
from castray_nb.core.history import History
from castray_nb.core.nodes import ALIVE, NodeRecord
from castray_nb.core.recorder import COMPACT_EVERY_S, Recorder
from castray_nb.core.store import Store

DAY, HOUR = 86400.0, 3600.0


def nodes(count: int, rng: random.Random, cluster: str = "big") -> list[NodeRecord]:
    seen = dt.datetime.now(dt.UTC)
    return [
        NodeRecord(
            cluster=cluster,
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
    parser.add_argument("--prometheus", action="store_true", help="also measure Prometheus's TSDB (promtool)")
    parser.add_argument("--server", type=float, default=0, metavar="SECONDS",
                        help="also measure a Jupyter server's CPU with history on and off, over SECONDS")  # fmt: skip
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
    sparklines(history, now, args.nodes, rng)
    compaction_cost(history, now, args.nodes, rng)
    recording_cost(folder, args.nodes, rng)
    if args.server:
        server_cost(args.nodes, args.server)
    if args.prometheus:
        prometheus_beside(folder, args.nodes, rng, size)


def median_ms(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begin)
    return statistics.median(times) * 1000


def sparklines(history: History, now: float, count: int, rng: random.Random) -> None:
    for c in range(9):
        at = now - HOUR
        while at < now:
            history.record(f"other-{c}", nodes(count, rng, f"other-{c}"), at=at)
            at += 10
    lines = history.sparklines(since=now - HOUR, until=now)
    spark = median_ms(lambda: history.sparklines(since=now - HOUR, until=now))
    names = sorted(lines)
    frames = median_ms(lambda: [history.frame(cluster=n, since=now - HOUR, until=now, node="") for n in names])
    print(f"  sparklines of {len(lines)} clusters of {count} nodes, the last hour: {spark:.0f} ms"
          f" (goal <= 50 ms); their totals as history() frames, one per cluster: {frames:.0f} ms")  # fmt: skip


def compaction_cost(history: History, now: float, count: int, rng: random.Random) -> None:
    """Compactions of that store as the recorder runs them, on its reading thread every
    ``COMPACT_EVERY_S``: the store then holds the week's cluster and the sparklines' nine
    (their last hour), and each has ten more minutes at 10 s to move to the 5-minute tier."""
    clusters = ["big", *(f"other-{c}" for c in range(9))]  # as main() and sparklines() recorded them
    times, removed = [], []
    for run in range(3):
        for k in range(int(COMPACT_EVERY_S // 10)):
            for name in clusters:
                history.record(name, nodes(count, rng, name), at=now + COMPACT_EVERY_S * run + 10 * k)
        begin = time.perf_counter()
        removed.append(history.compact(now + COMPACT_EVERY_S * (run + 1)))
        times.append(time.perf_counter() - begin)
    each = ", ".join(f"{t * 1000:.0f} ms ({r} rows)" for t, r in zip(times, removed, strict=True))
    print(f"  compacting {len(clusters)} clusters of {count} nodes every {COMPACT_EVERY_S / 60:.0f} minutes"
          f" (on the recorder's reading thread), 3 in a row: {each}")  # fmt: skip


def recording_cost(folder: Path, count: int, rng: random.Random) -> None:
    """:meth:`Recorder.reading`'s CPU over 20 recorded minutes of 5 clusters read every
    2 s (an injected clock): its buckets filling and rolling over, the snapshot rewritten
    every 30 s, the compaction every 10 minutes, as in a server."""
    clock = [1_795_996_800.0]
    history = History(Store(folder / "recording.sqlite3", clock=lambda: clock[0]))
    recorder = Recorder(history, server=True, clock=lambda: clock[0])
    clusters = [f"big-{c}" for c in range(5)]
    infos = {n: ClusterInfo(f"session_{n}", f"10.0.{c}.1:6379", None, "2.60.0", None, count, False, ("address",))
             for c, n in enumerate(clusters)}  # fmt: skip
    batches = [nodes(count, rng) for _ in range(20)]  # made before: the cost of making them is not recording's
    before = {n: batches[0] for n in clusters}
    for n in clusters:
        recorder.reading(n, infos[n], infos[n].name, before[n], [])  # the first: its snapshot, its lease
    readings, cpu = 0, time.process_time()
    for tick in range(20 * 60 // 2):
        clock[0] += 2.0
        for c, n in enumerate(clusters):
            after = batches[(tick + c) % len(batches)]
            recorder.reading(n, infos[n], infos[n].name, after, node_events(n, before[n], after))
            before[n] = after
            readings += 1
    per = (time.process_time() - cpu) / readings
    share = per * len(clusters) / 2.0 * 100
    print(f"  recording one {count}-node reading: {per * 1000:.2f} ms of CPU (mean of {readings}, 20 recorded minutes);"
          f" 5 such clusters every 2 s: {share:.2f} % of one core (goal <= 1 %)")  # fmt: skip


SOCKET = r"""
import asyncio, sys
from tornado.websocket import websocket_connect
async def main():
    socket = await websocket_connect(sys.argv[1])
    while await socket.read_message() is not None:
        pass
asyncio.run(main())
"""


def server_cost(count: int, seconds: float) -> None:
    """A Jupyter server with 5 replayed clusters of ``count`` nodes attached and an events
    socket open (refreshing every 2 s), history on, then off: the server's CPU over
    ``seconds``."""
    import contextlib
    import json
    import subprocess
    import sys
    import urllib.request

    import psutil

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import jupyter_lab, replay_process

    shares: dict[str, list[float]] = {"true": [], "false": []}
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(replay_process(count, 0, f"session_2026-01-01_00-00-00_000000_{c}"))
                for c in range(5)]  # fmt: skip
        for recording in ("true", "false", "true", "false"):  # alternated: the machine's load drifts
            env = {"CASTRAY_ATTACH": ",".join(urls), "CASTRAY_HISTORY": recording, "CASTRAY_REFRESH_INTERVAL": "2"}
            with jupyter_lab(env) as lab:
                api = f"{lab.url}/castray/api"
                for _ in range(120):  # until the server has attached all five
                    with contextlib.suppress(OSError, ValueError):
                        with urllib.request.urlopen(f"{api}/cluster/external-info?token={lab.token}", timeout=10) as r:
                            if len(json.load(r)["clusters"]) == 5:
                                break
                    time.sleep(0.5)
                else:
                    raise SystemExit("the Jupyter server did not attach the five replays")
                # What the sidebar opens: its jobs too (see js/src/api.ts).
                ws = lab.url.replace("http", "ws", 1) + f"/castray/api/events?interval=2&jobs=true&token={lab.token}"
                socket = subprocess.Popen([sys.executable, "-c", SOCKET, ws])
                try:
                    time.sleep(10)  # every cluster read and recorded a few times first
                    server = psutil.Process(lab.pid)
                    before, started = server.cpu_times(), time.perf_counter()
                    time.sleep(seconds)
                    after = server.cpu_times()
                    used = after.user - before.user + after.system - before.system
                    shares[recording].append(used / (time.perf_counter() - started) * 100)
                finally:
                    socket.kill()
                    socket.wait()
    on, off = statistics.mean(shares["true"]), statistics.mean(shares["false"])
    each = ", ".join(f"{a:.2f} / {b:.2f}" for a, b in zip(shares["true"], shares["false"], strict=True))
    print(f"  the Jupyter server, 5 replayed {count}-node clusters refreshed every 2 s, {seconds:g} s each run:"
          f" {on:.2f} % of one core with history on, {off:.2f} % off ({each}):"
          f" {on - off:+.2f} % (goal <= 1 %)")  # fmt: skip


def prometheus_beside(folder: Path, count: int, rng: random.Random, store_bytes: int) -> None:
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if not promtool:
        print("  Prometheus: promtool not found (apt-get install prometheus)")
        return
    metrics = {"ray_node_cpu_utilization": "cpu_percent", "ray_node_mem_used": "host_memory_used_bytes",
               "ray_node_mem_total": "host_memory_total_bytes", "ray_node_gpus_utilization": "gpu_percent",
               "ray_node_gram_used": "gpu_memory_used_bytes"}  # fmt: skip
    resources = {"CPU": "CPU_used", "GPU": "GPU_used", "memory": "memory_used_bytes",
                 "object_store_memory": "object_store_used_bytes"}  # fmt: skip
    start = int(time.time()) - 2 * 3600  # promtool wants the past
    text = folder / "hour.om"
    with open(text, "w") as out:
        for name in [*metrics, "ray_resources"]:
            out.write(f"# TYPE {name} gauge\n")
            for at in range(start, start + 3600, 10):
                for r in nodes(count, rng):
                    base = f'SessionName="session_bench",ip="{r.node_ip}",instance="{r.node_ip}:8080"'
                    if name == "ray_resources":
                        for resource, field in resources.items():
                            out.write(f'{name}{{{base},Name="{resource}",State="USED"}} {getattr(r, field)} {at}\n')
                    else:
                        out.write(f"{name}{{{base}}} {getattr(r, metrics[name])} {at}\n")
        out.write("# EOF\n")
    blocks = folder / "tsdb"
    began = time.perf_counter()
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(text), str(blocks)],
                   check=True, capture_output=True)  # fmt: skip
    took = time.perf_counter() - began
    hour = sum(p.stat().st_size for p in blocks.rglob("*") if p.is_file())
    print(f"  Prometheus TSDB, the same {count} nodes' series every 10 s: {hour / 2**20:.1f} MiB an hour"
          f" (promtool, {took:.0f} s), so about {hour * 168 / 2**20:.0f} MiB a week, beside"
          f" {store_bytes / 2**20:.1f} MiB for the store's week (downsampled)")  # fmt: skip


if __name__ == "__main__":
    main()
