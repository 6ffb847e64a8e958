"""jupyter-server-proxy's ``/proxy/<port>/`` beside castray_nb's dashboard proxy and the
dashboard itself: one Jupyter server with both extensions, one throwaway head, 50 GETs of
``/api/v0/nodes`` each, twice, interleaved. Also prints what jupyter-server-proxy sends
with a page (its Content-Security-Policy) and whether it proxies to Jupyter's own port.

    pip install --target /tmp/jsp --no-deps jupyter-server-proxy simpervisor
    python benchmarks/jupyter_server_proxy.py /tmp/jsp

jupyter-server-proxy is not a dependency: this is how the choice of Tornado's own client
was measured (README, "Dashboards through Jupyter").
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

os.environ["HOME"] = tempfile.mkdtemp(prefix="castray-bench-home-")

from castray_nb.launch import LocalCluster, free_ports  # noqa: E402


def gets(base: str, headers: dict[str, str]) -> list[float]:
    times = []
    for i in range(55):
        started = time.perf_counter()
        urllib.request.urlopen(urllib.request.Request(base + "api/v0/nodes", headers=headers), timeout=30).read()
        if i >= 5:  # warm-up
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    jsp_path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/jsp"
    cluster = LocalCluster(home=os.environ["HOME"]).start()
    root = tempfile.mkdtemp(prefix="castray-bench-jupyter-")
    (port,) = free_ports(1)
    token = os.urandom(8).hex()
    env = {**os.environ, "PYTHONPATH": jsp_path, "JUPYTER_CONFIG_DIR": f"{root}/c",
           "JUPYTER_RUNTIME_DIR": f"{root}/r", "JUPYTER_DATA_DIR": f"{root}/d"}  # fmt: skip
    command = [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--ServerApp.jpserver_extensions=jupyter_server_proxy=True"]  # fmt: skip
    with open(f"{root}/log", "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    jupyter = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"token {token}"}
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{jupyter}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        body = json.dumps({"cluster_address": cluster.dashboard_url, "name": "bench"}).encode()
        request = urllib.request.Request(f"{jupyter}/castray/api/cluster/connect-external", data=body, headers=auth,
                                         method="POST")  # fmt: skip
        ours = jupyter + json.load(urllib.request.urlopen(request))["cluster"]["dashboard_link"]
        assert cluster.dashboard_url
        theirs = f"{jupyter}/proxy/{cluster.dashboard_url.rsplit(':', 1)[1]}/"
        results: dict[str, list[float]] = {"castray_nb": [], "jupyter-server-proxy": [], "direct": []}
        for _ in range(2):
            results["castray_nb"] += gets(ours, {})
            results["jupyter-server-proxy"] += gets(theirs, auth)
            results["direct"] += gets(cluster.dashboard_url + "/", {})
        for name, times in results.items():
            times.sort()
            p95 = times[int(0.95 * len(times)) - 1]
            median = statistics.median(times)
            print(f"{name:22} median {median * 1000:.1f} ms  p95 {p95 * 1000:.1f} ms  (n={len(times)})")
        reply = urllib.request.urlopen(urllib.request.Request(theirs, headers=auth))
        policy = reply.headers.get("Content-Security-Policy")
        print("jupyter-server-proxy's Content-Security-Policy on the dashboard:", policy)
        reply = urllib.request.urlopen(urllib.request.Request(f"{jupyter}/proxy/{port}/api/kernels", headers=auth))
        print("jupyter-server-proxy, /proxy/<Jupyter's own port>/api/kernels:", reply.status)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
        cluster.stop()


if __name__ == "__main__":
    main()
