"""A network namespace of a test's own: its loopback, its ports, nothing else.

Tests that must own fixed ports (Ray's defaults 6379, 8265, 10001) run where those ports
are free: here when they are, else again in a fresh namespace (root and iproute2, as on
these machines and in CI), so they never skip. The namespace is deleted afterwards, also
when the test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from castray_nb.launch import _port_free

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
