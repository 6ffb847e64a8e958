"""Capture the dashboard replies the parsers read, from a real throwaway cluster.

Run: python tests/data/capture.py  (starts a head and a worker, stops the worker so
one node is DEAD, saves the replies in castray_nb/testing/captured/, where the parser
tests and the replay dashboard read them, and stops everything).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from castray_nb.core.http import get_json
from castray_nb.launch import LocalCluster

HERE = Path(__file__).resolve().parents[2] / "castray_nb" / "testing" / "captured"


def main() -> None:
    with LocalCluster(home=tempfile.mkdtemp()) as cluster:
        worker = cluster.add_worker()
        url = cluster.dashboard_url
        summary = get_json(f"{url}/nodes?view=summary", 5)  # two alive nodes' physical usage
        worker.stop()
        for _ in range(60):
            nodes = get_json(f"{url}/api/v0/nodes?detail=1", 5)
            if any(n["state"] == "DEAD" for n in nodes["data"]["result"]["result"]):
                break
            time.sleep(1)
        replies = {
            "version.json": get_json(f"{url}/api/version", 5),
            "nodes_detail.json": nodes,
            "cluster_status.json": get_json(f"{url}/api/cluster_status", 5),
            "node_summary.json": summary,
        }
    for name, reply in replies.items():
        (HERE / name).write_text(json.dumps(reply, indent=1) + "\n")
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
