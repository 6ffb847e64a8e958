"""A real Prometheus server for tests (Debian's ``prometheus`` package): its own dirs, its
own process group, scraping the Ray clusters whose service-discovery files it is given, and
always stopped."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from castray_nb.launch import free_ports

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SCRAPE_S = 1


@dataclass
class PrometheusServer:
    url: str
    data: Path
    log: Path
    process: subprocess.Popen

    def query(self, promql: str) -> list[dict[str, object]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/query?query={urllib.request.quote(promql)}", timeout=10) as r:
            return json.loads(r.read())["data"]["result"]

    def disk_bytes(self) -> int:
        """What its TSDB takes on disk now (the head's WAL and chunks, and any blocks)."""
        return sum(p.stat().st_size for p in self.data.rglob("*") if p.is_file())


@contextlib.contextmanager
def prometheus_server(discovery_files: Sequence[str | Path]) -> Iterator[PrometheusServer]:
    """Prometheus scraping every ``SCRAPE_S`` seconds the targets Ray lists in
    ``prom_metrics_service_discovery.json`` (``file_sd_configs``, as Ray's docs set it up)."""
    if not os.access(PROMETHEUS, os.X_OK):
        raise RuntimeError("Prometheus is needed for this test: apt-get install prometheus")
    root = Path(tempfile.mkdtemp(prefix="castray-prometheus-"))
    (port,) = free_ports(1)
    config = root / "prometheus.yml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
        "scrape_configs": [{"job_name": "ray", "file_sd_configs": [{"files": [str(f) for f in discovery_files],
                                                                    "refresh_interval": "1s"}]}],
    }))  # fmt: skip
    log = root / "prometheus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = PrometheusServer(f"http://127.0.0.1:{port}", root / "data", log, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"Prometheus did not start:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(root, ignore_errors=True)
