"""Figures side by side with what a user would otherwise run, measured in one run.

    python benchmarks/run.py [--repeat N] [--write benchmarks/RESULTS.md]

Starts two throwaway heads (separate processes, a HOME of their own), measures, stops
them. Reports medians; no pass/fail: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

HOME = tempfile.mkdtemp(prefix="castray-bench-home-")
atexit.register(shutil.rmtree, HOME, ignore_errors=True)
os.environ["HOME"] = HOME
for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_ADDRESS"):
    os.environ.pop(var, None)
os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")

from castray_nb.core.settings import Settings  # noqa: E402
from castray_nb.launch import LocalCluster  # noqa: E402

BIN = Path(sys.executable).parent


def timed_process(args: Sequence[str], repeat: int) -> float:
    """Median wall time of a whole command, in seconds; fails loudly if it fails."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr[-1500:]}")
    return statistics.median(times)


def timed_call(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(self, what: str, ours: float, alternative: str, theirs: float | None, target: str = "") -> None:
        ratio = f"{theirs / ours:.1f}x" if theirs else ""
        note = ratio + (f" ({target})" if target else "")
        self.figure(what, _fmt(ours), alternative, _fmt(theirs) if theirs else "", note)

    def figure(self, what: str, ours: str, alternative: str = "", theirs: str = "", note: str = "") -> None:
        self.rows.append((what, ours, alternative, theirs, note))
        print(f"  {what:<48} {ours:>10}   {alternative:<34} {theirs:>10}  {note}", flush=True)

    def markdown(self) -> str:
        lines = [
            "| measurement | castray_nb | alternative | alternative's time | ratio (target) |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in self.rows]
        return "\n".join(lines)


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def machine() -> str:
    import psutil

    return (
        f"{platform.node()}: {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}, {platform.platform()}"
    )


def cli_figures(table: Table, a: LocalCluster, n: int) -> None:
    castray, ray_cli = str(BIN / "castray-nb"), str(BIN / "ray")
    ray_status = timed_process([ray_cli, "status", "--address", a.gcs_address], n)
    ray_list = timed_process([ray_cli, "list", "nodes", "--address", str(a.dashboard_url)], n)
    init_nodes = timed_process([sys.executable, "-c", f"import ray; ray.init(address={a.gcs_address!r}, "
                                "logging_level='ERROR', log_to_driver=False); ray.nodes()"], n)  # fmt: skip
    ours = timed_process([castray, "discover", "--json"], n)
    table.add("castray-nb discover --json (2 clusters)", ours, "ray status --address A", ray_status, "target >= 3x")
    table.add("castray-nb discover --json (2 clusters)", ours, "ray list nodes --address A", ray_list, "target >= 4x")
    ours_nodes = timed_process([castray, "nodes", "--address", a.gcs_address, "--json"], n)
    table.add("castray-nb nodes --address A --json", ours_nodes, "ray list nodes --address A", ray_list)
    table.add("castray-nb nodes --address A --json", ours_nodes, "python: ray.init(A) + ray.nodes()", init_nodes)
    table.add('(baseline: python -c "pass")', timed_process([sys.executable, "-c", "pass"], n), "", None)


def environment_line() -> str:
    """What in the environment changes Ray's own import time (and so the ratios below)."""
    import importlib.util

    def has(module: str) -> str:
        return "yes" if importlib.util.find_spec(module) else "no"

    return f"JupyterLab installed: {has('jupyterlab')}; rfc3987-syntax present: {has('rfc3987_syntax')}"


SILENT_WATCH_SCRIPT = r"""
import socket, sys, threading, time
from castray_nb.core.discovery import ClusterInfo
from castray_nb.core.session import Session
from castray_nb.core.settings import Settings
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(64)
held = []
def accept():
    while True:
        conn, _ = listener.accept(); held.append(conn)
threading.Thread(target=accept, daemon=True).start()
address = "127.0.0.1:%d" % listener.getsockname()[1]
session = Session(Settings(gcs_timeout=1.0))
session.attach(ClusterInfo("silent", address, None, None, None, None, False, ("bench",)), refresh=False)
before = threading.active_count()
watch = session.watch(1.0)
time.sleep(float(sys.argv[1]))
during = threading.active_count()
watch.stop(); time.sleep(2)
print(before, during, threading.active_count())
"""


def gcs_figures(table: Table, n: int) -> None:
    """A cluster with a dashboard and one without: the GCS read that imports no Ray."""
    castray, ray_cli = str(BIN / "castray-nb"), str(BIN / "ray")
    print(f"  ({environment_line()})")
    dash, bare = LocalCluster(home=HOME), LocalCluster(home=HOME, dashboard=False)
    try:
        dash.launch(), dash.wait_ready()
        only = timed_process([castray, "discover", "--json"], n)
        table.add("castray-nb discover --json, 1 dashboard cluster (cold)", only, "", None, "target <= 0.25 s")
        from castray_nb.core.discovery import discover

        table.add("discover() warm, 1 dashboard cluster", timed_call(lambda: discover(Settings()), max(20, n)),
                  "", None, "target <= 20 ms")  # fmt: skip
        bare.launch(), bare.wait_ready()
        ray_status = timed_process([ray_cli, "status", "--address", bare.gcs_address], n)
        ray_list = timed_process([ray_cli, "list", "nodes", "--address", str(dash.dashboard_url)], n)
        ours = timed_process([castray, "discover", "--json"], n)
        what = "castray-nb discover --json, 1 dashboard + 1 dashboard-less"
        table.add(what, ours, "ray status --address A", ray_status, "target <= 0.5 s and >= 6x")
        table.add(what, ours, "ray list nodes --address A", ray_list, "target >= 6x")
        table.add("discover() warm, 1 dashboard + 1 dashboard-less",
                  timed_call(lambda: discover(Settings()), max(20, n)), "", None, "target <= 20 ms")  # fmt: skip
        nodes = timed_process([castray, "nodes", "--address", bare.gcs_address, "--json"], n)
        table.add("castray-nb nodes --address <dashboard-less GCS> --json", nodes, "ray status --address A",
                  ray_status, "target <= 0.4 s")  # fmt: skip
    finally:
        dash.stop()
        bare.stop()
    out = subprocess.run([sys.executable, "-c", SILENT_WATCH_SCRIPT, "60"], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"the silent-GCS watch failed:\n{out.stderr[-1500:]}")
    before, during, after = out.stdout.split()
    table.figure("a silent GCS under a 1 s watch for 60 s", f"{during} threads", "threads before the watch; after it",
                 f"{before}; {after}")  # fmt: skip


def in_process_figures(table: Table, settings: Settings, a: LocalCluster, n: int) -> None:
    from ray.util.state import list_nodes

    from castray_nb.core.client import ClusterClient
    from castray_nb.core.discovery import discover

    warm = timed_call(lambda: discover(settings), max(20, n))
    state_api = timed_call(lambda: list_nodes(address=str(a.dashboard_url)), max(20, n))
    # list_nodes reads one address given to it; discover() finds every cluster: no alternative finds them.
    table.add("discover() warm, 2 live clusters", warm, "(nothing else discovers)", None, "target <= 50 ms")
    by_dashboard = timed_call(lambda: ClusterClient(None, a.dashboard_url, settings).read(cluster="a"), max(20, n))
    by_gcs = timed_call(lambda: ClusterClient(a.gcs_address, None, settings).read(cluster="a"), max(20, n))
    table.add("read one cluster's nodes: dashboard path", by_dashboard, "ray.util.state.list_nodes(A), warm", state_api)
    table.add("read one cluster's nodes: GCS path", by_gcs, "ray.util.state.list_nodes(A), warm", state_api)


def synthetic_rows(count: int, cluster: str) -> list:
    from castray_nb.core.nodes import node_from_state, state_api_nodes
    from castray_nb.testing.replay import ReplayDashboard

    replay = ReplayDashboard(nodes=count)
    raw, _ = state_api_nodes(replay._nodes_reply({"limit": [str(count)]}))
    seen = dt.datetime.now(dt.UTC)
    return [node_from_state(r, cluster=cluster, source="external", seen=seen) for r in raw]


def dataframe_figures(table: Table, n: int) -> None:
    from castray_nb.core.nodes import to_dataframe

    for clusters in (1, 10, 100):
        for nodes in (10, 1_000, 10_000):
            if clusters * nodes > 1_000_000:
                continue
            one = synthetic_rows(nodes, "c0")
            rows = (
                [dataclasses.replace(r, cluster=f"c{i}") for i in range(clusters) for r in one] if clusters > 1 else one
            )
            repeat = 1 if clusters * nodes >= 100_000 else max(5, n)
            ours = timed_call(lambda rows=rows: to_dataframe(rows), repeat, warmup=0 if repeat == 1 else 1)
            table.add(f"merged DataFrame, {clusters} x {nodes:,} nodes", ours, "", None)
    rows = [dataclasses.replace(r, cluster=f"c{i}") for i in range(5) for r in synthetic_rows(1_000, "c0")]
    table.add(
        "merged DataFrame, 5 x 1,000 nodes",
        timed_call(lambda: to_dataframe(rows), max(10, n)),
        "target <= 100 ms",
        None,
    )


def cpu_share(seconds: float) -> float:
    import psutil

    me = psutil.Process()
    before, started = me.cpu_times(), time.perf_counter()
    time.sleep(seconds)
    after = me.cpu_times()
    return (after.user - before.user + after.system - before.system) / (time.perf_counter() - started)


def panel_figures(table: Table, settings: Settings, a: LocalCluster, b: LocalCluster, n: int) -> None:
    from castray_nb.core.connector import resolve
    from castray_nb.core.nodes import to_dataframe
    from castray_nb.core.render import render_table
    from castray_nb.core.session import Session
    from castray_nb.widgets import Panel

    session = Session(settings)
    for cluster in (a, b):
        info = resolve(cluster.gcs_address, session.settings)
        session.attach(info)
    panel = Panel(session, interval=1.0)
    time.sleep(2)
    share = cpu_share(30)
    panel.close()
    table.figure(
        "live panel at 1 s, 2 real clusters", f"{share * 100:.2f} %", "CPU of one core, 30 s", "", "target <= 2 %"
    )

    from castray_nb.picture import render_picture

    render_picture(synthetic_rows(2, "warm"))  # the first call, once per process
    for count in (2, 10, 40, 10_000):
        rows = synthetic_rows(count, "big")
        table.figure(
            f"draw the picture, {count:,} nodes (<= 40 tiles)",
            _fmt(timed_call(lambda rows=rows: render_picture(rows), max(3, n))),
            note="in the panel's thread, when states change; usage alone at most every 10 s",
        )

    for count in (100, 1_000, 10_000):
        rows = synthetic_rows(count, "big")
        ours = timed_call(lambda rows=rows: render_table(rows, set()), max(5, n))
        theirs = timed_call(lambda rows=rows: to_dataframe(rows).to_html(), 3)
        table.add(f"render every row as HTML, {count:,} rows", ours, "to_dataframe(rows).to_html()", theirs)
        with replay_process(count) as url:
            big = Session(settings)
            info = resolve(url, big.settings)
            big.attach(info)
            panel = Panel(big, interval=1.0)
            time.sleep(2)
            share = cpu_share(20)
            stall = main_thread_stall(5)
            panel.close()
        table.figure(f"live panel at 1 s, replay of {count:,} nodes", f"{share * 100:.2f} %", "CPU of one core, 20 s")
        table.figure(f"  longest main-thread stall meanwhile ({count:,})", f"{stall * 1000:.0f} ms",
                     "a 5 ms sleep loop in the kernel's thread")  # fmt: skip


# Runs in a fresh interpreter (so it can also be pointed at an older checkout with
# PYTHONPATH): a real IPython shell runs the same "%castray panel" cell five times, as a
# notebook user re-running a cell does, then counts what is left running.
RERUN_SCRIPT = r"""
import json, sys, threading, time
import psutil
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_cell("%load_ext castray_nb", cell_id="setup")
ip.run_cell("%castray connect " + sys.argv[1] + " --name big", cell_id="connect")
for _ in range(5):
    ip.run_cell("p = %castray panel --interval 1", cell_id="panel-cell")
time.sleep(3)
import castray_nb
s = castray_nb.session()
me = psutil.Process()
before, started = me.cpu_times(), time.perf_counter()
time.sleep(float(sys.argv[2]))
after = me.cpu_times()
cpu = (after.user - before.user + after.system - before.system) / (time.perf_counter() - started)
watches, subscribers = len(s.scheduler.watches), len(s.bus)
print(json.dumps({"threads": threading.active_count(), "watches": watches, "subscribers": subscribers, "cpu": cpu}))
"""


def rerun_figures(table: Table, n: int) -> None:
    """Re-running a ``%castray panel`` cell five times against a 1,000-node replay."""
    import json

    with replay_process(1_000) as url:
        out = subprocess.run([sys.executable, "-c", RERUN_SCRIPT, url, "20"], capture_output=True, text=True,
                             timeout=300, cwd=tempfile.gettempdir())  # fmt: skip
        if out.returncode != 0:
            raise SystemExit(f"the re-run script failed:\n{out.stderr[-1500:]}")
        left = json.loads(out.stdout.strip().splitlines()[-1])
    table.figure(
        "'%castray panel' run 5 times in one cell, 1,000-node replay",
        f"{left['watches']} watch(es), {left['subscribers']} subscriber(s), {left['threads']} threads",
        "CPU of one core over 20 s after",
        f"{left['cpu'] * 100:.2f} %",
    )


@contextlib.contextmanager
def replay_process(nodes: int, jobs: int = 0, session: str = "session_2026-01-01_00-00-00_000000_1") -> Iterator[str]:
    """The replay dashboard in a process of its own, so its work is not counted as ours."""
    proc = subprocess.Popen([sys.executable, "-m", "castray_nb.testing.replay", "--nodes", str(nodes),
                             "--jobs", str(jobs), "--session", session],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


def jobs_figures(table: Table, a: LocalCluster, n: int) -> None:
    """``castray-nb jobs --json`` against ``ray job list`` on one cluster with 20 jobs."""
    from ray.job_submission import JobSubmissionClient

    assert a.dashboard_url
    client = JobSubmissionClient(a.dashboard_url)
    ids = [client.submit_job(entrypoint=f'python -c "print({i})"') for i in range(20)]
    deadline = time.monotonic() + 300
    while any(client.get_job_status(i).value not in ("SUCCEEDED", "FAILED") for i in ids):
        if time.monotonic() > deadline:
            raise SystemExit("the 20 benchmark jobs did not finish within 300 s")
        time.sleep(1)
    ours = timed_process([str(BIN / "castray-nb"), "jobs", "--address", a.dashboard_url, "--json"], n)
    theirs = timed_process([str(BIN / "ray"), "job", "list", "--address", a.dashboard_url], n)
    table.add("castray-nb jobs --json (one cluster, 20 jobs)", ours, "ray job list --address A", theirs)


def jobs_panel_figures(table: Table, settings: Settings, n: int) -> None:
    """The panel's jobs section over 5 replayed clusters of 200 jobs each."""
    from castray_nb.core.jobs import ordered
    from castray_nb.core.render import render_jobs
    from castray_nb.core.session import Session
    from castray_nb.widgets import JOBS_SHOWN, Panel

    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(replay_process(3, 200, f"session_2026-01-01_00-00-00_000000_{i}"))
                for i in range(5)]  # fmt: skip
        session = Session(settings)
        for i, url in enumerate(urls):
            session.connect(url, name=f"replay-{i}")
        session.refresh_jobs()
        jobs, skipped = session.cached_jobs()
        assert len(jobs) == 1000 and not skipped, (len(jobs), skipped)
        table.figure("jobs table of 5 clusters x 200 jobs: read all five", _fmt(timed_call(session.jobs, n)),
                     note="concurrently, from the replays' /api/jobs/")  # fmt: skip
        took = timed_call(lambda: render_jobs(ordered(jobs)[:JOBS_SHOWN], len(jobs), {}), max(5, n))
        table.figure("  order them and render the panel's jobs table (1,000 jobs, 50 rows)", _fmt(took))
        panel = Panel(session, interval=1.0)
        time.sleep(2)
        render = timed_call(panel.render, max(5, n))
        share = cpu_share(20)
        panel.close()
        session.close()
    table.figure("  the whole panel's render, jobs section included", _fmt(render))
    table.figure("live panel at 1 s reading 5 x 200 jobs", f"{share * 100:.2f} %", "CPU of one core, 20 s")


def main_thread_stall(seconds: float) -> float:
    """The longest gap a 5 ms sleep loop in this (the kernel's) thread sees."""
    worst, end, last = 0.0, time.perf_counter() + seconds, time.perf_counter()
    while last < end:
        time.sleep(0.005)
        now = time.perf_counter()
        worst, last = max(worst, now - last - 0.005), now
    return worst


def dead_folder_figures(table: Table, n: int) -> None:
    from castray_nb.core.discovery import discover_report

    for count in (0, 100, 5_000):
        temp = Path(tempfile.mkdtemp(prefix="castray-bench-dead-")) / "ray"
        temp.mkdir()
        for i in range(count):
            (temp / f"session_2026-01-01_00-00-00_{i:06d}_{i}").mkdir()
        settings = Settings(temp_dirs=(str(temp),))
        table.add(
            f"discover() warm, {count:,} dead session folders",
            timed_call(lambda s=settings: discover_report(s), max(10, n)),
            "",
            None,
        )
        shutil.rmtree(temp.parent, ignore_errors=True)


def _printed(script: str, n: int) -> float:
    """Median of the seconds a fresh interpreter running ``script`` prints."""
    runs = []
    for _ in range(n):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


@dataclasses.dataclass(frozen=True)
class Lab:
    url: str
    token: str
    pid: int  # the server's, for its CPU


@contextlib.contextmanager
def jupyter_lab(env: dict[str, str] | None = None, args: Sequence[str] = ()) -> Iterator[Lab]:
    """JupyterLab with castray_nb's extension, on a free port, in dirs of its own;
    ``env`` and ``args`` add to its environment and command line."""
    import signal
    import urllib.request

    from castray_nb.launch import free_ports

    root = Path(tempfile.mkdtemp(prefix="castray-bench-jupyter-"))
    (port,) = free_ports(1)
    token = os.urandom(16).hex()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / "c"), "JUPYTER_RUNTIME_DIR": str(root / "r"),
           "JUPYTER_DATA_DIR": str(root / "d"), **(env or {})}  # fmt: skip
    log = open(root / "log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                               f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                               *args],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            time.sleep(0.3)
        yield Lab(url, token, server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def proxy_figures(table: Table, a: LocalCluster, n: int) -> None:
    """The dashboard through Jupyter against the dashboard itself, same run."""
    import json
    import urllib.request

    assert a.dashboard_url
    with jupyter_lab() as lab:
        url, token = lab.url, lab.token
        body = json.dumps({"cluster_address": a.dashboard_url, "name": "bench"}).encode()
        request = urllib.request.Request(f"{url}/castray/api/cluster/connect-external", data=body, method="POST",
                                         headers={"Authorization": f"token {token}"})  # fmt: skip
        link = url + json.loads(urllib.request.urlopen(request, timeout=30).read())["cluster"]["dashboard_link"]

        def gets(base: str) -> list[float]:
            times = []
            for i in range(55):
                started = time.perf_counter()
                urllib.request.urlopen(f"{base}api/v0/nodes", timeout=30).read()
                if i >= 5:  # 5 warm-up requests
                    times.append(time.perf_counter() - started)
            return sorted(times)

        for _ in range(2):  # interleaved, so both see the same machine
            proxied, direct = gets(link), gets(a.dashboard_url + "/")
        p95 = int(0.95 * len(proxied)) - 1
        table.add("GET /api/v0/nodes through the proxy (median of 50)", statistics.median(proxied),
                  "the dashboard directly", statistics.median(direct))  # fmt: skip
        table.add("GET /api/v0/nodes through the proxy (p95 of 50)", proxied[p95], "the dashboard directly",
                  direct[p95])  # fmt: skip
        chromium = "/usr/bin/chromium"
        if not Path(chromium).exists():
            table.figure("Cluster page in Chromium", "(no /usr/bin/chromium)")
            return
        from playwright.sync_api import sync_playwright

        def page_load(browser: object, base: str) -> float:
            context = browser.new_context()  # type: ignore[attr-defined]
            page = context.new_page()
            started = time.perf_counter()
            page.goto(base + "#/cluster")
            page.locator("table").filter(has_text="ALIVE").filter(has_text="(Head)").wait_for(timeout=60_000)
            took = time.perf_counter() - started
            context.close()
            return took

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page_load(browser, link)
            page_load(browser, a.dashboard_url + "/")
            through, itself = [], []
            for _ in range(n):
                through.append(page_load(browser, link))
                itself.append(page_load(browser, a.dashboard_url + "/"))
            browser.close()
        table.add("Ray's Cluster page loads in Chromium, through Jupyter (until the head row shows)",
                  statistics.median(through), "the dashboard directly", statistics.median(itself))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--only", choices=["panel", "rerun", "gcs", "proxy", "jobs"], help="run one section only")
    args = parser.parse_args()
    n = args.repeat
    import ray

    table = Table()
    print(f"castray_nb benchmarks, {dt.date.today()} on {machine()}, Ray {ray.__version__}; medians of {n}")
    if args.only == "rerun":
        rerun_figures(table, n)
        return
    if args.only == "jobs":
        print("\njobs (replayed):")
        jobs_panel_figures(table, Settings(), n)
    if args.only in (None, "gcs"):
        print("\nwithout a dashboard (the GCS over gRPC; clusters of its own):")
        gcs_figures(table, n)
    if args.only == "gcs":
        return
    print("starting two heads ...", flush=True)
    a, b = LocalCluster(home=HOME), LocalCluster(home=HOME)
    settings = Settings()
    try:
        a.launch(), b.launch()
        a.wait_ready(), b.wait_ready()
        if args.only == "panel":
            panel_figures(table, settings, a, b, n)
            return
        if args.only == "proxy":
            proxy_figures(table, a, n)
            return
        if args.only == "jobs":
            jobs_figures(table, a, n)
            return
        print("\ncommand line (whole process, cold):")
        cli_figures(table, a, n)
        print("\nin process (warm):")
        in_process_figures(table, settings, a, n)
        print("\ndiscovery and dead session folders:")
        dead_folder_figures(table, n)
        print("\nthe merged table:")
        dataframe_figures(table, n)
        print("\npanel (widget model, no browser):")
        panel_figures(table, settings, a, b, n)
        rerun_figures(table, n)
        print("\njobs:")
        jobs_figures(table, a, n)
        jobs_panel_figures(table, settings, n)
        print("\nthe dashboard proxy (through Jupyter Server):")
        proxy_figures(table, a, n)
        print("\nloading:")
        ours_import = timed_process([sys.executable, "-c", "import castray_nb"], n)
        theirs = timed_process([sys.executable, "-c", "import ray"], n)
        table.add('python -c "import castray_nb"', ours_import, 'python -c "import ray"', theirs, "target >= 5x")
        in_shell = "import time; from IPython.core.interactiveshell import InteractiveShell as S; ip = S.instance(); "
        load = (
            in_shell
            + "t = time.perf_counter(); ip.run_line_magic('load_ext', 'castray_nb'); print(time.perf_counter() - t)"
        )
        ray_in = in_shell + "t = time.perf_counter(); import ray; print(time.perf_counter() - t)"
        table.add(
            "%load_ext castray_nb, in a running IPython",
            _printed(load, n),
            "import ray, in the same",
            _printed(ray_in, n),
            "target >= 5x",
        )
    finally:
        a.stop()
        b.stop()
    if args.write:
        args.write.write_text(
            f"# Benchmark results\n\nMeasured {dt.date.today()} on {machine()}, Ray {ray.__version__}; "
            f"medians of {n} runs (`python benchmarks/run.py --repeat {n} --write benchmarks/RESULTS.md`). "
            f"Ratios are the alternative's time over ours. Environment: {environment_line()}.\n\n"
            f"{table.markdown()}\n"
        )
        print(f"\nwrote {args.write}")


if __name__ == "__main__":
    main()
