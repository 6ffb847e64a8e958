"""A host given alone: Ray's default ports (GCS 6379, dashboard 8265, Ray Client 10001).

One real cluster on exactly those ports, in a temp dir of its own. When another program
on this machine holds any of them, the test runs again in a network namespace of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from IPython.core.error import UsageError

from castray_nb.core.address import DEFAULT_PORTS
from castray_nb.core.connector import resolve
from castray_nb.core.errors import ClusterUnreachable, InvalidAddress
from castray_nb.core.session import Session
from castray_nb.core.settings import Settings
from castray_nb.launch import LocalCluster
from castray_nb.testing.replay import ReplayDashboard
from tests.conftest import HOME
from tests.netns import run_where_ports_are_free
from tests.test_notebook_face import run, shell  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow
PORTS = [port for _, port in DEFAULT_PORTS]


def test_a_host_alone_finds_the_cluster_on_rays_default_ports(request, shell, settings: Settings) -> None:  # noqa: F811
    if not run_where_ports_are_free(request, PORTS):
        return  # it ran, and passed, in a network namespace of its own

    # Nothing there yet: the error names every port tried, and why, within the probe timeout.
    started = time.monotonic()
    with pytest.raises(ClusterUnreachable) as caught:
        resolve("127.0.0.1", settings)
    message = str(caught.value)
    assert "GCS 6379" in message and "dashboard 8265" in message and "Ray Client 10001" in message
    assert "connection refused" in message and time.monotonic() - started < 3

    # Only a dashboard on 8265 (a replay of a real one, on 127.0.0.1 only): that is what gets attached.
    with ReplayDashboard(nodes=3, session_name="session_2026-01-01_00-00-00_000000_8265", port=8265):
        info = resolve("127.0.0.1", settings)
    assert (info.name, info.gcs_address, info.dashboard_url) == (
        "session_2026-01-01_00-00-00_000000_8265",
        None,
        "http://127.0.0.1:8265",
    )

    cluster = LocalCluster(gcs_port=6379, dashboard_port=8265, client_port=10001, home=HOME)
    try:
        cluster.start()
        for host in ("127.0.0.1", "localhost", cluster.host_ip):
            info = resolve(host, settings)
            assert info.gcs_address and info.gcs_address.endswith(":6379"), host
            assert info.dashboard_url and info.dashboard_url.endswith(":8265"), host
            assert info.name.startswith("session_") and info.note is None

        # Two answers from different clusters: the GCS's cluster is attached, and the note says so.
        # (The GCS listens on every address, the dashboard on 127.0.0.1 only: 127.0.0.2:8265 is free.)
        with ReplayDashboard(nodes=2, session_name="session_2026-01-01_00-00-00_000000_2", host="127.0.0.2", port=8265):
            mixed = resolve("127.0.0.2", settings)
        assert mixed.gcs_address and mixed.gcs_address.endswith(":6379")
        assert mixed.name == info.name and mixed.dashboard_url == info.dashboard_url
        assert mixed.note and "session_2026-01-01_00-00-00_000000_2" in mixed.note and "8265" in mixed.note

        session = Session(settings)
        state = session.attach(resolve("localhost", settings), "default-ports")
        assert state.reachable and state.alive_nodes == 1 and state.via == "dashboard"

        # the magic and the CLI take a host alone too
        result = run(shell, "state = %castray connect 127.0.0.1 --name by-host")
        assert result.success and shell.user_ns["state"].alive_nodes == 1
        with pytest.raises(UsageError, match="wildcard"):
            shell.run_line_magic("castray", "connect 0.0.0.0")
        cli = subprocess.run(
            [sys.executable, "-m", "castray_nb.cli", "nodes", "--address", cluster.host_ip, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        rows = json.loads(cli.stdout)
        assert len(rows) == 1 and rows[0]["is_head"] and rows[0]["state"] == "ALIVE"
    finally:
        cluster.stop()


def test_a_host_alone_with_remote_addresses_off_sends_nothing() -> None:
    with pytest.raises(InvalidAddress, match="remote addresses are off"):
        resolve("198.51.100.7", Settings(remote=False))
