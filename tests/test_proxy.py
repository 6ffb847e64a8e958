"""The dashboard proxy of the server extension, over real HTTP: a real Jupyter server, a
real Ray head, and a Ray-looking fake dashboard that shows what the proxy sent it."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from castray_nb.launch import LocalCluster
from tests.conftest import HOME
from tests.fake_dashboard import FakeDashboard
from tests.jupyter import JupyterServer, jupyter_server
from tests.servers import canary
from tests.test_server import call

Reply = tuple[int, http.client.HTTPMessage, bytes]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDashboard]:
    with FakeDashboard() as running:
        yield running


@pytest.fixture(scope="module")
def trap() -> Iterator[tuple[int, list[str]]]:
    with canary() as running:
        yield running


@pytest.fixture(scope="module")
def server(head: LocalCluster, fake: FakeDashboard) -> Iterator[JupyterServer]:
    env = {"HOME": HOME, "CASTRAY_HTTP_TIMEOUT": "1", "CASTRAY_GCS_TIMEOUT": "2"}
    with jupyter_server(env=env) as running:
        for address, name in ((head.dashboard_url, "real"), (fake.url, "fake")):
            body = {"cluster_address": address, "name": name}
            status, body = call(running, "POST", "/cluster/connect-external", body)
            assert status == 200, body
        yield running
        call(running, "DELETE", "/cluster/disconnect-external?all=true")


def link(server: JupyterServer, name: str) -> str:
    status, body = call(server, "GET", "/cluster/external-info")
    assert status == 200
    (cluster,) = [c for c in body["clusters"] if c["name"] == name]
    return cluster["dashboard_link"]


def raw(server: JupyterServer, method: str, path: str, headers: dict[str, str] | None = None) -> Reply:
    """One request with the path sent exactly as given (no client-side normalising)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True, skip_host="Host" in (headers or {}))
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        reply = conn.getresponse()
        return reply.status, reply.headers, reply.read()
    finally:
        conn.close()


def authed(server: JupyterServer) -> dict[str, str]:
    return {"Authorization": f"token {server.token}"}


def error_of(reply: Reply) -> str:
    status, headers, body = reply
    assert headers["Content-Type"].startswith("application/json"), (status, body[:200])
    return json.loads(body)["error"]


# --- the route serves the dashboard ------------------------------------------------------


def test_the_link_serves_rays_own_dashboard(server: JupyterServer, head: LocalCluster) -> None:
    root = link(server, "real")
    assert re.fullmatch(r"/castray/dashboard/real/cap-[A-Za-z0-9_-]{32}/", root)
    status, headers, body = raw(server, "GET", root)
    assert status == 200 and b"Ray Dashboard" in body and b"./static/js/main" in body
    csp = headers["Content-Security-Policy"]
    assert csp.startswith("sandbox allow-scripts") and "allow-same-origin" not in csp and "default-src" not in csp
    status, _, body = raw(server, "GET", root + "api/v0/nodes?limit=5")
    nodes = json.loads(body)["data"]["result"]["result"]
    assert status == 200 and [n["state"] for n in nodes if n["is_head_node"]] == ["ALIVE"]
    status, headers, body = raw(server, "HEAD", root + "api/version")
    assert status == 200 and body == b""


def test_a_session_name_names_the_same_cluster(server: JupyterServer, head: LocalCluster) -> None:
    status, body = call(server, "GET", "/cluster/external-info")
    (real,) = [c for c in body["clusters"] if c["name"] == "real"]
    status, headers, _ = raw(server, "GET", f"/castray/dashboard/{real['session_name']}/api/version", authed(server))
    assert status == 302
    status, _, body = raw(server, "GET", headers["Location"])
    assert status == 200 and json.loads(body)["session_name"] == real["session_name"]


# --- auth: Jupyter's for minting, the capability for serving ------------------------------


def test_the_bare_route_needs_jupyters_auth_and_mints_a_link(server: JupyterServer) -> None:
    status, headers, _ = raw(server, "GET", "/castray/dashboard/real/api/v0/nodes?limit=1")
    assert status == 302 and "/login" in headers["Location"]  # a browser logs in first
    status, headers, _ = raw(server, "GET", "/castray/dashboard/real/api/v0/nodes?limit=1", authed(server))
    assert status == 302 and headers["Location"] == link(server, "real") + "api/v0/nodes?limit=1"


@pytest.mark.parametrize(
    ("forged", "status"),
    # a well-formed wrong one is refused; a malformed one is a path of the bare route (which
    # asks Jupyter's auth, then hands out the real link), or a bad path.
    [("cap-" + "A" * 32, 403), ("cap-short", 302), ("cap-" + "A" * 31 + "%2F", 302)],
)
def test_a_wrong_capability_is_refused(server: JupyterServer, forged: str, status: int) -> None:
    reply = raw(server, "GET", f"/castray/dashboard/real/{forged}/api/version")
    assert reply[0] == status
    if status == 302:
        assert "/login" in reply[1]["Location"]
    else:
        assert error_of(reply) == ("forbidden" if status == 403 else "bad_path")


def test_one_clusters_capability_does_not_open_another(server: JupyterServer) -> None:
    capability = link(server, "fake").rstrip("/").rsplit("/", 1)[1]
    reply = raw(server, "GET", f"/castray/dashboard/real/{capability}/api/version")
    assert reply[0] == 403 and error_of(reply) == "forbidden"


def test_revoked_links_stop_working(server: JupyterServer) -> None:
    old = link(server, "fake")
    assert raw(server, "GET", old + "api/version")[0] == 200
    status, body = call(server, "DELETE", "/dashboard-links?cluster=fake")
    assert status == 200 and body["revoked"] == ["fake"]
    assert raw(server, "GET", old + "api/version")[0] == 403
    new = link(server, "fake")
    assert new != old and raw(server, "GET", new + "api/version")[0] == 200


def test_unknown_and_dashboardless_clusters_are_404_json(server: JupyterServer, headless: LocalCluster) -> None:
    reply = raw(server, "GET", "/castray/dashboard/no-such-cluster/", authed(server))
    assert reply[0] == 404 and error_of(reply) == "unknown_cluster"
    status, body = call(server, "POST", "/cluster/connect-external", {"cluster_address": headless.gcs_address,
                                                                       "name": "blind"})  # fmt: skip
    assert status == 200 and body["cluster"]["dashboard_link"] is None
    try:
        reply = raw(server, "GET", "/castray/dashboard/blind/", authed(server))
        assert reply[0] == 404 and error_of(reply) == "no_dashboard" and b"no dashboard" in reply[2]
    finally:
        call(server, "DELETE", "/cluster/disconnect-external?name=blind")


# --- reads only, unless allowed ---------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_are_refused_by_default(server: JupyterServer, fake: FakeDashboard, method: str) -> None:
    before = len(fake.seen)
    reply = raw(server, method, link(server, "fake") + "echo/x", {"Origin": server.url})
    assert reply[0] == 405 and error_of(reply) == "method_not_allowed"
    assert b"dashboard_writes" in reply[2] and reply[1]["Allow"] == "GET, HEAD"
    assert len(fake.seen) == before  # nothing reached the dashboard


# --- never an open proxy ------------------------------------------------------------------


def test_no_path_or_header_leaves_the_dashboard(server: JupyterServer, fake: FakeDashboard, trap) -> None:
    port, hits = trap
    root = link(server, "fake").rstrip("/")
    elsewhere = f"127.0.0.1:{port}"
    tricks = [
        "/echo/../../../api/kernels", "/echo/%2e%2e/%2E%2E/x", "/echo/.%2e/x", "/echo/a%2fb", "/echo/a%5cb",
        f"/echo/%2F%2F{elsewhere}/x", f"//{elsewhere}/echo", f"/@{elsewhere}/echo", f"/echo/@{elsewhere}",
        f"/http://{elsewhere}/echo", f"/http:%2F%2F{elsewhere}/echo", "/echo/x%0d%0aHost:%20evil",
        "/echo/x%00y", f"/echo/x?next=http://{elsewhere}/",
    ]  # fmt: skip
    for trick in tricks:
        status, headers, body = raw(server, "GET", root + trick)
        if status == 400:
            assert error_of((status, headers, body)) == "bad_path", trick
            continue
        # Anything else was answered by the fake dashboard itself, at a path below its root.
        assert status in (200, 404), (trick, status, body[:200])
        if status == 200:
            seen = json.loads(body)
            assert seen["headers"]["Host"] == f"127.0.0.1:{fake.port}", trick
            assert seen["path"].startswith("/echo") and "\r" not in seen["path"] and "\n" not in seen["path"], trick
    status, _, body = raw(server, "GET", root + "/echo/host", {"Host": elsewhere})
    assert status in (200, 403)  # Jupyter's own Host check may refuse it; it never goes there
    if status == 200:
        assert json.loads(body)["headers"]["Host"] == f"127.0.0.1:{fake.port}"
    assert hits == []


def test_the_browsers_credentials_are_not_forwarded(server: JupyterServer) -> None:
    sent = {"Cookie": "username-127-0-0-1=secret; _xsrf=abc", "Authorization": f"token {server.token}",
            "X-XSRFToken": "abc", "Origin": server.url, "Referer": server.url + "/lab", "X-Keep": "me"}  # fmt: skip
    status, headers, body = raw(server, "GET", link(server, "fake") + "echo/creds?a=1&b=%20", sent)
    seen = json.loads(body)
    assert status == 200 and seen["query"] == "a=1&b=%20" and seen["headers"]["X-Keep"] == "me"
    lower = {k.lower() for k in seen["headers"]}
    assert not lower & {"cookie", "authorization", "x-xsrftoken", "origin", "referer"}
    assert server.token not in body.decode()
    # The dashboard's cookie never lands on Jupyter's origin.
    assert not any("dashboard=" in c for c in headers.get_all("Set-Cookie") or [])
    assert headers["Content-Security-Policy"].startswith("sandbox")


@pytest.mark.parametrize(
    ("to", "expected"),
    [("/api/v0/nodes?limit=1", "/api/v0/nodes?limit=1"), ("echo/rel", "/echo/rel"),
     ("../../../../api/kernels", "/api/kernels"), ("http://127.0.0.1:1/steal", "/"),
     ("FAKE/echo/abs", "/echo/abs")],
)  # fmt: skip
def test_redirects_stay_under_the_proxy(server: JupyterServer, fake: FakeDashboard, to: str, expected: str) -> None:
    root = link(server, "fake").rstrip("/")
    to = to.replace("FAKE", fake.url)
    status, headers, _ = raw(server, "GET", root + "/redirect?to=" + to.replace("?", "%3F"))
    assert status == 302 and headers["Location"] == root + expected


def test_a_websocket_passes_through_only_with_the_capability(server: JupyterServer) -> None:
    root = link(server, "fake")
    ws_url = server.url.replace("http", "ws") + root + "ws"

    async def talk(url: str) -> str:
        conn = await websocket_connect(HTTPRequest(url, headers={"Origin": "null"}))
        await conn.write_message("hello")
        answer = await asyncio.wait_for(conn.read_message(), 10)
        conn.close()
        return str(answer)

    assert asyncio.run(talk(ws_url)) == "echo:hello"
    with pytest.raises(HTTPClientError) as refused:
        asyncio.run(talk(ws_url.replace(root.split("/")[-2], "cap-" + "B" * 32)))
    assert refused.value.code == 403


def test_a_gone_dashboard_is_502_json(server: JupyterServer) -> None:
    with FakeDashboard(session_name="session_2026-01-01_00-00-00_000000_8") as doomed:
        status, _ = call(server, "POST", "/cluster/connect-external", {"cluster_address": doomed.url, "name": "doomed"})
        assert status == 200
        root = link(server, "doomed")
        assert raw(server, "GET", root + "api/version")[0] == 200
    try:
        reply = raw(server, "GET", root + "api/version")
        assert reply[0] == 502 and error_of(reply) == "cluster_unreachable"
    finally:
        call(server, "DELETE", "/cluster/disconnect-external?name=doomed")
    reply = raw(server, "GET", root + "api/version")  # detached: its link went with it
    assert reply[0] == 403


def test_a_silent_dashboard_is_504_json_within_its_timeout(server: JupyterServer, fake: FakeDashboard) -> None:
    fake.delay = 30.0
    try:
        reply = raw(server, "GET", link(server, "fake") + "echo/slow")
    finally:
        fake.delay = 0.0
    assert reply[0] == 504 and error_of(reply) == "timeout"


def test_the_server_keeps_to_its_document_for_the_new_route(server: JupyterServer) -> None:
    document = json.loads(raw(server, "GET", "/castray/api/openapi.json", authed(server))[2])
    assert "/castray/api/dashboard-links" in document["paths"]
    schema = json.dumps(document["components"])
    assert "dashboard_link" in schema


def test_with_writes_on_a_write_must_come_from_jupyter_or_the_dashboards_own_page(fake: FakeDashboard) -> None:
    env = {"HOME": HOME, "CASTRAY_DASHBOARD_WRITES": "true"}
    with jupyter_server(env=env) as writable:
        status, body = call(writable, "POST", "/cluster/connect-external", {"cluster_address": fake.url, "name": "w"})
        assert status == 200, body
        root = link(writable, "w")
        own = writable.url
        allowed = [{"Origin": own}, {"Origin": "null", "Referer": own + root + "#/jobs"}]
        refused = [{}, {"Origin": "http://evil.example"}, {"Origin": "null"},
                   {"Origin": "null", "Referer": "http://evil.example" + root},
                   {"Origin": "null", "Referer": own + root.replace("/w/", "/other/")}]  # fmt: skip
        for headers in allowed:
            status, _, body = raw(writable, "POST", root + "echo/write", headers)
            assert status == 200 and json.loads(body)["method"] == "POST", headers
        before = len(fake.seen)
        for headers in refused:
            reply = raw(writable, "POST", root + "echo/write", headers)
            assert reply[0] == 403 and error_of(reply) == "forbidden", headers
        assert len(fake.seen) == before


def test_a_proxied_dashboard_keeps_the_server_active(server: JupyterServer, fake: FakeDashboard) -> None:
    """As jupyter-server-proxy records activity: a JupyterHub server used only through a
    proxied dashboard (no notebook, no REST call) is not culled as idle."""
    import datetime as dt
    import time

    def last_activity() -> dt.datetime:
        status, _, body = raw(server, "GET", "/api/status", authed(server))  # /api/status itself is not activity
        assert status == 200
        return dt.datetime.fromisoformat(json.loads(body)["last_activity"].replace("Z", "+00:00"))

    prefix = urlsplit(link(server, "fake")).path  # a REST call: activity, now
    time.sleep(1.5)
    before = last_activity()
    time.sleep(1.5)
    status, _, _ = raw(server, "GET", prefix + "api/version")  # the capability, no Jupyter credentials
    assert status == 200
    after = last_activity()
    assert after - before >= dt.timedelta(seconds=1.4), (before, after)
