"""Another process's ``ray.init()``: the "other notebook" that owns a cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Both scripts end here: stay a driver until SIGTERM, then leave Ray cleanly.
_UNTIL_SIGTERM = r"""
def bye(*_):
    ray.shutdown()
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
while True:
    time.sleep(1)
"""

_SCRIPT = (
    r"""
import json, signal, sys, time, ray
ray.init(address="local", num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1",
         logging_level="ERROR", log_to_driver=False)
ctx = ray.get_runtime_context()
print(json.dumps({"gcs_address": ctx.gcs_address,
                  "dashboard_url": ray._private.worker.get_dashboard_url()}), flush=True)
"""
    + _UNTIL_SIGTERM
)


class OtherDriver:
    """A separate Python process that called ``ray.init()`` (it starts its own cluster).

    It gets a HOME of its own: Ray 2.60 turns token auth on and writes
    ``$HOME/.ray/auth_token`` for a local ``ray.init()``.
    """

    def __init__(self) -> None:
        self.home = tempfile.mkdtemp(prefix="castray-driver-home-")
        self.process, info = _start(_SCRIPT, (), {"HOME": self.home, "RAY_TMPDIR": self.home}, "ray.init()")
        self.gcs_address: str = info["gcs_address"]
        self.dashboard_url: str = "http://" + info["dashboard_url"]

    @property
    def token_path(self) -> Path:
        return Path(self.home) / ".ray" / "auth_token"

    def stop(self) -> None:
        _stop(self.process)
        time.sleep(0.2)
        shutil.rmtree(self.home, ignore_errors=True)


_ACTORS_SCRIPT = (
    r"""
import json, signal, sys, time, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(address=sys.argv[1], namespace="castray-test", logging_level="ERROR", log_to_driver=False)

@ray.remote(num_cpus=0)
class Keeper:
    def ping(self):
        return "pong"

@ray.remote(num_cpus=0.01)
class Counter:
    def ping(self):
        return "pong"

nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
def on(i):
    return NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=False)

made = {
    "keeper-a": Keeper.options(name="keeper-a", scheduling_strategy=on(0)).remote(),
    "keeper-b": Keeper.options(name="keeper-b", scheduling_strategy=on(1)).remote(),
    None: Counter.options(scheduling_strategy=on(0)).remote(),
    "counter-2": Counter.options(name="counter-2", scheduling_strategy=on(1)).remote(),
}
doomed = Keeper.options(name="doomed").remote()
ray.get([a.ping.remote() for a in made.values()] + [doomed.ping.remote()])
ray.kill(doomed)
print(json.dumps({"alive": {str(k): a._actor_id.hex() for k, a in made.items()},
                  "dead": doomed._actor_id.hex(), "nodes": nodes}), flush=True)
"""
    + _UNTIL_SIGTERM
)


class ActorDriver:
    """A separate process that joins a cluster as a driver and keeps actors there: two
    named ``Keeper``, one unnamed and one named ``Counter`` (0.01 CPU), spread over the
    cluster's nodes, and one killed (``doomed``, DEAD). ``alive``: name -> actor id."""

    def __init__(self, gcs_address: str, home: str) -> None:
        self.process, info = _start(_ACTORS_SCRIPT, (gcs_address,), {"HOME": home}, "actor driver")
        self.alive: dict[str, str] = info["alive"]
        self.dead: str = info["dead"]
        self.nodes: list[str] = info["nodes"]

    def stop(self) -> None:
        _stop(self.process)


def _start(script: str, args: tuple[str, ...], env: dict[str, str], what: str) -> tuple[subprocess.Popen[str], dict]:
    """Run ``script`` in its own process group; its first stdout line is JSON about itself."""
    full_env = {**os.environ, **env}
    full_env.pop("RAY_ADDRESS", None)
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        _stop(process)
        raise RuntimeError(f"the {what} failed to start")
    return process, json.loads(line)


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM (the script shuts Ray down), then SIGKILL to whatever is left of its group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
