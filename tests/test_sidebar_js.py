"""The sidebar's model, commands and view by their own jest tests (js/test), run as
JupyterLab extensions run theirs; the browser tests (test_sidebar.py) prove them in Lab."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_sidebar_model_and_commands_pass_their_jest_tests(tmp_path: Path) -> None:
    assert shutil.which("node"), "Node.js is needed for the sidebar's tests (as for its build)"
    report_file = tmp_path / "jest.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    bash = shutil.which("bash") or "/bin/bash"
    run = subprocess.run([bash, str(ROOT / "js" / "test.sh"), "--json", f"--outputFile={report_file}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    report = json.loads(report_file.read_text())
    passed = {t["title"] for r in report["testResults"] for t in r["assertionResults"] if t["status"] == "passed"}
    assert report["success"] and report["numFailedTests"] == 0 and report["numPassedTests"] == len(passed)
    for expected in (
        "sends nothing and opens no socket while no view shows it",
        "refreshes the cluster list each interval, and only what an event concerns in between",
        "detach runs the same from a button (its name) and from a card’s context menu (the card)",
        "renders the model, and its buttons run the commands",
    ):
        assert expected in passed, f"missing: {expected}"
