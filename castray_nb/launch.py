"""Throwaway Ray clusters as separate processes: for the demo, the tests and the notebook.

Each node is one ``ray start --block`` process in its own process group. Stopping sends
SIGTERM to that process (it drains and stops what it started) and, if anything is
left after the grace period, SIGKILL to its group. Never ``ray stop``: that would kill
every Ray process on the machine.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Container
from pathlib import Path

from .core.errors import CastrayError

_RAY_START_TIMEOUT = 120.0
_running: set[LocalNode] = set()


@atexit.register
def stop_all() -> None:
    """Stop every node this process started and has not stopped (a safety net)."""
    for node in list(_running):
        node.stop(grace=10)


def _ephemeral_low() -> int:
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int, avoid: Container[int] = ()) -> list[int]:
    """Ports free right now, taken from below the OS's ephemeral range.

    Ray's own processes bind port 0 while they start; a port the OS handed us from the
    ephemeral range can be handed to one of them before our node binds it (seen: two
    heads starting at once, one raylet timing out). Below that range the OS hands out none.
    """
    low, high = 10_000, max(10_500, _ephemeral_low() - 1)
    picked: list[int] = []
    while len(picked) < count:
        port = random.randrange(low, high)
        if port not in picked and port not in avoid and _port_free(port):
            picked.append(port)
    return picked


def _free_range(width: int, avoid: Container[int] = ()) -> int:
    """The first port of ``width`` consecutive ports that are free right now (and hold
    none of ``avoid``)."""
    for _ in range(200):
        (base,) = free_ports(1)
        if any(p in avoid for p in range(base, base + width)):
            continue
        if all(_port_free(p) for p in range(base, base + width, max(1, width // 8))):
            return base
    raise CastrayError("no free port range found for Ray workers")


def _port_free(port: int) -> bool:
    """Whether a server could bind ``port`` now (as servers do, with SO_REUSEADDR: a
    closed connection lingering in TIME_WAIT does not hold a port)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def _ray_executable() -> str:
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else (shutil.which("ray") or "ray")


class LocalNode:
    """One ``ray start --block`` process: a head, or a worker joined to a head."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                args,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: we stop exactly it
            )
        _running.add(self)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM to the ``ray start`` process, then SIGKILL to its group if needed."""
        pgid = self.process.pid
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:  # children it could not stop in time, and nothing else
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.running:
            self.process.wait(5)
        _running.discard(self)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class LocalCluster:
    """A head node (and optional workers) on this machine, with ports of its own.

    >>> with LocalCluster() as cluster:            # doctest: +SKIP
    ...     print(cluster.gcs_address, cluster.dashboard_url)

    ``home`` gives the cluster a HOME of its own (so a token in the real home does
    not apply); ``token`` turns on token auth (``RAY_AUTH_MODE=token``) with that token;
    ``dashboard_port=0`` lets Ray pick (8265, moving up when taken). ``user`` runs its
    nodes as another Unix user (through ``runuser``, so only root can): a cluster of
    someone else on a shared machine, for tests. ``ray`` is the ``ray`` executable of
    another installation, for a cluster of another Ray version.
    """

    def __init__(
        self,
        *,
        dashboard: bool = True,
        num_cpus: int = 1,
        temp_dir: str | None = None,
        home: str | None = None,
        token: str | None = None,
        dashboard_port: int | None = None,
        gcs_port: int | None = None,
        client_port: int | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        ray: str | None = None,
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="castray-cluster-"))
        self.user = user
        self.ray = ray or _ray_executable()
        if user:  # its files are its own: Ray writes its temp dir and HOME as that user
            for folder in (self.root, *([Path(home)] if home else [])):
                shutil.chown(folder, user)
        self.temp_dir = temp_dir or str(self.root / "ray")
        self.home = home
        self.token = token
        self.dashboard = dashboard
        self.num_cpus = num_cpus
        self.extra_env = dict(env or {})
        picked_gcs_port, picked_dashboard_port, picked_client_port = free_ports(3)
        self.client_port = client_port or picked_client_port
        self._chosen = {
            "gcs": gcs_port is not None,
            "dashboard": dashboard_port is not None,
            "client": bool(client_port),
        }
        self.gcs_port = gcs_port or picked_gcs_port
        self.dashboard_port = picked_dashboard_port if dashboard_port is None else dashboard_port
        self.host_ip = _host_ip()
        self.head: LocalNode | None = None
        self.workers: list[LocalNode] = []

    @property
    def gcs_address(self) -> str:
        return f"{self.host_ip}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str | None:
        """Where the dashboard was asked to listen (None when Ray picks the port)."""
        return f"http://127.0.0.1:{self.dashboard_port}" if self.dashboard and self.dashboard_port else None

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("RAY_ADDRESS", None)
        if self.home:
            env["HOME"] = self.home
        if self.token:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        env.update(self.extra_env)
        return env

    def _as_user(self, args: list[str]) -> list[str]:
        """``args`` as the cluster's user; runuser sets HOME to that user's, so it is set again."""
        if not self.user:
            return args
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin") or "runuser"
        return [runuser, "-u", self.user, "--", "env", f"HOME={self.home or self.root}", *args]

    def _node_args(self) -> list[str]:
        # ray start refuses a port two components share: the head's own ports, the workers'
        # range and the agents' ports never overlap
        own = {self.gcs_port, self.dashboard_port, self.client_port}
        base = _free_range(64, avoid=own)
        agent, agent_grpc, metrics, runtime_env = free_ports(4, avoid=own | set(range(base, base + 64)))
        return [
            "--block",
            "--num-cpus",
            str(self.num_cpus),
            "--min-worker-port",
            str(base),
            "--max-worker-port",
            str(base + 63),
            "--dashboard-agent-listen-port",
            str(agent),
            "--dashboard-agent-grpc-port",
            str(agent_grpc),
            "--metrics-export-port",
            str(metrics),
            "--runtime-env-agent-port",
            str(runtime_env),
            "--disable-usage-stats",
        ]

    def start(self, timeout: float = _RAY_START_TIMEOUT) -> LocalCluster:
        """Start the head and wait until it lists itself as an ALIVE node."""
        return self.launch().wait_ready(timeout)

    def logs_tail(self, lines: int = 6) -> str:
        """The last lines of the raylet's and GCS's own logs (why a node did not come up)."""
        parts = []
        for name in ("raylet.err", "raylet.out", "gcs_server.err"):
            for path in Path(self.temp_dir).glob(f"session_*/logs/{name}"):
                text = path.read_text(errors="replace").strip().splitlines()[-lines:]
                if text:
                    parts.append(f"--- {path.name}:\n" + "\n".join(text))
        return "\n".join(parts)

    def launch(self) -> LocalCluster:
        """Start the head's process and return at once (see :meth:`wait_ready`)."""
        args = [
            self.ray,
            "start",
            "--head",
            "--temp-dir",
            self.temp_dir,
            "--port",
            str(self.gcs_port),
            "--ray-client-server-port",
            str(self.client_port),
            *self._node_args(),
        ]
        if not self.dashboard:
            args += ["--include-dashboard=false"]
        if self.dashboard_port:
            args += ["--dashboard-port", str(self.dashboard_port)]
        if self.dashboard:
            args += ["--dashboard-host", "127.0.0.1"]
        self.head = LocalNode(self._as_user(args), self.environment(), self.root / "head.log")
        return self

    def wait_ready(self, timeout: float = _RAY_START_TIMEOUT) -> LocalCluster:
        """Wait until the head lists itself as an ALIVE node; stop it if it never does.

        When ``ray start`` itself fails (a port taken meanwhile, an overloaded machine),
        the head is started once more with new ports.
        """
        for attempt in (1, 2):
            try:
                self.wait_for_nodes(1, timeout)
                return self
            except CastrayError as exc:
                head = self.head
                failed_itself = head is not None and not head.running
                if head is not None:
                    head.stop()
                if attempt == 2 or not failed_itself:
                    detail = self.logs_tail()
                    self.stop()
                    raise CastrayError(f"{exc}\n{detail}" if detail else str(exc)) from None
                gcs_port, dashboard_port, client_port = free_ports(3)  # the caller's own ports stay
                self.client_port = self.client_port if self._chosen["client"] else client_port
                self.gcs_port = self.gcs_port if self._chosen["gcs"] else gcs_port
                self.dashboard_port = self.dashboard_port if self._chosen["dashboard"] else dashboard_port
                self.launch()
            except BaseException:
                self.stop()
                raise
        return self

    def add_worker(self, timeout: float = _RAY_START_TIMEOUT) -> LocalNode:
        """Join one more node (a separate ``ray start`` process) and wait until it is ALIVE.

        Ports are picked free but may be taken before Ray binds them; when ``ray start``
        itself fails, it is tried once more with new ports.
        """
        before = self.alive_nodes()
        for attempt in (1, 2):
            args = [self.ray, "start", "--address", self.gcs_address, *self._node_args()]
            worker = LocalNode(
                self._as_user(args), self.environment(), self.root / f"worker{len(self.workers)}-{attempt}.log"
            )
            self.workers.append(worker)
            try:
                self.wait_for_nodes(before + 1, timeout, node=worker)
                return worker
            except CastrayError:
                worker.stop()
                if worker.process.returncode in (None, 0, -signal.SIGTERM, -signal.SIGKILL) or attempt == 2:
                    raise
            except BaseException:
                worker.stop()
                raise
        raise AssertionError("unreachable")

    def alive_nodes(self) -> int:
        from .core.auth import Token
        from .core.client import ClusterClient
        from .core.errors import CastrayError as _Error
        from .core.settings import Settings

        token = Token(self.token, "the cluster's own") if self.token else None
        settings = Settings(http_timeout=2.0, gcs_timeout=3.0)
        # With a dashboard, only its State API counts: it listens a few seconds before it
        # answers, and a cluster is ready for its users when it answers.
        gcs = None if self.dashboard_url else self.gcs_address
        client = ClusterClient(gcs, self.dashboard_url, settings, token=token)
        try:
            return sum(n.state == "ALIVE" for n in client.read(cluster="launch").nodes)
        except _Error:
            return 0

    def wait_for_nodes(self, count: int, timeout: float, node: LocalNode | None = None) -> None:
        node = node or self.head
        assert node is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not node.running:
                raise CastrayError(f"ray start exited with code {node.process.returncode}:\n{node.log_tail()}")
            if self.alive_nodes() >= count:
                return
            time.sleep(0.5)
        raise CastrayError(f"the cluster did not list {count} ALIVE node(s) within {timeout:g} s")

    def stop(self) -> None:
        """Stop every node this object started (workers first) and remove its files."""
        for worker in self.workers:
            worker.stop()
        if self.head is not None:
            self.head.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start() if self.head is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _host_ip() -> str:
    """The address Ray binds to on this machine (its outward interface)."""
    import psutil

    for name, addresses in psutil.net_if_addrs().items():
        if name == "lo":
            continue
        for entry in addresses:
            if entry.family == socket.AF_INET and not entry.address.startswith("127."):
                return entry.address
    return "127.0.0.1"
