"""Figures side by side with what a user would otherwise run, measured in one run.

    python benchmarks/run.py [--repeat N] [--write benchmarks/RESULTS.md]

Starts two throwaway heads (separate processes, a HOME of their own), measures, stops
them. Reports medians; no pass/fail: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HOME = tempfile.mkdtemp(prefix="castray-bench-home-")
os.environ["HOME"] = HOME
for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_ADDRESS"):
    os.environ.pop(var, None)
os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")

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


def panel_figures(table: Table, settings: object, a: LocalCluster, b: LocalCluster, n: int) -> None:
    import dataclasses

    import psutil

    from castray_nb.core.connector import resolve
    from castray_nb.core.nodes import to_dataframe
    from castray_nb.core.session import Session
    from castray_nb.widgets import Panel, render_table

    session = Session(settings)  # type: ignore[arg-type]
    for cluster in (a, b):
        (info,) = resolve(cluster.gcs_address, session.settings)
        session.attach(info)
    panel = Panel(session, interval=1.0)
    me = psutil.Process()
    time.sleep(2)
    before, started = me.cpu_times(), time.perf_counter()
    time.sleep(30)
    after, wall = me.cpu_times(), time.perf_counter() - started
    panel.close()
    share = (after.user - before.user + after.system - before.system) / wall
    table.figure(
        "live panel, refresh every 1 s, 2 clusters",
        f"{share * 100:.2f} %",
        "CPU of one core over 30 s",
        "",
        "target <= 2 %",
    )

    row = session.rows()[0]
    rows = [dataclasses.replace(row, node_id=f"{i:056x}") for i in range(1000)]
    ours = timed_call(lambda: render_table(rows, set()), max(10, n))
    frame = to_dataframe(rows)
    table.add(
        "render the panel table, 1,000 rows", ours, "pandas DataFrame.to_html", timed_call(frame.to_html, max(10, n))
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args()
    n = args.repeat
    import ray

    from castray_nb.core.discovery import discover
    from castray_nb.core.settings import Settings

    table = Table()
    print(f"castray_nb benchmarks, {dt.date.today()} on {machine()}, Ray {ray.__version__}; medians of {n}")
    print("starting two heads ...", flush=True)
    a, b = LocalCluster(home=HOME), LocalCluster(home=HOME)
    try:
        a.launch(), b.launch()
        a.wait_ready(), b.wait_ready()
        settings = Settings()
        assert len([c for c in discover(settings) if c.gcs_address in (a.gcs_address, b.gcs_address)]) == 2
        castray = str(BIN / "castray-nb")
        ray_cli = str(BIN / "ray")

        print("\ncommand line (whole process, cold):")
        ray_status = timed_process([ray_cli, "status", "--address", a.gcs_address], n)
        ray_list = timed_process([ray_cli, "list", "nodes", "--address", str(a.dashboard_url)], n)
        ours = timed_process([castray, "discover", "--json"], n)
        table.add("castray-nb discover --json (2 clusters)", ours, "ray status --address A", ray_status, "target >= 3x")
        table.add(
            "castray-nb discover --json (2 clusters)", ours, "ray list nodes --address A", ray_list, "target >= 4x"
        )
        ours_nodes = timed_process([castray, "nodes", "--address", a.gcs_address, "--json"], n)
        table.add("castray-nb nodes --address A --json", ours_nodes, "ray list nodes --address A", ray_list)
        baseline = timed_process([sys.executable, "-c", "pass"], n)
        table.add('(baseline: python -c "pass")', baseline, "", None)

        print("\nin process (warm):")
        warm = timed_call(lambda: discover(settings), max(20, n))
        table.add("discover() warm, 2 live clusters", warm, "target <= 50 ms", None)

        print("\npanel (widget model, no browser):")
        panel_figures(table, settings, a, b, n)

        print("\nloading:")
        ours_import = timed_process([sys.executable, "-c", "import castray_nb"], n)
        table.add(
            'python -c "import castray_nb"',
            ours_import,
            'python -c "import ray"',
            timed_process([sys.executable, "-c", "import ray"], n),
            "target >= 5x",
        )
    finally:
        a.stop()
        b.stop()
    if args.write:
        args.write.write_text(
            f"# Benchmark results\n\nMeasured {dt.date.today()} on {machine()}, Ray {ray.__version__}; "
            f"medians of {n} runs (`python benchmarks/run.py --repeat {n}`).\n\n{table.markdown()}\n"
        )
        print(f"\nwrote {args.write}")


if __name__ == "__main__":
    main()
