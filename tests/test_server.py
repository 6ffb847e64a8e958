"""The Jupyter Server extension, against a real Jupyter server and the shared real clusters.

The server runs with ``CASTRAY_REMOTE=0``: generated addresses (schemathesis) that are not
this machine are refused before any traffic, so the tests never reach another host.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from castray_nb.core.address import cluster_key
from castray_nb.core.nodes import COLUMNS
from castray_nb.launch import free_ports
from castray_nb.server.handlers import openapi_text
from tests.conftest import HOME, Clusters, wait_until
from tests.jupyter import JupyterServer, jupyter_server
from tests.servers import silent_server

API = "/castray/api"
ENDPOINTS = [
    ("POST", "/cluster/discover-external"),
    ("GET", "/cluster/external-info"),
    ("POST", "/cluster/connect-external"),
    ("DELETE", "/cluster/disconnect-external?all=true"),
    ("GET", "/nodes"),
    ("GET", "/nodes/external"),
    ("GET", "/openapi.json"),
    ("DELETE", "/dashboard-links"),
    ("GET", "/jobs"),
    ("GET", "/recent"),
    ("DELETE", "/recent?name=nobody"),
]


@pytest.fixture(scope="module")
def server(clusters: Clusters) -> Iterator[JupyterServer]:
    env = {"HOME": HOME, "CASTRAY_REMOTE": "0", "CASTRAY_GCS_TIMEOUT": "2", "CASTRAY_HTTP_TIMEOUT": "1.5"}
    with jupyter_server(env=env) as running:
        yield running


def call(
    server: JupyterServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = "right",
    headers: dict[str, str] | None = None,
    opener: urllib.request.OpenerDirector | None = None,
    root: str = API,
) -> tuple[int, Any]:
    """One request to ``root + path`` (the REST API's by default); returns (status, parsed JSON body)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"token {server.token if token == 'right' else token}"
    request = urllib.request.Request(server.url + root + path, data=data, method=method, headers=all_headers)
    if method in ("POST", "DELETE") and data is None:
        request.data = b""
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def _same(a: str | None, b: str) -> bool:
    return bool(a) and cluster_key(a or "") == cluster_key(b)


# --- installation and Jupyter's own protection ---------------------------------------


def test_the_extension_is_enabled_by_the_install() -> None:
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
    result = subprocess.run([jupyter, "server", "extension", "list"], capture_output=True, text=True, timeout=60)
    text = result.stdout + result.stderr
    line = next((x for x in text.splitlines() if x.strip().startswith("castray_nb ")), "")
    assert "enabled" in line, text
    assert "castray_nb 0.1.0 OK" in text.replace("\x1b[32m", "").replace("\x1b[0m", "")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("token", [None, "0123456789abcdef-wrong"])
def test_without_the_token_every_endpoint_refuses(server: JupyterServer, method: str, path: str, token) -> None:
    status, body = call(server, method, path, {"cluster_address": "127.0.0.1:1"}, token=token)
    assert status == 403
    assert body["error"] == "forbidden" and body["message"]


def test_the_event_socket_refuses_a_handshake_without_the_token(server: JupyterServer) -> None:
    with pytest.raises(HTTPClientError) as caught:
        EventSocket(server, token=None)
    assert caught.value.code == 403


def test_a_cookie_login_also_needs_the_xsrf_token(server: JupyterServer) -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(server.url + "/login", timeout=10).read()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"_xsrf": xsrf, "password": server.token}).encode()
    opener.open(urllib.request.Request(server.url + "/login", data=form), timeout=10).read()
    assert any(c.name.startswith("username-") for c in jar), "the login did not set a session cookie"

    status, _ = call(server, "GET", "/cluster/external-info", token=None, opener=opener)
    assert status == 200  # a cookie is enough to read
    status, body = call(server, "POST", "/cluster/discover-external", {}, token=None, opener=opener)
    assert status == 403 and "xsrf" in body["message"].lower()
    status, body = call(
        server, "POST", "/cluster/discover-external", {}, token=None, opener=opener, headers={"X-XSRFToken": xsrf}
    )
    assert status == 200, body


# --- the endpoints -------------------------------------------------------------------


def test_discover_finds_both_clusters_and_can_attach_them(server: JupyterServer, clusters: Clusters) -> None:
    call(server, "DELETE", "/cluster/disconnect-external?all=true")
    status, body = call(server, "POST", "/cluster/discover-external")
    assert status == 200 and body["attached"] == []
    for cluster in (clusters.head, clusters.headless):
        assert sum(_same(c["gcs_address"], cluster.gcs_address) for c in body["clusters"]) == 1
    headless = next(c for c in body["clusters"] if _same(c["gcs_address"], clusters.headless.gcs_address))
    assert headless["dashboard_url"] is None and headless["num_nodes"] >= 1

    status, body = call(server, "POST", "/cluster/discover-external", {"attach": True})
    assert status == 200 and len(body["attached"]) >= 2
    status, info = call(server, "GET", "/cluster/external-info")
    attached = {c["name"]: c for c in info["clusters"]}
    assert set(body["attached"]) == set(attached)
    for cluster in (clusters.head, clusters.headless):
        state = next(c for c in attached.values() if _same(c["gcs_address"], cluster.gcs_address))
        assert state["reachable"] is True and state["alive_nodes"] >= 1 and state["error"] is None


@pytest.mark.parametrize("body", [[], {"attach": "yes"}, {"connect": True}, b"attach=1"])
def test_discover_refuses_a_bad_body(server: JupyterServer, body: Any) -> None:
    status, reply = call(server, "POST", "/cluster/discover-external", body)
    assert status == 400 and reply["error"] == "bad_request" and reply["message"]


def test_node_rows_carry_the_tables_columns(server: JupyterServer, clusters: Clusters) -> None:
    call(server, "POST", "/cluster/discover-external", {"attach": True})
    status, body = call(server, "GET", "/nodes/external?alive=true")
    assert status == 200 and body["columns"] == list(COLUMNS)
    rows = body["nodes"]
    assert rows and all(list(r) == list(COLUMNS) for r in rows)
    assert all(r["source"] == "external" and r["state"] == "ALIVE" for r in rows)
    heads = {r["cluster"] for r in rows if r["is_head"]}
    assert len(heads) >= 2  # one head per attached cluster
    status, merged = call(server, "GET", "/nodes?refresh=false")
    assert status == 200 and {r["node_id"] for r in rows} <= {r["node_id"] for r in merged["nodes"]}
    status, body = call(server, "GET", "/nodes?alive=perhaps")
    assert status == 400 and body["error"] == "bad_request" and "alive" in body["message"]


def test_connect_and_disconnect_by_name(server: JupyterServer, clusters: Clusters) -> None:
    call(server, "DELETE", "/cluster/disconnect-external?all=true")
    status, body = call(
        server, "POST", "/cluster/connect-external", {"cluster_address": clusters.head.dashboard_url, "name": "lab"}
    )
    assert status == 200, body
    assert body["cluster"]["name"] == "lab" and body["cluster"]["reachable"] is True
    assert body["cluster"]["num_nodes"] >= 1
    status, body = call(
        server, "POST", "/cluster/connect-external", {"cluster_address": clusters.headless.gcs_address, "name": "lab"}
    )
    assert status == 409 and body["error"] == "conflict" and "lab" in body["message"]
    status, body = call(server, "DELETE", "/cluster/disconnect-external?name=nope")
    assert status == 404 and body["error"] == "unknown_cluster" and "lab" in body["message"]
    status, body = call(server, "DELETE", "/cluster/disconnect-external?name=lab")
    assert status == 200 and body == {"detached": ["lab"]}
    status, body = call(server, "GET", "/cluster/external-info")
    assert body == {"clusters": []}
    status, body = call(server, "DELETE", "/cluster/disconnect-external?all=false")
    assert status == 400 and "name" in body["message"]


def test_recent_lists_what_was_attached_and_forgets_it(server: JupyterServer, clusters: Clusters) -> None:
    typed = clusters.head.dashboard_url
    status, body = call(server, "POST", "/cluster/connect-external", {"cluster_address": typed, "name": "kept"})
    assert status == 200, body
    address = body["cluster"]["gcs_address"]  # remembered by what it was attached by: its GCS, found here
    assert address == clusters.head.gcs_address
    status, body = call(server, "GET", "/recent")
    entry = next(e for e in body["clusters"] if e["address"] == address)
    assert status == 200 and entry["name"] == "kept" and entry["attached"] is True and entry["last_seen"]
    assert call(server, "DELETE", "/cluster/disconnect-external?name=kept")[0] == 200
    entry = next(e for e in call(server, "GET", "/recent")[1]["clusters"] if e["address"] == address)
    assert entry["attached"] is False  # detached, still remembered
    status, body = call(server, "DELETE", f"/recent?name={address}")
    assert status == 200 and [e["name"] for e in body["forgotten"]] == ["kept"]
    assert address not in {e["address"] for e in call(server, "GET", "/recent")[1]["clusters"]}
    status, body = call(server, "DELETE", f"/recent?name={address}")
    assert status == 404 and body["error"] == "unknown_cluster" and "no remembered cluster" in body["message"]
    status, body = call(server, "DELETE", "/recent")
    assert status == 400 and body["error"] == "bad_request"


def test_the_seeds_disconnect_without_parameters_detaches_everything(server: JupyterServer, clusters: Clusters) -> None:
    """CastRay's own form: DELETE /api/cluster/disconnect-external, no parameters."""
    for address, name in ((clusters.head.gcs_address, "one"), (clusters.headless.gcs_address, "two")):
        status, body = call(server, "POST", "/cluster/connect-external", {"cluster_address": address, "name": name})
        assert status == 200, body
    status, body = call(server, "DELETE", "/cluster/disconnect-external")
    assert status == 200 and sorted(body["detached"]) == ["one", "two"]
    assert call(server, "GET", "/cluster/external-info")[1] == {"clusters": []}


def test_slow_connects_never_hold_up_other_routes(server: JupyterServer) -> None:
    """Six connects to a silent server at once: routes that need no I/O answer at once, and
    a refresh (another lane of the pool) is not queued behind the connects."""
    results: list[int] = []
    with silent_server() as silent:

        def connect() -> None:
            results.append(
                call(server, "POST", "/cluster/connect-external", {"cluster_address": f"127.0.0.1:{silent}"})[0]
            )

        threads = [threading.Thread(target=connect) for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # the connects are in, waiting on the silent server
        timings = {}
        for route in ("/cluster/external-info", "/nodes?refresh=false", "/openapi.json", "/nodes?refresh=true"):
            started = time.perf_counter()
            status, _ = call(server, "GET", route)
            timings[route] = time.perf_counter() - started
            assert status == 200, route
        for thread in threads:
            thread.join(60)
    assert results == [504] * 6
    assert max(timings.values()) < 1.5, timings  # the silent server holds each connect ~2 s


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"cluster_address": "127.0.0.1:6379 ; rm -rf /"}, 400, "invalid_address"),
        ({"cluster_address": "file:///etc/passwd"}, 400, "invalid_address"),
        ({"cluster_address": "ray://127.0.0.1:10001"}, 400, "invalid_address"),
        ({"cluster_address": "198.51.100.7:6379"}, 400, "invalid_address"),  # remote: off on this server
        ({"cluster_address": "127.0.0.1:{closed}"}, 502, "cluster_unreachable"),
        ({"cluster_address": "127.0.0.1:{silent}"}, 504, "timeout"),
        ({"cluster_address": "http://127.0.0.1:{silent}"}, 504, "timeout"),
        ({"cluster_address": "127.0.0.1:{closed}", "name": "\x1b[2J"}, 400, "invalid_name"),
        ({"address": "127.0.0.1:6379"}, 400, "bad_request"),
        ({}, 400, "bad_request"),
        ([], 400, "bad_request"),
        ({"cluster_address": 6379}, 400, "bad_request"),
        (b"{not json", 400, "bad_request"),
    ],
)
def test_connect_errors_say_what_went_wrong(server: JupyterServer, body: Any, status: int, error: str) -> None:
    with silent_server() as silent:
        (closed,) = free_ports(1)
        if isinstance(body, dict) and isinstance(body.get("cluster_address"), str):
            body = {**body, "cluster_address": body["cluster_address"].format(closed=closed, silent=silent)}
        got, reply = call(server, "POST", "/cluster/connect-external", body)
    assert (got, reply["error"]) == (status, error), reply
    assert reply["message"] and "\n" not in reply["message"]
    _, info = call(server, "GET", "/cluster/external-info")  # and nothing got attached
    assert all(c["name"] != "\x1b[2J" for c in info["clusters"])


# --- the event WebSocket -------------------------------------------------------------


class EventSocket:
    """A WebSocket client on a thread of its own; messages land in a queue."""

    def __init__(self, server: JupyterServer, token: str | None = "right", query: str = "") -> None:
        headers = {"Authorization": f"token {server.token}"} if token else {}
        url = server.url.replace("http://", "ws://") + API + "/events" + query
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(HTTPRequest(url, headers=headers)), self._loop).result(20)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise

    async def _open(self, request: HTTPRequest) -> None:
        self._socket = await websocket_connect(request)
        asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            message = await self._socket.read_message()
            self.messages.put(None if message is None else json.loads(message))
            if message is None:
                return

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        seen = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                message = self.messages.get(timeout=max(0.05, end - time.monotonic()))
            except queue.Empty:
                break
            if message is None:
                pytest.fail(f"the socket closed; messages so far: {seen}")
            seen.append(message)
            if predicate(message):
                return message
        pytest.fail(f"no matching message within {timeout} s; got {seen}")

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._socket.close)
        self._loop.call_soon_threadsafe(self._loop.stop)


def test_the_socket_says_hello_then_node_added_and_node_dead(server: JupyterServer, clusters: Clusters) -> None:
    call(server, "DELETE", "/cluster/disconnect-external?all=true")
    status, body = call(
        server, "POST", "/cluster/connect-external", {"cluster_address": clusters.head.gcs_address, "name": "watched"}
    )
    assert status == 200, body
    socket = EventSocket(server, query="?interval=0.5")
    try:
        hello = socket.wait_for(lambda m: m["type"] == "hello", 10)
        assert [c["name"] for c in hello["clusters"]] == ["watched"]
        worker = clusters.head.add_worker()
        try:
            added = socket.wait_for(lambda m: m.get("kind") == "node_added" and m["cluster"] == "watched", 30)
            assert added["detail"] == "ALIVE" and added["node_id"]
        finally:
            worker.stop()
        dead = socket.wait_for(lambda m: m.get("kind") == "node_state_changed" and m["node_id"] == added["node_id"], 60)
        assert dead["detail"] == "ALIVE -> DEAD" and dead["cluster"] == "watched"
        call(server, "DELETE", "/cluster/disconnect-external?name=watched")
        gone = socket.wait_for(lambda m: m.get("kind") == "cluster_detached", 10)
        assert gone["cluster"] == "watched"
    finally:
        socket.close()


def test_a_bad_interval_is_refused(server: JupyterServer) -> None:
    with pytest.raises(HTTPClientError) as caught:
        EventSocket(server, query="?interval=0")
    assert caught.value.code == 400


# --- the OpenAPI document, and a property-based run over it --------------------------

SCHEMA = schemathesis.openapi.from_dict(json.loads(openapi_text()))


def test_a_lane_stays_taken_until_its_worker_really_ends() -> None:
    """A request that gave up waiting (504) leaves its worker running: the lane's share
    stays taken until the worker ends, so timed-out calls cannot pile up past the lane."""
    from castray_nb.server.errors import ApiError
    from castray_nb.server.state import Lanes

    lanes = Lanes(deadline=0.3, shares={"read": 1})
    release = threading.Event()

    async def main() -> None:
        with pytest.raises(ApiError) as first:
            await lanes.call("read", release.wait, 10)
        assert first.value.code == "timeout" and lanes.busy("read") == 1
        with pytest.raises(ApiError) as second:  # queued behind the worker that still runs
            await lanes.call("read", lambda: "ran")
        assert second.value.code == "timeout"
        release.set()
        for _ in range(50):
            if lanes.busy("read") == 0:
                break
            await asyncio.sleep(0.02)
        assert lanes.busy("read") == 0
        assert await lanes.call("read", lambda: "ran") == "ran"

    try:
        asyncio.run(main())
    finally:
        release.set()
        lanes.shutdown()


def installed_routes() -> dict[str, type]:
    """The routes ``setup_handlers`` really installs, on an application of its own."""
    import tornado.web

    from castray_nb.core.session import Session
    from castray_nb.core.settings import Settings
    from castray_nb.server.handlers import setup_handlers
    from castray_nb.server.state import ServerState

    app = tornado.web.Application(base_url="/")
    setup_handlers(app, ServerState.for_session(Session(Settings())))
    (host,) = [r for r in app.default_router.rules if r.matcher.__class__.__name__ == "HostMatches"]
    return {rule.matcher.regex.pattern: rule.target for rule in host.target.rules}


def test_the_document_describes_every_route_the_server_installs_and_no_other() -> None:
    document = json.loads(openapi_text())
    routes = {pattern: handler for pattern, handler in installed_routes().items() if pattern.startswith(API + "/")}
    documented: dict[str, type] = {}
    for path, operations in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x1", path)  # /jobs/{cluster}/{id}/logs -> /jobs/x1/x1/logs
        matching = [p for p in routes if re.fullmatch(p, concrete)]
        assert len(matching) == 1, f"{path}: installed as {matching}"
        handler = documented[matching[0]] = routes[matching[0]]
        for method in operations:
            assert _defines(handler, method), f"{method.upper()} {path} is documented, {handler.__name__} lacks it"
        for method in ("get", "post", "delete"):
            assert method in operations or not _defines(handler, method), f"{method.upper()} {path} undocumented"
    assert set(routes) == set(documented), f"installed, not documented: {sorted(set(routes) - set(documented))}"
    assert list(document["components"]["schemas"]["NodeRow"]["properties"]) == list(COLUMNS)


def _defines(handler: type, method: str) -> bool:
    import tornado.web

    return getattr(handler, method, None) is not getattr(tornado.web.RequestHandler, method)


def only_documented_server_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 5xx is fine only when it is one the document promises (502, 504), and JSON."""
    if response.status_code >= 500:
        assert response.status_code in (502, 504), f"undocumented {response.status_code}: {response.text[:300]}"
        assert set(response.json()) == {"error", "message"}
    return None


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_document(case: Any, server: JupyterServer) -> None:
    case.call_and_validate(
        base_url=server.url,
        headers={"Authorization": f"token {server.token}"},
        timeout=30,
        excluded_checks=[not_a_server_error, positive_data_acceptance],
        additional_checks=[only_documented_server_errors],
    )


def test_the_server_left_no_clusters_waiting(server: JupyterServer) -> None:
    status, body = call(server, "DELETE", "/cluster/disconnect-external?all=true")
    assert status == 200 and isinstance(body["detached"], list)
    wait_until(lambda: call(server, "GET", "/cluster/external-info")[1] == {"clusters": []}, 10)
