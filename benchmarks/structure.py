"""The figures of the restructuring, each beside the code before it, in one run.

    python benchmarks/structure.py [--old REV] [--only models,stall,discover,sidebar]

``REV`` (default ``5467db2``, the last commit before the restructuring) is checked out in a
git worktree of its own; every figure runs in fresh processes, once with that tree and once
with this one first on ``PYTHONPATH`` (for the sidebar, also with that tree's built
JupyterLab extension first on ``JUPYTER_PATH``). No pass/fail: this machine is shared.

- widget models alive after a ``%castray panel`` cell is run 5 times with one cell id (as a
  notebook user re-running it), and after ``close()``;
- the longest stall of the kernel's thread under a live panel over a 10,000-node replay,
  from the attach on;
- ``discover()`` with a plug-in source that sleeps 60 s;
- JupyterLab in Chromium with 2 clusters attached, the sidebar collapsed or open: the
  page's requests to ``/castray/api/*`` over 60 s, and the Jupyter server's CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GIT = shutil.which("git") or "git"
sys.path.insert(0, str(Path(__file__).resolve().parent))
# The benchmarks' own helpers; importing it gives this process a HOME of its own, and no Ray token.
from run import HOME, jupyter_lab, replay_process  # noqa: E402


@contextlib.contextmanager
def old_tree(rev: str) -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="castray-old-"))
    subprocess.run([GIT, "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev], check=True,
                   capture_output=True)  # fmt: skip
    try:
        yield where
    finally:
        subprocess.run([GIT, "-C", str(ROOT), "worktree", "remove", "--force", str(where)], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


def run_in(tree: Path, script: str, *args: str, timeout: float = 300) -> dict:
    """``script`` in a fresh interpreter that imports castray_nb from ``tree``; its last line as JSON."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True,
                         timeout=timeout, cwd=tempfile.gettempdir())  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"the benchmark script failed in {tree}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


replay = replay_process  # the replay dashboard in a process of its own: its work is not counted


def row(what: str, old: str, new: str, note: str = "") -> None:
    print(f"  {what:<58} {old:>22}   {new:>22}   {note}", flush=True)


# --------------------------------------------------------------------------- widget models

MODELS = r"""
import json, sys
import ipywidgets as W
from IPython.core.interactiveshell import InteractiveShell

def alive():
    instances = getattr(W.widgets.widget, "_instances", None)
    return len(instances if instances is not None else W.Widget.widgets)

ip = InteractiveShell.instance()
ip.run_cell("%load_ext castray_nb", cell_id="setup")
ip.run_cell("%castray connect " + sys.argv[1] + " --name big", cell_id="connect")
before = alive()
after_each = []
for _ in range(5):
    ip.run_cell("p = %castray panel --interval 1", cell_id="panel-cell")
    after_each.append(alive() - before)
ip.run_cell("p.close()", cell_id="close")
print(json.dumps({"after_each": after_each, "after_close": alive() - before}))
"""


def models_figures(old: Path) -> None:
    print("\nwidget models alive (beyond those before the first panel):")
    with replay(1_000) as url:
        was, now = run_in(old, MODELS, url), run_in(ROOT, MODELS, url)
    row("after each of 5 runs of one panel cell", str(was["after_each"]), str(now["after_each"]), "must not grow")
    row("after p.close()", str(was["after_close"]), str(now["after_close"]), "")


# --------------------------------------------------------------------------- kernel stall

STALL = r"""
import json, sys, time
import castray_nb
from castray_nb.widgets import Panel

s = castray_nb.session()
worst, windows, started = 0.0, {}, time.perf_counter()
def tick(last):
    now = time.perf_counter()
    gap = now - last - 0.005
    second = int(now - started)
    windows[second] = max(windows.get(second, 0.0), gap)
    return now, gap

s.connect(sys.argv[1], name="big")   # the attach and its first read count
p = Panel(s, interval=1.0)
last = time.perf_counter()
while time.perf_counter() - started < float(sys.argv[2]):
    time.sleep(0.005)
    last, gap = tick(last)
    worst = max(worst, gap)
p.close()
early = max(v for k, v in windows.items() if k < 3)
print(json.dumps({"worst": worst, "first_3s": early, "after": max(v for k, v in windows.items() if k >= 3)}))
"""


def stall_figures(old: Path, seconds: float = 33) -> None:
    print(f"\nlongest stall of the kernel's thread (5 ms sleep loop), live panel at 1 s, {seconds:g} s from attach:")
    results = {}
    for label, tree in (("old", old), ("new", ROOT)):
        with replay(10_000) as url:
            results[label] = run_in(tree, STALL, url, str(seconds))
    was, now = results["old"], results["new"]
    ms = lambda x: f"{x * 1000:.0f} ms"  # noqa: E731
    row("10,000-node replay: worst, from the attach on", ms(was["worst"]), ms(now["worst"]), "goal <= 50 ms")
    row("  in the first 3 s (attach, first read, first render)", ms(was["first_3s"]), ms(now["first_3s"]))
    row("  after", ms(was["after"]), ms(now["after"]))


# --------------------------------------------------------------------------- a hanging source

DISCOVER = r"""
import json, time
from castray_nb.core.sources import register_source

@register_source("hangs")
def hangs(ctx):
    time.sleep(60)
    return []

import castray_nb
started = time.perf_counter()
found = castray_nb.discover()
took = time.perf_counter() - started
report = getattr(found, "report", None) or castray_nb.discover_report()
print(json.dumps({"took": took, "error": (report.source_errors or {}).get("hangs") if report else None}))
"""


def discover_figures(old: Path) -> None:
    print("\ndiscover() with a plug-in source that sleeps 60 s (source_timeout 5 s):")
    was, now = run_in(old, DISCOVER, timeout=120), run_in(ROOT, DISCOVER, timeout=120)
    row("returned after", f"{was['took']:.2f} s", f"{now['took']:.2f} s", "goal <= 6 s (the deadline + 1 s)")
    row("the source's error in the report", repr(was["error"])[:22], repr(now["error"])[:22], f"({now['error']})")


# --------------------------------------------------------------------------- the sidebar


@contextlib.contextmanager
def lab_with(tree: Path, clusters: list) -> Iterator[tuple[str, str, int]]:
    """JupyterLab whose server extension and sidebar are ``tree``'s, both clusters attached."""
    share = Path(tempfile.mkdtemp(prefix="castray-bench-share-"))
    (share / "labextensions").mkdir()
    (share / "labextensions" / "castray-nb").symlink_to(tree / "castray_nb" / "labextension")
    env = {
        "PYTHONPATH": str(tree),
        "JUPYTER_PATH": str(share),
        "CASTRAY_ATTACH": ",".join(c.gcs_address for c in clusters),
    }
    args = ("--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
    try:
        with jupyter_lab(env, args) as lab:
            yield lab.url, lab.token, lab.pid
    finally:
        shutil.rmtree(share, ignore_errors=True)


def page_figures(tree: Path, clusters: list, sidebar_open: bool, seconds: float) -> tuple[int, float, str]:
    """(requests to /castray/api/*, server CPU share, the sidebar bundle served) over ``seconds``."""
    import psutil
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]  # fmt: skip
    with lab_with(tree, clusters) as (url, token, pid), sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            bundles: list[str] = []
            page.on("request", lambda r: bundles.append(r.url) if "castray-nb/static/" in r.url else None)
            page.goto(f"{url}/lab?token={token}&reset")
            page.wait_for_selector(".jp-SideBar .lm-TabBar-tab[data-id='castray-sidebar']", timeout=60_000)
            if sidebar_open:
                page.locator(".jp-SideBar .lm-TabBar-tab[data-id='castray-sidebar']").click()
                page.wait_for_selector("#castray-sidebar .castray-card", timeout=60_000)
            page.wait_for_timeout(5_000)  # start-up requests end
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url) if "/castray/api/" in r.url else None)
            server = psutil.Process(pid)
            before, started = server.cpu_times(), time.perf_counter()
            page.wait_for_timeout(seconds * 1000)
            after = server.cpu_times()
            cpu = (after.user - before.user + after.system - before.system) / (time.perf_counter() - started)
        finally:
            browser.close()
    entry = next((b.rsplit("/", 1)[-1] for b in bundles if "remoteEntry" in b), "?")
    return len(asked), cpu, entry


def sidebar_figures(old: Path, seconds: float = 60) -> None:
    from castray_nb.launch import LocalCluster

    print(f"\nJupyterLab in Chromium, 2 clusters attached, over {seconds:g} s: requests to /castray/api/*, server CPU")
    a, b = LocalCluster(home=HOME), LocalCluster(home=HOME)
    try:
        a.launch(), b.launch()
        a.wait_ready(), b.wait_ready()
        for shown in (False, True):
            was = page_figures(old, [a, b], shown, seconds)
            now = page_figures(ROOT, [a, b], shown, seconds)
            where = "sidebar open" if shown else "sidebar collapsed"
            row(f"{where}: requests", str(was[0]), str(now[0]), "goal 0 while collapsed" if not shown else "")
            row(f"{where}: Jupyter server CPU", f"{was[1] * 100:.1f} %", f"{now[1] * 100:.1f} %", "of one core")
            row("  the sidebar bundle the page loaded", was[2][-22:], now[2][-22:], "(old and new builds)")
    finally:
        a.stop()
        b.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", default="5467db2", help="the code before (a git revision)")
    parser.add_argument("--only", default="models,stall,discover,sidebar")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    print(f"castray_nb: the restructuring beside {args.old}, {time.strftime('%Y-%m-%d')}")
    row("", "before", "after")
    with old_tree(args.old) as old:
        if "models" in wanted:
            models_figures(old)
        if "stall" in wanted:
            stall_figures(old)
        if "discover" in wanted:
            discover_figures(old)
        if "sidebar" in wanted:
            sidebar_figures(old)


if __name__ == "__main__":
    main()
