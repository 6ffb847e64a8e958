"""A kernel's own ``ray.init()`` is recorded too: the notebook that starts a cluster, trains
on it and shuts it down. The "kernel" is a Python process of its own (its own HOME, so its
``ray.init()`` writes its token there, and its own Jupyter data dir); the history is then
read through the command line, as a user would the next morning.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

# The kernel: castray_nb's session (it records, as every kernel's does), then ray.init(),
# a task that keeps one CPU busy while the session refreshes, then ray.shutdown().
_KERNEL = r"""
import json, time, ray, castray_nb
s = castray_nb.session()
ray.init(num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1", logging_level="ERROR", log_to_driver=False)

@ray.remote(num_cpus=1)
def spin(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass

deadline = time.time() + 60
while time.time() < deadline:  # the dashboard starts a little after ray.init() returns
    s.refresh()
    row, = s.rows(source="local")
    if row.cpu_percent is not None and row.CPU_used is not None:
        break
    time.sleep(0.5)
busy_from = time.time()
ref = spin.remote(8)
for _ in range(8):
    time.sleep(1)
    s.refresh()
ray.get(ref)
busy_to = time.time()
row, = s.rows(source="local")
ray.shutdown()
shut_at = time.time()
s.refresh()
print(json.dumps({"cluster": row.cluster, "node_id": row.node_id, "busy_from": busy_from, "busy_to": busy_to,
                  "shut_at": shut_at, "left": len(s.rows(source="local"))}))
"""


def at(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def cli(data_dir: Path, *args: str) -> Any:
    env = {**os.environ, "JUPYTER_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, "-m", "castray_nb.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_a_kernels_own_ray_init_is_recorded_and_ends_with_its_shutdown() -> None:
    home = Path(tempfile.mkdtemp(prefix="castray-kernel-home-"))
    data_dir = home / "jupyter"
    env = {**os.environ, "HOME": str(home), "RAY_TMPDIR": str(home), "JUPYTER_DATA_DIR": str(data_dir),
           "CASTRAY_REFRESH_INTERVAL": "1"}  # fmt: skip
    env.pop("RAY_ADDRESS", None)
    kernel = subprocess.Popen([sys.executable, "-c", _KERNEL], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)  # fmt: skip
    try:
        out, err = kernel.communicate(timeout=240)
    finally:
        if kernel.poll() is None:
            os.killpg(kernel.pid, signal.SIGKILL)
            kernel.wait()
    assert kernel.returncode == 0, err[-3000:]
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["left"] == 0, "the local rows leave with ray.shutdown()"
    name, node = seen["cluster"], seen["node_id"]
    assert name.startswith("session_"), "recorded under its session name, as its rows' cluster"

    rows = cli(data_dir, "history", "--json", "--cluster", name, "--since", "1h")
    mine = [r for r in rows if r["node_id"] == node]
    metrics = {r["metric"] for r in mine}
    assert {"alive", "CPU_used", "cpu_percent", "host_memory_used_bytes"} <= metrics, metrics
    # Points are 10 s buckets' means: the bucket the 8 s task filled has a mean of CPU_used
    # over 0, and no bucket before the task began has one.
    used = [(at(r["time"]), r["value"]) for r in mine if r["metric"] == "CPU_used"]
    assert max(v for _, v in used) > 0.3, used
    assert all(v == 0 for t, v in used if t + 10 <= seen["busy_from"]), used
    totals = {r["metric"] for r in rows if r["node_id"] is None}
    assert {"nodes_alive", "CPU"} <= totals

    events = cli(data_dir, "events", "--json", "--cluster", name, "--since", "1h")
    (ended_event,) = [e for e in events if e["kind"] == "cluster_ended"]
    assert "ray.shutdown()" in ended_event["message"]
    (ended,) = [c for c in cli(data_dir, "ended", "--json") if c["session_name"] == name]
    assert seen["shut_at"] - 1 <= at(ended["ended_at"]) <= seen["shut_at"] + 30, (ended, seen)
    assert [n["node_id"] for n in ended["snapshot"]["nodes"]] == [node]
