"""castray-nb beside the Ray a user already has: figures side by side in one run.

    python benchmarks/versions.py --env .venv --env .venv-ray240 [--repeat N] [--install-ray 2.40.0]

For each environment (a virtual environment with castray-nb installed beside its own Ray)
it starts one head with that environment's Ray, then times cold ``castray-nb discover
--json`` and ``castray-nb nodes --address GCS --json`` beside that environment's own
``ray list nodes``. With ``--install-ray`` it also times, in a new environment with pip's
cache warm, installing ``ray[default]==VERSION`` and then castray-nb beside it (and what pip
installed for castray-nb, by its ``--report``). Medians;
no pass/fail: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import HOME, Table, machine, timed_process  # noqa: E402

from castray_nb.launch import LocalCluster  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def ray_version(env: Path) -> str:
    code = "from importlib.metadata import version; print(version('ray'))"
    return subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def env_figures(table: Table, env: Path, n: int) -> None:
    version = ray_version(env)
    castray, ray_cli = str(env / "bin" / "castray-nb"), str(env / "bin" / "ray")
    with LocalCluster(home=HOME, ray=ray_cli) as cluster:
        ray_list = timed_process([ray_cli, "list", "nodes", "--address", str(cluster.dashboard_url)], n)
        discover = timed_process([castray, "discover", "--json"], n)
        nodes = timed_process([castray, "nodes", "--address", cluster.gcs_address, "--json"], n)
    table.add(f"Ray {version}: castray-nb discover --json", discover, "ray list nodes --address A", ray_list)
    table.add(f"Ray {version}: castray-nb nodes --address A --json", nodes, "ray list nodes --address A", ray_list)


def install_figures(table: Table, version: str) -> None:
    """A new environment: Ray first (as the user has it), then castray-nb beside it; what
    pip installed the second time, by its own report."""
    folder = Path(tempfile.mkdtemp(prefix="castray-bench-venv-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        started = time.perf_counter()
        subprocess.run([*pip, f"ray[default]=={version}"], check=True, timeout=1800)
        ray_s = time.perf_counter() - started
        report = folder / "report.json"
        started = time.perf_counter()
        subprocess.run([*pip, "--report", str(report), str(ROOT)], check=True, timeout=1800)
        ours_s = time.perf_counter() - started
        installed = [item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]]
        kept = ray_version(folder)
        table.add(f"pip install castray-nb beside Ray {version}", ours_s, f"pip install ray[default]=={version}", ray_s)
        table.figure(
            "  what it installed",
            f"{len(installed)} packages",
            note=f"ray {'REINSTALLED' if 'ray' in installed else 'not among them'}; Ray is {kept} after",
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", required=True, type=Path, help="a venv with castray-nb and its Ray")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--install-ray", metavar="VERSION", help="also time installing beside this Ray")
    args = parser.parse_args()
    print(machine())
    print(f"  {'measurement':<48} {'castray_nb':>10}   {'alternative':<34} {'theirs':>10}  ratio")
    table = Table()
    for env in args.env:
        env_figures(table, env.resolve(), args.repeat)
    if args.install_ray:
        install_figures(table, args.install_ray)
    print()
    print(table.markdown())
    print(f"\nEach time is a median of {args.repeat} runs; the install, one run with pip's cache warm.")


if __name__ == "__main__":
    main()
