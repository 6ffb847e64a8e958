"""A Ray-looking dashboard that is not Ray: it answers ``/api/version`` (and the node reads)
like Ray 2.60, and otherwise shows what a proxy sent it. For the dashboard proxy's tests:

- ``/echo``: the request as received (method, path, query, headers) as JSON;
- ``/redirect?to=LOCATION``: a 302 to LOCATION;
- ``/leak``: a page holding the ``Authorization`` header it was sent, split across chunks;
- ``/hostile``: a page whose script tries the user's Jupyter session (see test_proxy.py);
- ``/ws``: a WebSocket that echoes each message prefixed with ``echo:``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from types import TracebackType
from typing import Any

from tornado import web, websocket
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from castray_nb.testing.replay import ReplayDashboard

HOSTILE_PAGE = """<!doctype html><html><head><title>totally Ray</title></head><body><pre id="out">running</pre>
<script>
var out = [];
function say(k, v) { out.push(k + "=" + v); document.getElementById("out").textContent = out.join("\\n"); }
try { say("cookie", JSON.stringify(document.cookie)); } catch (e) { say("cookie", "error:" + e.name); }
try { say("storage", String(window.localStorage.length)); } catch (e) { say("storage", "error:" + e.name); }
// A full URL, so that nothing the proxy puts in the page can redirect it: straight at
// Jupyter's API, on Jupyter's own origin (the page's URL says where that is).
var base = location.protocol + "//" + location.host + "BASE_URL";
say("target", base + "api/kernels");
fetch(base + "api/kernels", {credentials: "include"}).then(function (r) { return r.text().then(function (t) {
  say("list", r.status + ":" + t.slice(0, 60)); }); }).catch(function (e) { say("list", "error:" + e.name); })
.then(function () { return fetch(base + "api/kernels", {method: "POST", credentials: "include",
  headers: {"Content-Type": "application/json"}, body: "{}"}); })
.then(function (r) { say("start", r.status); }, function (e) { say("start", "error:" + e.name); })
.then(function () { say("done", "1"); });
</script></body></html>"""


class FakeDashboard:
    """Serve the routes above on ``host``, from a thread with its own event loop."""

    def __init__(self, session_name: str = "session_2026-01-01_00-00-00_000000_7", host: str = "127.0.0.1",
                 jupyter_base: str = "/") -> None:  # fmt: skip
        self.replay = ReplayDashboard(nodes=2, session_name=session_name)
        self.session_name = session_name
        self.host = host
        self.jupyter_base = jupyter_base
        self.seen: list[dict[str, Any]] = []
        self.delay = 0.0  # seconds /echo waits before answering: a silent dashboard
        self._sockets = bind_sockets(0, host)
        self.port = self._sockets[0].getsockname()[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-dashboard", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _app(self) -> web.Application:
        fake = self

        class Json(web.RequestHandler):
            def get(self) -> None:
                fake.seen.append({"path": self.request.path, "headers": dict(self.request.headers)})
                path = self.request.path
                if path == "/api/version":
                    body: Any = fake.replay.version
                elif path == "/api/v0/nodes":
                    body = fake.replay._nodes_reply({k: [v.decode() for v in vs] for k, vs in
                                                     self.request.query_arguments.items()})  # fmt: skip
                elif path == "/api/cluster_status":
                    body = fake.replay.cluster_status
                else:
                    raise web.HTTPError(404)
                self.set_header("Content-Type", "application/json")
                self.finish(json.dumps(body))

        class Echo(web.RequestHandler):
            async def get(self, *args: str) -> None:
                if fake.delay:
                    await asyncio.sleep(fake.delay)
                seen = {"method": self.request.method, "path": self.request.path, "query": self.request.query,
                        "headers": dict(self.request.headers.get_all())}  # fmt: skip
                fake.seen.append(seen)
                self.set_header("Content-Type", "application/json")
                self.set_header("Set-Cookie", "dashboard=1; Path=/")
                self.set_header("Content-Security-Policy", "default-src *")
                self.finish(json.dumps(seen))

            post = get

        class Redirect(web.RequestHandler):
            def get(self) -> None:
                self.redirect(self.get_query_argument("to"))

        class Leak(web.RequestHandler):
            async def get(self) -> None:
                secret = self.request.headers.get("Authorization", "none")
                self.set_header("Content-Type", "text/plain")
                self.set_header("X-Echo-Auth", secret)
                middle = len(secret) // 2
                for part in ("before ", secret[:middle], secret[middle:], " after"):
                    self.write(part)
                    await self.flush()

        class Hostile(web.RequestHandler):
            def get(self) -> None:
                self.set_header("Content-Type", "text/html")
                self.finish(HOSTILE_PAGE.replace("BASE_URL", fake.jupyter_base))

        class Ws(websocket.WebSocketHandler):
            def on_message(self, message: str | bytes) -> None:
                self.write_message("echo:" + (message if isinstance(message, str) else message.decode()))

        return web.Application([("/api/version", Json), ("/api/v0/nodes", Json), ("/api/cluster_status", Json),
                                (r"/echo(/.*)?", Echo), ("/redirect", Redirect), ("/leak", Leak),
                                ("/hostile", Hostile), ("/ws", Ws)])  # fmt: skip

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        server = HTTPServer(self._app())
        server.add_sockets(self._sockets)
        loop.call_soon(self._ready.set)
        loop.run_forever()
        server.stop()
        loop.run_until_complete(server.close_all_connections())
        loop.close()

    def __enter__(self) -> FakeDashboard:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
