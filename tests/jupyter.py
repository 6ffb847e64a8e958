"""A real Jupyter server for tests: its own dirs, its own process group, always stopped."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from castray_nb.launch import free_ports


@dataclass
class JupyterServer:
    url: str
    token: str
    root: Path
    log: Path
    command: list[str] = field(repr=False, default_factory=list)
    env: dict[str, str] = field(repr=False, default_factory=dict)
    status_path: str = "/"
    process: subprocess.Popen | None = field(repr=False, default=None)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                url = f"{self.url}{self.status_path}api/status?token={self.token}"
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{self.command[2]} did not start:\n{self.log_tail(2000)}")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # it shuts its kernels down
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Stop and start again: the same port, token and dirs (as a user's restart, or
        JupyterHub starting a culled server again)."""
        self.stop()
        self.start()


@contextlib.contextmanager
def jupyter_server(
    app: str = "jupyter_server",
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    status_path: str = "/",
    ip: str = "127.0.0.1",
) -> Iterator[JupyterServer]:
    """``python -m <app>`` (``jupyter_server`` or ``jupyterlab``) on 127.0.0.1 with a token.

    The sys-prefix configuration (where pip put castray_nb's extension switch) stays
    visible; the user's own Jupyter dirs are replaced by temporary ones.
    """
    root = Path(tempfile.mkdtemp(prefix="castray-jupyter-"))
    (port,) = free_ports(1)
    token = os.urandom(16).hex()
    full_env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / "config"),
                "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "JUPYTER_DATA_DIR": str(root / "data"),
                **(env or {})}  # fmt: skip
    full_env.pop("JUPYTER_PATH", None)
    command = [sys.executable, "-m", app, "--no-browser", "--allow-root", f"--ip={ip}", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", *args]  # fmt: skip
    server = JupyterServer(f"http://{ip}:{port}", token, root, root / "server.log", command, full_env, status_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
