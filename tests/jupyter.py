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
from dataclasses import dataclass
from pathlib import Path

from castray_nb.launch import free_ports


@dataclass
class JupyterServer:
    url: str
    token: str
    root: Path
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


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
    log_path = root / "server.log"
    log = open(log_path, "wb")
    server = subprocess.Popen(command, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{ip}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}{status_path}api/status?token={token}", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"{app} did not start:\n{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        yield JupyterServer(url, token, root, log_path)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # it shuts its kernels down
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
