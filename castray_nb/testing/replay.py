"""A REPLAY dashboard: a test and benchmark tool, not a Ray cluster.

It answers the dashboard endpoints castray_nb reads (``/api/version``,
``/api/v0/nodes``, ``/api/cluster_status``, ``/api/jobs/``, ``/nodes?view=summary``) with replies captured from a
real Ray 2.60 cluster (``captured/``, made by ``tests/data/capture.py``), scaled to N nodes: distinct
node ids and addresses, every ``dead_every``-th worker DEAD, GPUs on every
``gpu_every``-th node. Like Ray's State API it returns 100 rows unless asked for more
and refuses a ``limit`` above ``max_limit`` (Ray: 10,000).

    with ReplayDashboard(nodes=2500) as url:
        ClusterClient(None, url).read(cluster="big")
"""

from __future__ import annotations

import copy
import gc
import hashlib
import http.server
import json
import threading
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

CAPTURED = Path(__file__).parent / "captured"


def _load(name: str) -> dict:
    return json.loads((CAPTURED / name).read_text())


class ReplayDashboard:
    """Serve a scaled copy of a real cluster's dashboard replies on 127.0.0.1."""

    def __init__(
        self,
        nodes: int,
        *,
        dead_every: int = 10,
        gpu_every: int = 4,
        max_limit: int = 10_000,
        session_name: str = "session_2026-01-01_00-00-00_000000_1",
        port: int = 0,
        host: str = "127.0.0.1",
        jobs: int = 0,
    ) -> None:
        self.max_limit = max_limit
        self.session_name = session_name
        template = _load("nodes_detail.json")["data"]["result"]["result"]
        head = next(n for n in template if n["is_head_node"])
        worker = next(n for n in template if not n["is_head_node"])
        self.nodes = [self._node(i, head if i == 0 else worker, dead_every, gpu_every) for i in range(nodes)]
        usage = {n["node_id"]: {"CPU": [1.0, n["resources_total"]["CPU"]],
                                "memory": [2.0**30, n["resources_total"]["memory"]],
                                "objectStoreMemory": [0.0, n["resources_total"]["object_store_memory"]]}
                 for n in self.nodes if n["state"] == "ALIVE"}  # fmt: skip
        self.cluster_status = _load("cluster_status.json")
        self.cluster_status["data"]["clusterStatus"]["loadMetricsReport"]["usageByNode"] = usage
        self.version = {**_load("version.json"), "session_name": session_name}
        self._summary_template = _load("node_summary.json")["data"]["summary"][0]
        self.jobs = self._jobs(jobs)
        self.requests = 0
        # Every request in arrival order: its path and query, and whether this process's
        # cyclic collector was on when it arrived (the server runs in the reader's process).
        self.log: list[tuple[str, bool]] = []
        self.auth_log: str | None = None  # a file: one line per request, its path and a hash of its Authorization
        self._server = http.server.ThreadingHTTPServer((host, port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="replay-dashboard", daemon=True)

    @staticmethod
    def _node(i: int, template: dict, dead_every: int, gpu_every: int) -> dict:
        node = copy.deepcopy(template)
        node_id = hashlib.sha224(f"replay-node-{i}".encode()).hexdigest()
        ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"  # never contacted: data only
        dead = i > 0 and dead_every > 0 and i % dead_every == 0
        resources = dict(node["resources_total"], CPU=8.0)
        resources.pop("node:192.0.2.2", None)
        resources[f"node:{ip}"] = 1.0
        if gpu_every and i % gpu_every == 1:
            resources["GPU"] = 2.0
        node.update(node_id=node_id, node_ip=ip, node_name=ip, state="DEAD" if dead else "ALIVE",
                    resources_total=resources, labels={"ray.io/node-id": node_id},
                    end_time_ms=node["start_time_ms"] + 1000 if dead else 0,
                    state_message="replayed death" if dead else None)  # fmt: skip
        return node

    @staticmethod
    def _jobs(count: int) -> list[dict]:
        """``count`` jobs from the captured ones: every 10th running, every 7th failed."""
        captured = _load("jobs.json")
        base = next(j for j in captured if j["type"] == "SUBMISSION" and j["status"] == "SUCCEEDED")
        failed = next(j for j in captured if j["status"] == "FAILED")
        jobs = []
        for i in range(count):
            job = copy.deepcopy(failed if i % 7 == 3 else base)
            start = base["start_time"] + i * 60_000
            running = i % 10 == 0
            job.update(submission_id=f"replay-{i:05d}", start_time=start,
                       end_time=None if running else start + 30_000 + i, status="RUNNING" if running else job["status"],
                       entrypoint=f"python train.py --trial {i}")  # fmt: skip
            jobs.append(job)
        return jobs

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _nodes_reply(self, query: dict[str, list[str]]) -> dict:
        limit = int(query.get("limit", ["100"])[0])
        if limit > self.max_limit:
            return {"result": False, "msg": f"Given limit {limit} exceeds the supported limit {self.max_limit}. "
                    "Use a lower limit, or set the `RAY_MAX_LIMIT_FROM_API_SERVER` environment variable to a "
                    "larger value.", "data": {}}  # fmt: skip
        rows = self.nodes
        if query.get("filter_keys") == ["state"]:
            rows = [n for n in rows if n["state"] == query.get("filter_values", [""])[0]]
        return {"result": True, "msg": "", "data": {"result": {
            "total": len(self.nodes), "num_after_truncation": min(limit, len(rows)), "num_filtered": len(rows),
            "result": rows[:limit], "partial_failure_warning": "", "warnings": None}}}  # fmt: skip

    def _summary_reply(self) -> dict:
        """Each alive node's physical usage, as ``/nodes?view=summary`` gives it (on GPU
        nodes, two GPUs): steady, so that an unchanged cluster reads as unchanged."""
        rows = []
        for i, node in enumerate(self.nodes):
            if node["state"] != "ALIVE":
                continue
            row = dict(self._summary_template)
            total = row["mem"][0]
            used = total * ((i * 7) % 90 + 5) // 100
            row.update(ip=node["node_ip"], hostname=node["node_name"], cpu=float((i * 13) % 100),
                       mem=[total, total - used, round(used * 100 / total, 1), used],
                       raylet={**row["raylet"], "nodeId": node["node_id"], "nodeManagerAddress": node["node_ip"]},
                       gpus=[{"index": g, "utilizationGpu": (i + g * 30) % 100, "memoryUsed": 1024 * (g + 1),
                              "memoryTotal": 16384} for g in range(int(node["resources_total"].get("GPU", 0)))],
                       )  # fmt: skip
            rows.append(row)
        return {"result": True, "msg": "", "data": {"summary": rows}}

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        replay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                replay.requests += 1
                replay.log.append((self.path, gc.isenabled()))
                parts = urlsplit(self.path)
                if replay.auth_log:
                    header = self.headers.get("Authorization")
                    seen = hashlib.sha256(header.encode()).hexdigest() if header else "none"
                    with open(replay.auth_log, "a", encoding="utf-8") as log:
                        log.write(f"{parts.path}\t{seen}\n")
                if parts.path == "/api/version":
                    body: object = replay.version
                elif parts.path == "/api/v0/nodes":
                    body = replay._nodes_reply(parse_qs(parts.query))
                elif parts.path == "/api/cluster_status":
                    body = replay.cluster_status
                elif parts.path == "/api/jobs/":
                    body = replay.jobs
                elif parts.path == "/nodes" and parse_qs(parts.query).get("view") == ["summary"]:
                    body = replay._summary_reply()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    """``python -m castray_nb.testing.replay --nodes N``: serve until stdin closes; prints the URL."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--session", default="session_2026-01-01_00-00-00_000000_1")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--auth-log", help="append each request's path and the SHA-256 of its Authorization here")
    args = parser.parse_args()
    replay = ReplayDashboard(nodes=args.nodes, jobs=args.jobs, session_name=args.session, host=args.host,
                             port=args.port)  # fmt: skip
    replay.auth_log = args.auth_log
    with replay as url:
        print(url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin or goes away


if __name__ == "__main__":
    main()
