"""castray-nb as a user runs it: JSON contracts, tables, one-line errors, the demo."""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest

from castray_nb.core.nodes import COLUMNS
from castray_nb.launch import free_ports

CONTRACT_CLUSTER = {"name", "gcs_address", "dashboard_url", "ray_version", "session_dir", "num_nodes",
                    "auth_required", "sources"}  # fmt: skip
CONTRACT_NODE = ["cluster", "source", "node_id", "node_ip", "is_head", "state", "CPU", "GPU", "memory_bytes",
                 "object_store_bytes", "last_seen"]  # fmt: skip


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "castray_nb.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_discover_json(head, headless) -> None:
    result = cli("discover", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert isinstance(found, list)
    by_gcs = {c["gcs_address"]: c for c in found}
    for cluster in (head, headless):
        entry = by_gcs[cluster.gcs_address]
        assert CONTRACT_CLUSTER <= set(entry)
        assert entry["num_nodes"] >= 1 and entry["auth_required"] is False
    assert by_gcs[head.gcs_address]["dashboard_url"] == head.dashboard_url
    assert by_gcs[headless.gcs_address]["dashboard_url"] is None


def test_discover_table_lists_both(head, headless) -> None:
    result = cli("discover", "-v")
    assert result.returncode == 0
    assert head.gcs_address in result.stdout and headless.gcs_address in result.stdout
    assert result.stdout.splitlines()[0].split()[:3] == ["NAME", "GCS", "DASHBOARD"]
    assert "ms" in result.stderr  # -v reports what it did


def test_nodes_json_from_two_addresses(head, headless) -> None:
    result = cli("nodes", "--address", head.gcs_address, "--address", headless.dashboard_url or headless.gcs_address,
                 "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows and all(list(r)[: len(CONTRACT_NODE)] == CONTRACT_NODE for r in rows)
    assert list(rows[0]) == list(COLUMNS)
    assert len({r["cluster"] for r in rows}) == 2
    assert {r["source"] for r in rows} == {"external"}
    assert sum(r["is_head"] and r["state"] == "ALIVE" for r in rows) == 2


def test_nodes_table_without_address_reads_every_discovered_cluster(head, headless) -> None:
    result = cli("nodes", "--alive")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["CLUSTER", "SOURCE"]
    assert result.stdout.count("ALIVE") >= 2 and "DEAD" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["nodes", "--address", ""],
        ["nodes", "--address", "not an address"],
        ["nodes", "--address", "127.0.0.1:99999"],
        ["nodes", "--address", "file:///etc/passwd"],
        ["nodes", "--address", "x" * 5000],
        ["nodes", "--address", "$(touch /tmp/castray-pwned):1"],
        ["nodes", "--address", "[::1:80"],
        ["nodes", "--address", "127.0.0.1:6379\x07"],
        ["discover", "--bogus"],
        ["nope"],
        ["--timeout", "-3", "discover"],
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(args: list[str]) -> None:
    result = cli(*args, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("castray-nb: error:") and "Traceback" not in result.stderr


def test_a_closed_port_is_one_line_too() -> None:
    (closed,) = free_ports(1)
    result = cli("nodes", "--address", f"127.0.0.1:{closed}", timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and str(closed) in result.stderr


@pytest.mark.slow
def test_demo_end_to_end_and_it_stops_exactly_its_cluster(head) -> None:
    before = {p.pid for p in psutil.process_iter()}
    result = cli("demo", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "<- the demo cluster" in out
    table = out[out.index("The merged node table:") :]
    assert "demo" in table and "ALIVE" in table and "head" in table
    assert "Done: the demo cluster is stopped." in out
    leftovers = [
        p for p in psutil.process_iter(["pid", "cmdline"])
        if p.info["pid"] not in before and "castray-cluster-" in " ".join(p.info["cmdline"] or [])
    ]  # fmt: skip
    assert not leftovers, f"demo left processes: {[p.info['cmdline'][:2] for p in leftovers]}"
    assert head.head is not None and head.head.running, "the demo must not stop other clusters"
