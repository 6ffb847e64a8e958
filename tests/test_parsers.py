"""Parsers, on replies captured from a real cluster (tests/data/capture.py made them)."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

import castray_nb.testing
from castray_nb.core.nodes import (
    COLUMNS,
    DEAD,
    UNREACHABLE,
    mark_unreachable,
    node_from_state,
    physical_by_node,
    state_api_nodes,
    to_dataframe,
    usage_by_node,
)

DATA = Path(castray_nb.testing.__file__).parent / "captured"  # made by tests/data/capture.py
NOW = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
CONTRACT = ["cluster", "source", "node_id", "node_ip", "is_head", "state", "CPU", "GPU",
            "memory_bytes", "object_store_bytes", "last_seen"]  # fmt: skip


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def records():
    raw, total = state_api_nodes(load("nodes_detail.json"))
    usage = usage_by_node(load("cluster_status.json"))
    rows = [node_from_state(r, cluster="c", source="external", seen=NOW, usage=usage.get(r["node_id"])) for r in raw]
    return rows, total


def test_state_api_nodes_reads_a_head_and_a_dead_worker() -> None:
    rows, total = records()
    assert total == 2 and len(rows) == 2
    head = next(r for r in rows if r.is_head)
    worker = next(r for r in rows if not r.is_head)
    assert head.state == "ALIVE" and head.CPU == 1.0 and head.memory_bytes > 0 and head.object_store_bytes > 0
    assert worker.state == DEAD and worker.end_time is not None and "SIGTERM" in (worker.state_message or "")
    assert head.start_time is not None and head.start_time.year >= 2025
    assert len(head.node_id) == 56 and head.node_ip
    assert head.labels["ray.io/node-id"] == head.node_id


def test_usage_attaches_to_the_right_node() -> None:
    rows, _ = records()
    head = next(r for r in rows if r.is_head)
    worker = next(r for r in rows if not r.is_head)
    assert head.CPU_used == 0.0 and head.memory_used_bytes is not None
    assert worker.CPU_used is None  # the dead worker has no usage entry


def test_node_summary_gives_each_node_its_hosts_physical_usage() -> None:
    summary = load("node_summary.json")
    physical = physical_by_node(summary)
    assert len(physical) == len(summary["data"]["summary"]) == 2
    for node in summary["data"]["summary"]:
        got = physical[node["raylet"]["nodeId"]]
        total, _, _, used = node["mem"]
        assert got.cpu_percent == node["cpu"] and 0 <= got.cpu_percent <= 100
        assert got.host_memory_used_bytes == used and got.host_memory_total_bytes == total > used > 0
        assert got.gpu_percent is None and got.gpu_memory_used_bytes is None  # no GPU on this machine


def test_node_summary_averages_gpu_use_and_adds_gpu_memory() -> None:
    summary = copy.deepcopy(load("node_summary.json"))
    node = summary["data"]["summary"][0]
    node["gpus"] = [  # Ray's GpuUtilizationInfo: utilisation in percent, memory in MiB
        {"index": 0, "name": "A100", "utilizationGpu": 80, "memoryUsed": 1024, "memoryTotal": 40960},
        {"index": 1, "name": "A100", "utilizationGpu": 20, "memoryUsed": 512, "memoryTotal": 40960},
    ]
    got = physical_by_node(summary)[node["raylet"]["nodeId"]]
    assert got.gpu_percent == 50.0 and got.gpu_memory_used_bytes == 1536 * 2**20


def test_node_summary_parser_takes_no_junk() -> None:
    assert physical_by_node({}) == {} and physical_by_node({"data": {"summary": "x"}}) == {}
    odd = {
        "data": {"summary": [{"raylet": {"nodeId": "n1"}, "cpu": "high", "mem": [1, 2], "gpus": [None]}, {"cpu": 5}]}
    }
    got = physical_by_node(odd)
    assert list(got) == ["n1"] and got["n1"].cpu_percent is None and got["n1"].host_memory_used_bytes is None


def test_dataframe_has_the_contract_columns_in_order() -> None:
    rows, _ = records()
    frame = to_dataframe(rows)
    assert list(frame.columns[: len(CONTRACT)]) == CONTRACT
    assert list(frame.columns) == list(COLUMNS)
    assert frame["last_seen"].dt.tz is not None
    assert set(frame["state"]) == {"ALIVE", "DEAD"}
    assert frame["is_head"].sum() == 1


def test_unreachable_keeps_dead_workers_dead_and_marks_the_head() -> None:
    rows, _ = records()
    marked = mark_unreachable(rows)
    assert [r.state for r in marked if r.is_head] == [UNREACHABLE]
    assert [r.state for r in marked if not r.is_head] == [DEAD]
    drained_head = [dataclasses.replace(r, state=DEAD) for r in rows if r.is_head]
    assert [r.state for r in mark_unreachable(drained_head)] == [UNREACHABLE]


@pytest.mark.parametrize(
    "payload",
    [{}, {"data": {}}, {"data": {"result": {"result": "x"}}}, {"result": False, "msg": "limit too large"}, []],
)
def test_malformed_node_lists_raise_value_error(payload) -> None:
    with pytest.raises((ValueError, AttributeError)):
        state_api_nodes(payload)


def test_usage_of_a_reply_without_usage_is_empty() -> None:
    assert usage_by_node({}) == {}
    assert usage_by_node({"data": {"clusterStatus": None}}) == {}


def test_empty_table_still_has_the_columns() -> None:
    assert list(to_dataframe([]).columns) == list(COLUMNS)
