"""The Prometheus reader's rules with an injected opener, in milliseconds: how its answers
become the history's rows, how nodes get their ids, and its errors (one line, never the
URL). test_history.py reads a real Prometheus scraping a real cluster."""

from __future__ import annotations

import io
import json
import urllib.error

import pytest

from castray_nb.core.errors import ConfigError, InvalidArgument, PrometheusError
from castray_nb.core.history import FRAME_COLUMNS, History
from castray_nb.core.nodes import ALIVE, DEAD
from castray_nb.core.prometheus import Prometheus, PrometheusHistory, _matcher
from castray_nb.core.settings import load_settings
from castray_nb.core.store import Store
from tests.test_history_store import T0, Clock, node

SESSION = "session_2026-12-03_07-47-30_824345_15539"
URL = "http://alice:secret@127.0.0.1:9"  # a URL with credentials: never shown


def labels(instance: str, **more: str) -> dict[str, str]:
    return {"SessionName": SESSION, "instance": instance, **more}


def who(instance: str, ip: str, head: str) -> dict[str, object]:
    """A series of the query that says which node an agent reports for."""
    return {"metric": labels(instance, ip=ip, IsHeadNode=head), "values": [[T0, "1"]]}


class Answers:
    """Prometheus's answers by the metric their query names; the queries asked."""

    def __init__(self, by_metric: dict[str, list[dict[str, object]]]) -> None:
        self.by_metric = by_metric
        self.asked: list[str] = []
        self.spans: list[tuple[float, float, int]] = []  # (start, end, step) of each query

    def __call__(self, request, timeout):
        from urllib.parse import parse_qs, urlsplit

        params = parse_qs(urlsplit(request.full_url).query)
        query = params["query"][0]
        self.asked.append(query)
        self.spans.append((float(params["start"][0]), float(params["end"][0]), int(params["step"][0])))
        result = next((r for name, r in self.by_metric.items() if name in query), [])
        return io.BytesIO(
            json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}).encode()
        )


@pytest.fixture
def recorded(tmp_path):
    """A store that recorded SESSION as "lab": a head and a dead worker on one IP."""
    clock = Clock()
    h = History(Store(tmp_path / "h.sqlite3", clock=clock))
    with h.store.connection() as db:
        snapshot = {"nodes": [{"node_id": "head-id", "node_ip": "10.0.0.1", "is_head": True, "state": ALIVE},
                              {"node_id": "w-id", "node_ip": "10.0.0.1", "is_head": False, "state": DEAD}]}  # fmt: skip
        db.execute("INSERT INTO clusters (session_name, cluster, first_seen, last_seen, snapshot)"
                   " VALUES (?, ?, ?, ?, ?)", (SESSION, "lab", T0, T0, json.dumps(snapshot)))  # fmt: skip
    h.record("lab", [node("head", cpu=1)])
    return h, clock


def test_series_become_rows_named_as_the_store_names_them(recorded) -> None:
    h, clock = recorded
    clock.now = T0 + 600
    answers = Answers({
        "ray_node_cpu_count": [who("10.0.0.1:1", "10.0.0.1", "true"), who("10.0.0.1:2", "10.0.0.1", "false"),
                               who("10.0.0.9:3", "10.0.0.9", "false")],
        "ray_node_cpu_utilization": [{"metric": labels("10.0.0.1:1"), "values": [[T0, "12.5"], [T0 + 10, "NaN"]]},
                                     {"metric": labels("10.0.0.9:3"), "values": [[T0 + 10, "50"]]}],
    })  # fmt: skip
    source = PrometheusHistory(Prometheus(URL, opener=answers), h)
    frame = source.frame(cluster="lab", since=T0, metrics=["cpu_percent"])
    assert list(frame.columns) == list(FRAME_COLUMNS)
    rows = sorted(zip(frame.node_id.fillna("-"), frame.value, strict=True))
    # Per node: the head by its IP and head-ness; a node the snapshot lacks keeps its agent.
    # For the totals the same answer (the fake does not aggregate); NaN is no reading.
    assert ("head-id", 12.5) in rows and ("10.0.0.9:3", 50.0) in rows and ("-", 12.5) in rows
    assert set(frame.cluster) == {"lab"}
    assert all(f'SessionName=~"{_matcher([SESSION])[14:]}' in q for q in answers.asked)  # that session only
    only_totals = source.frame(cluster="lab", since=T0, metrics=["cpu_percent"], node="")
    assert only_totals.node_id.isna().all() and len(only_totals) == 2
    one = source.frame(cluster="lab", since=T0, metrics=["cpu_percent"], node="head-id")
    assert list(one.node_id) == ["head-id"]


def test_each_point_is_its_buckets_mean_so_a_node_shorter_than_a_step_is_kept(recorded) -> None:
    # A plain selector is one sample a step: a worker that lived 5 s between two
    # evaluations would be missing (seen against a real Prometheus in test_history).
    h, clock = recorded
    clock.now = T0 + 600
    cpu = {"metric": labels("10.0.0.1:1"), "values": [[T0 + 20, "7"]]}
    head = who("10.0.0.1:1", "10.0.0.1", "true")
    answers = Answers({"ray_node_cpu_count": [head], "ray_node_cpu_utilization": [cpu]})
    source = PrometheusHistory(Prometheus(URL, opener=answers), h)
    frame = source.frame(cluster="lab", since=T0, metrics=["cpu_percent"], node="head-id")
    query = next(q for q in answers.asked if "ray_node_cpu_utilization" in q)
    assert "avg_over_time(ray_node_cpu_utilization{" in query and "}[10s]) or ray_node_cpu_utilization{" in query
    # evaluated at each 10 s bucket's end, over the bucket; stamped with its start
    assert set(answers.spans) == {(T0 + 10, T0 + 610, 10)}
    assert [t.timestamp() for t in frame.time] == [T0 + 10] and list(frame.value) == [7.0]


def test_a_session_the_store_never_saw_is_asked_by_its_name_and_nonsense_is_refused(recorded) -> None:
    h, _ = recorded
    answers = Answers({})
    source = PrometheusHistory(Prometheus(URL, opener=answers), h)
    assert source.frame(cluster="session_other_1", since=T0, metrics=["CPU"]).empty
    assert all('SessionName=~"session_other_1"' in q for q in answers.asked)
    with pytest.raises(InvalidArgument, match="not a Ray session name"):
        source.frame(cluster='x"}) or vector(1', since=T0)
    assert _matcher(["a.b"]) == 'SessionName=~"a\\\\.b"'  # a regex, escaped for PromQL's string
    assert _matcher(None) == 'SessionName!=""'


def _raising(exc):
    def opener(request, timeout):
        raise exc

    return opener


@pytest.mark.parametrize(
    ("opener", "expected"),
    [
        (_raising(urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))), "does not answer"),
        (lambda request, timeout: io.BytesIO(b"<html>hello</html>"), "not JSON"),
        (lambda request, timeout: io.BytesIO(b'{"status": "error", "error": "parse error at char 3"}'),
         "refused the query: parse error at char 3"),
        (_raising(urllib.error.HTTPError(URL, 503, "busy", {}, io.BytesIO(b""))), "answered HTTP 503"),
    ],
)  # fmt: skip
def test_errors_are_one_line_without_the_url(opener, expected) -> None:
    with pytest.raises(PrometheusError) as caught:
        Prometheus(URL, opener=opener).query_range("up", T0, T0 + 60, 10)
    message = str(caught.value)
    assert expected in message and "\n" not in message and "secret" not in message and "127.0.0.1" not in message


def test_the_setting_takes_a_prometheus_url_and_refuses_others_without_echoing_them() -> None:
    assert load_settings({"CASTRAY_PROMETHEUS_URL": "http://localhost:9090/"}).prometheus_url == "http://localhost:9090"
    assert load_settings({}).prometheus_url is None
    for bad in ("localhost:9090", "ftp://user:secret@host", "http://user:secret@host:port"):
        with pytest.raises(ConfigError) as caught:
            load_settings({"CASTRAY_PROMETHEUS_URL": bad})
        assert "CASTRAY_PROMETHEUS_URL" in str(caught.value) and "secret" not in str(caught.value)
