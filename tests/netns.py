"""A network namespace of a test's own: its loopback, its ports, nothing else.

Tests that must own fixed ports (Ray's defaults 6379, 8265, 10001) run where those ports
are free: here when they are, else again in a fresh namespace (root and iproute2, as on
these machines and in CI), so they never skip. The namespace is deleted afterwards, also
when the test fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from castray_nb.launch import LocalNode, _port_free

INSIDE = "CASTRAY_TEST_NETNS"  # set in the environment of a test re-run inside a namespace
ROOT = Path(__file__).resolve().parent.parent
IP = shutil.which("ip") or "/usr/sbin/ip"


@contextmanager
def own_netns() -> Iterator[str]:
    """A fresh network namespace like a machine of its own: its loopback, and one end of
    a veth pair whose both ends stay inside (10.213.9.1/24, the default route), which
    stands for the machine's own address, as Ray wants one. Nothing sent there leaves the
    namespace. Yields its name."""
    name = f"castray-{uuid.uuid4().hex[:10]}"
    subprocess.run([IP, "netns", "add", name], check=True, capture_output=True)
    try:
        for args in (
            ["link", "set", "lo", "up"],
            ["link", "add", "own0", "type", "veth", "peer", "name", "own1"],
            ["addr", "add", "10.213.9.1/24", "dev", "own0"],
            ["link", "set", "own0", "up"],
            ["link", "set", "own1", "up"],
            ["route", "add", "default", "dev", "own0"],
        ):
            subprocess.run([IP, "-n", name, *args], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run([IP, "netns", "delete", name], capture_output=True)


def run_where_ports_are_free(request: pytest.FixtureRequest, ports: Sequence[int]) -> bool:
    """True when the calling test should go on here (its ports are free). Otherwise the
    test is run again, whole, in a namespace of its own, its outcome asserted, and False
    returned: the caller returns at once."""
    taken = [port for port in ports if not _port_free(port)]
    if not taken:
        return True
    if os.environ.get(INSIDE):
        pytest.fail(f"port(s) {taken} are taken even inside the test's own network namespace")
    if os.geteuid() != 0 or not Path(IP).exists():
        pytest.fail(f"port(s) {taken} are taken here, and no network namespace can be made (needs root and ip)")
    with own_netns() as name:
        result = subprocess.run(
            [IP, "netns", "exec", name, sys.executable, "-m", "pytest", request.node.nodeid,
             "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra"],
            cwd=ROOT, env={**os.environ, INSIDE: name}, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
    assert result.returncode == 0, f"in namespace {name} (ports {taken} are taken here):\n{tail}"
    assert " passed" in result.stdout and " skipped" not in result.stdout, tail
    return False


@contextmanager
def lan(hosts: dict[str, tuple[str, bool]], bridge_ip: str) -> Iterator[dict[str, str]]:
    """Machines on one network, as namespaces on a bridge here: ``hosts`` maps a label to
    (its address, whether its link is up). A host whose link is down holds its address and
    answers nothing, not even ARP: a machine that is off. This machine is ``bridge_ip`` on
    the bridge. Yields label -> namespace name; all of it is deleted after, also on failure."""
    import ipaddress

    import psutil

    network = ipaddress.ip_network(f"{bridge_ip}/24", strict=False)
    taken = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
             if a.family == socket.AF_INET and ipaddress.ip_address(a.address) in network]  # fmt: skip
    if taken:
        pytest.fail(f"{network} is in use here already ({', '.join(taken)}): another test's network was left behind")
    tag = uuid.uuid4().hex[:6]
    bridge = f"cb{tag}"
    made: dict[str, str] = {}

    def ip(*args: str) -> None:
        subprocess.run([IP, *args], check=True, capture_output=True)

    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", f"{bridge_ip}/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        for i, (label, (address, up)) in enumerate(hosts.items()):
            name = f"castray-{tag}-{label}"
            outer, inner = f"co{tag}{i}", f"ci{tag}{i}"
            ip("netns", "add", name)
            made[label] = name
            ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            ip("link", "set", inner, "netns", name)
            ip("link", "set", outer, "master", bridge)
            ip("link", "set", outer, "up")
            ip("-n", name, "addr", "add", f"{address}/24", "dev", inner)
            ip("-n", name, "link", "set", "lo", "up")
            if up:
                ip("-n", name, "link", "set", inner, "up")
        yield made
    finally:
        for name in made.values():
            subprocess.run([IP, "netns", "delete", name], capture_output=True)  # takes its veth pair along
        subprocess.run([IP, "link", "delete", bridge], capture_output=True)


def ray_node(ns: str, ip: str, home: Path, *, head: str | None = None, gcs_port: int = 6379,
             dashboard_port: int = 8265, client_port: int = 10001) -> LocalNode:  # fmt: skip
    """``ray start --block`` in namespace ``ns`` on ``ip``: a head on the given ports, or a
    worker of ``head`` (its GCS address). Its other ports are free ones here (a namespace
    of its own has them all free too); HOME and temp dir are under ``home``."""
    from castray_nb.launch import _free_range, _ray_executable, free_ports

    fixed = {gcs_port, dashboard_port, client_port}
    base = _free_range(64, avoid=fixed)
    agent, agent_grpc, metrics, runtime_env = free_ports(4, avoid={*fixed, *range(base, base + 64)})
    role = ["--head", "--port", str(gcs_port), "--dashboard-host", "0.0.0.0", "--dashboard-port", str(dashboard_port),
            "--ray-client-server-port", str(client_port)] if head is None else ["--address", head]  # fmt: skip
    args = [IP, "netns", "exec", ns, _ray_executable(), "start", *role, "--block", "--node-ip-address", ip,
            "--temp-dir", str(home / "ray"), "--num-cpus", "1", "--min-worker-port", str(base),
            "--max-worker-port", str(base + 63), "--dashboard-agent-listen-port", str(agent),
            "--dashboard-agent-grpc-port", str(agent_grpc), "--metrics-export-port", str(metrics),
            "--runtime-env-agent-port", str(runtime_env), "--disable-usage-stats"]  # fmt: skip
    env = {**os.environ, "HOME": str(home), "RAY_BACKEND_LOG_LEVEL": "error"}
    home.mkdir(parents=True, exist_ok=True)
    return LocalNode(args, env, home / ("head.log" if head is None else "worker.log"))


def wait_for_alive_nodes(dashboard: str, count: int, nodes: Sequence[LocalNode], timeout: float = 180) -> None:
    """Until the State API at ``dashboard`` (an address inside a namespace the test made)
    lists ``count`` ALIVE nodes; fails the test with the nodes' logs after ``timeout``."""
    import time

    from castray_nb.core.http import get_json

    deadline = time.monotonic() + timeout
    alive = 0
    while time.monotonic() < deadline:
        try:
            reply = get_json(f"{dashboard}/api/v0/nodes", 5)
            alive = sum(n["state"] == "ALIVE" for n in reply["data"]["result"]["result"])
        except Exception:  # not up yet
            alive = 0
        if alive >= count:
            return
        if any(not node.running for node in nodes):
            break
        time.sleep(1)
    tails = "\n".join(node.log_tail() for node in nodes)
    pytest.fail(f"{dashboard} lists {alive} ALIVE node(s), not {count}:\n{tails}")
