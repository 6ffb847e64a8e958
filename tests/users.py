"""Another Unix user on this machine, for the shared-machine tests: a user of the test's
own (``useradd -M``, removed after, also on failure), the folders it must pass through to
run this environment's Python, and processes run as it (``runuser``)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SPOOF = Path(__file__).with_name("spoof_ray.py")


@dataclass(frozen=True)
class User:
    name: str
    uid: int


def tool(name: str) -> str:
    """The absolute path of a system tool the tests need (root's sbin tools)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        pytest.skip(f"needs {name}")
    return found


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to make Unix users and run processes as them (CI runs as root)")


@contextlib.contextmanager
def unix_user() -> Iterator[User]:
    """A new Unix user with no home folder, deleted afterwards whatever happens."""
    needs_root()
    name = f"castray-{secrets.token_hex(3)}"
    subprocess.run([tool("useradd"), "-M", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        yield User(name, pwd.getpwnam(name).pw_uid)
    finally:
        _remove_user(name)


def _remove_user(name: str) -> None:
    """Kill what the user still runs, wait until it is gone (userdel refuses a user with a
    live process), then delete the user; fail loudly if it stays."""
    import psutil

    uid = pwd.getpwnam(name).pw_uid
    deadline = time.monotonic() + 30
    while True:
        left = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid]
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(left, timeout=2)
        removed = subprocess.run([tool("userdel"), name], check=False, capture_output=True, text=True)
        if removed.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"userdel {name} failed: {removed.stderr.strip()}")
        time.sleep(0.5)


@contextlib.contextmanager
def reachable_by_everyone(*paths: str | Path) -> Iterator[None]:
    """Let every user pass through (not list) the folders above ``paths``, for as long as
    the block runs: pyenv's Python lives under /root, which is 0700 here."""
    changed: list[tuple[Path, int]] = []
    try:
        for path in paths:
            for folder in reversed(Path(path).resolve().parents):
                mode = stat.S_IMODE(folder.stat().st_mode)
                if not mode & 0o001 and folder not in [c for c, _ in changed]:
                    os.chmod(folder, mode | 0o001)
                    changed.append((folder, mode))
        yield
    finally:
        for folder, mode in reversed(changed):
            os.chmod(folder, mode)


def python_paths() -> tuple[str, str]:
    """(this Python's real executable, this environment's site-packages)."""
    return os.path.realpath(sys.executable), sysconfig.get_paths()["purelib"]


@dataclass
class Spoof:
    """The two posing processes of :mod:`tests.spoof_ray`, run as ``user``."""

    user: User
    gcs_port: int
    dashboard_port: int
    session_name: str
    root: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.root / "log" / "seen.jsonl"

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def seen(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def assert_no_token(self, *tokens: str) -> None:
        """Nothing it was ever sent holds a token or an Authorization header."""
        raw = self.log.read_bytes() if self.log.exists() else b""
        for token in tokens:
            assert token.encode() not in raw, "the spoof received a token"
        for entry in self.seen():
            headers = {k.lower() for k in entry.get("headers", {})}
            assert "authorization" not in headers, f"the spoof got an Authorization header: {entry['path']}"
            keys = {k.lower() for k, _ in entry.get("metadata", [])}
            assert "authorization" not in keys, f"the spoof got gRPC metadata authorization: {entry['method']}"

    def start(self) -> Spoof:
        python, site = python_paths()
        (self.root / "log").mkdir(parents=True)
        (self.root / "dashboard").mkdir()
        shutil.copy(SPOOF, self.root / "dashboard" / "dashboard.py")
        (self.root / "gcs_server").symlink_to(python)  # so its process is called gcs_server
        session_dir = self.root / self.session_name
        session_dir.mkdir()
        for path in (self.root, self.root / "log", self.root / "dashboard", session_dir):
            shutil.chown(path, self.user.name)
        os.chmod(self.root, 0o755)
        script = str(self.root / "dashboard" / "dashboard.py")
        common = [f"--log={self.log}", f"--session-dir={session_dir}"]
        gcs = [str(self.root / "gcs_server"), script, "--role=gcs", f"--gcs_server_port={self.gcs_port}",
               "--node-ip-address=127.0.0.1", f"--session-name={self.session_name}", *common]  # fmt: skip
        dashboard = [python, script, "--role=dashboard", "--host=127.0.0.1", f"--port={self.dashboard_port}",
                     "--port-retries=0", f"--gcs-address={self.gcs_address}", f"--temp-dir={self.root}",
                     *common]  # fmt: skip
        for command in (gcs, dashboard):
            self.processes.append(
                subprocess.Popen(
                    [tool("runuser"), "-u", self.user.name, "--", "env", f"PYTHONPATH={site}", *command],
                    stdout=subprocess.DEVNULL,
                    stderr=open(self.root / "stderr.log", "ab"),
                    start_new_session=True,
                )  # fmt: skip
            )
        from castray_nb.core.owners import holder

        deadline = time.monotonic() + 30
        while not all(holder("127.0.0.1", p).uids == {self.user.uid} for p in (self.gcs_port, self.dashboard_port)):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                self.stop()
                raise RuntimeError(f"the spoof did not start: {(self.root / 'stderr.log').read_text()[-2000:]}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        self.processes.clear()


@contextlib.contextmanager
def spoof(user: User, session_name: str) -> Iterator[Spoof]:
    from castray_nb.launch import free_ports

    gcs_port, dashboard_port = free_ports(2)
    root = Path(tempfile.mkdtemp(prefix="castray-spoof-"))
    posing = Spoof(user, gcs_port, dashboard_port, session_name, root)
    try:
        yield posing.start()
    finally:
        posing.stop()
        shutil.rmtree(root, ignore_errors=True)
