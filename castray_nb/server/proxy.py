"""Every attached cluster's Ray dashboard, served through the Jupyter server.

Routes (under the server's base URL):

``GET castray/dashboard/{cluster}/{path}``
    Jupyter's own auth (token or login cookie). Mints the cluster's capability and
    redirects to the capability route with the same path and query. This is the link a
    kernel shows: it only knows the cluster's session name.

``GET|HEAD|WebSocket castray/dashboard/{cluster}/{capability}/{path}``
    The proxy. ``{cluster}`` is the name of a cluster attached in the server's session or a
    session name (of one of those, of a cluster a kernel of this user registered, or of one
    the server discovers on this machine). ``{capability}`` is a random per-cluster secret,
    minted only for an authenticated user, dropped when the cluster goes and on
    ``DELETE castray/api/dashboard-links``. The target is always the cluster's recorded
    dashboard URL: the request only ever chooses a path below it.

Why a capability rather than Jupyter's cookie: pages served here run on Jupyter's origin,
and any process on a shared machine can pose as a Ray dashboard. So every reply carries
``Content-Security-Policy: sandbox ...`` without ``allow-same-origin``: the page runs in an
opaque origin, cannot read Jupyter's cookies (``_xsrf`` included) or the replies of
Jupyter's API, and its requests to the proxy are cross-origin, so they carry no cookies.
The capability in the path is what lets those requests through, and it opens this one
dashboard, read-only, and nothing else.

Why Tornado's own client and not jupyter-server-proxy: that package enables its own
``/proxy/<port>/`` routes for every local port as soon as it is installed (same-origin, no
sandbox: the hazard above), and pinning the target, dropping credentials, the sandbox and
the redirect rewriting would each override one of its methods. Tornado (which Jupyter
Server runs on) streams both HTTP and WebSocket. The proxy is built, as
jupyter-server-proxy builds its own, from small steps a subclass can override: the target
(:mod:`.targets`), the path rules and the rewriting (:mod:`.rewrite`), the request headers
(:meth:`DashboardProxyHandler.proxy_request_headers`), the reply's headers and body
(:meth:`~DashboardProxyHandler.rewrite_response_headers`,
:meth:`~DashboardProxyHandler.rewrite_body`) and the activity it records
(:meth:`~DashboardProxyHandler.record_activity`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import gzip
import re
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import httpclient, httputil, web, websocket
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from ..core.auth import TOKEN_SOURCES, Grant, Token, token_for_url
from ..core.links import PROXY_PATH
from ..core.settings import Settings
from .errors import ApiError, JsonErrors
from .rewrite import Redactor, checked_query, inject_shim, rewrite_location, upstream_path
from .state import ServerState, server_state
from .targets import Target

CAPABILITY = re.compile(r"cap-[A-Za-z0-9_-]{32}")
READ_METHODS = ("GET", "HEAD")
SANDBOX = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "proxy-connection",
}  # fmt: skip
# Never forwarded upstream: the browser's credentials for Jupyter, and where the page is.
REQUEST_DROPPED = {"host", "cookie", "authorization", "x-xsrftoken", "x-csrftoken", "origin", "referer",
                   "content-length"}  # fmt: skip
# Never passed back: cookies (they would land on Jupyter's origin) and the dashboard's own
# security headers (ours replace them).
REPLY_DROPPED = {"set-cookie", "content-security-policy", "content-security-policy-report-only", "x-frame-options",
                 "content-length", "access-control-allow-origin", "access-control-allow-credentials"}  # fmt: skip
HTML_LIMIT = 4 * 1024 * 1024


def _client() -> SimpleAsyncHTTPClient:
    return SimpleAsyncHTTPClient(force_instance=False, max_clients=64)  # one per IOLoop


def _proxy_timeout(settings: Settings) -> float:
    """How long the dashboard may take to start answering one proxied request."""
    return 5 * settings.http_timeout


def capability_prefix(base_url: str, key: str, capability: str) -> str:
    return f"{base_url.rstrip('/')}/{PROXY_PATH}/{quote(key, safe='')}/{capability}"


def dashboard_link(state: ServerState, base_url: str, key: str, has_dashboard: bool) -> str | None:
    """The link the server hands out (REST): the capability route's root."""
    return capability_prefix(base_url, key, state.capabilities.mint(key)) + "/" if has_dashboard else None


def _connection_listed(headers: httputil.HTTPHeaders) -> set[str]:
    return {h.strip().lower() for h in headers.get("Connection", "").split(",") if h.strip()}


class _ProxyBase(JsonErrors, JupyterHandler):
    """JSON errors; our own security headers in place of Jupyter's."""

    def allowed_methods(self) -> list[str]:
        return list(READ_METHODS)

    @property
    def castray(self) -> ServerState:
        return server_state(self.settings)

    @property
    def content_security_policy(self) -> str:
        # Not Jupyter's API policy (default-src 'none' blanks Ray's app): a sandbox, so the
        # page runs in an opaque origin, and framed only by Jupyter's own pages.
        return f"{SANDBOX}; frame-ancestors 'self'"

    def key_and_rest(self) -> tuple[str, str]:
        """``{cluster}`` and the raw rest of the path, from the raw request path."""
        base = self.base_url.rstrip("/") + "/" + PROXY_PATH + "/"
        path = self.request.path
        if not path.startswith(base):
            raise ApiError(404, "not_found", "not a dashboard route")
        key_raw, _, rest = path[len(base) :].partition("/")
        key = unquote(key_raw)
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", key) or key in (".", ".."):
            raise ApiError(400, "bad_path", "the cluster part of the path is not a cluster name")
        return key, ("/" + rest) if rest or path.endswith(key_raw + "/") else ""

    async def resolve(self, key: str) -> Target:
        """The target of ``{cluster}``: on the loop when no I/O is needed (every request for
        an attached cluster's page and assets), else in the server's pool."""
        targets = self.castray.targets
        target = targets.known(key)
        if target is not None:
            return target
        return await asyncio.get_running_loop().run_in_executor(self.castray.lanes.pool, targets.resolve, key)


class DashboardEntryHandler(_ProxyBase):
    """The bare route: Jupyter's auth, then a redirect to the capability route."""

    @web.authenticated
    async def get(self) -> None:
        key, rest = self.key_and_rest()
        if not rest:  # .../dashboard/NAME → .../dashboard/NAME/
            self.redirect(self.request.path + "/" + (f"?{self.request.query}" if self.request.query else ""))
            return
        path = upstream_path(rest)
        await self.resolve(key)  # 404/502 now, as JSON, rather than from the page
        prefix = capability_prefix(self.base_url, key, self.castray.capabilities.mint(key))
        query = checked_query(self.request.query)
        self.redirect(prefix + path + (f"?{query}" if query else ""))

    head = get


@dataclass
class _Reply:
    """What the dashboard has answered so far to one proxied request."""

    status: int | None = None
    reason: str | None = None
    headers: httputil.HTTPHeaders = field(default_factory=httputil.HTTPHeaders)
    html: list[bytes] | None = None  # a page held whole, for the shim
    started: bool = False  # our reply's status and headers are set
    refused: bool = False  # the dashboard answered 401
    headers_in: asyncio.Event = field(default_factory=asyncio.Event)


class DashboardProxyHandler(_ProxyBase, websocket.WebSocketHandler):
    """The capability route: HTTP and WebSocket to one cluster's dashboard."""

    _upstream_ws: websocket.WebSocketClientConnection | None = None
    _gone = False

    # Jupyter's cookie is not what lets a request through here: the capability is.
    def check_xsrf_cookie(self) -> None:
        pass

    def check_origin(self, origin_to_satisfy_tornado: str = "") -> bool:
        return True  # the page's origin is opaque ("null"); the capability is the auth

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()  # Jupyter's checks of the Host header; the user, if any
        key, rest = self.key_and_rest()
        capability, _, tail = rest[1:].partition("/")
        if not CAPABILITY.fullmatch(capability) or not self.castray.capabilities.check(key, capability):
            raise ApiError(403, "forbidden", "this dashboard link has expired or is not valid; open it again")
        self.key, self.capability = key, capability
        self.bare = not tail and not rest[1:].endswith("/")  # .../cap-x: the page needs .../cap-x/
        self.path_ = upstream_path("/" + tail)
        self.query_ = checked_query(self.request.query)
        self.prefix = capability_prefix(self.base_url, key, capability)
        self.target = await self.resolve(key)
        self.session_settings = self.castray.session.settings
        if (self.request.method or "") not in READ_METHODS:
            self._check_write()

    def _check_write(self) -> None:
        if not self.session_settings.dashboard_writes:
            raise ApiError(
                405,
                "method_not_allowed",
                f"{self.request.method} is not passed to a dashboard: the proxy only reads. "
                "Set dashboard_writes (CASTRAY_DASHBOARD_WRITES=true) to allow it",
            )
        own = f"{self.request.protocol}://{self.request.host}"
        origin = self.request.headers.get("Origin")
        referer = self.request.headers.get("Referer", "")
        from_jupyter = origin == own
        from_this_dashboard = origin in (None, "null") and referer.startswith(own + self.prefix + "/")
        if not (from_jupyter or from_this_dashboard):
            raise ApiError(403, "forbidden", "a write must come from the Jupyter origin or this dashboard's page")

    # ----- the steps a subclass may override

    def upstream_url(self, scheme: str = "http") -> str:
        """Where the request goes: the target's origin, with only the checked path and query."""
        origin = self.target.origin if scheme == "http" else "ws" + self.target.origin[4:]
        return origin + self.path_ + (f"?{self.query_}" if self.query_ else "")

    def proxy_request_headers(self, token: Token | None) -> dict[str, str]:
        """The browser's headers without its credentials for Jupyter; the token when granted."""
        listed = _connection_listed(self.request.headers)
        headers = {
            k: v
            for k, v in self.request.headers.get_all()
            if k.lower() not in HOP_BY_HOP | REQUEST_DROPPED | listed and not k.lower().startswith("sec-websocket")
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
            headers["Accept-Encoding"] = "identity"  # so the reply can be searched for it
        return headers

    def rewrite_response_headers(self, reply: _Reply, redactor: Redactor) -> None:
        """Our reply's status and headers from the dashboard's: no cookies, no security
        headers of its own, redirects kept under the proxy, the token masked."""
        status = reply.status or 502
        headers = reply.headers
        reply.started = True
        self.set_status(status, reply.reason or None)
        self.clear_header("Content-Type")
        dropped = HOP_BY_HOP | REPLY_DROPPED | _connection_listed(headers) | {"server", "date"}
        seen: set[str] = set()
        for name, value in headers.get_all():
            lower = name.lower()
            if lower in dropped:
                continue
            if lower == "location":
                value = rewrite_location(redactor.text(value), self.target.origin, self.path_, self.prefix)
            (self.add_header if lower in seen else self.set_header)(name, redactor.text(value))
            seen.add(lower)
        if self.request.headers.get("Origin") == "null":
            # The sandboxed page's own requests (fonts, XHR) are cross-origin from its opaque
            # origin: let it read them, without credentials (the capability is in the URL).
            self.set_header("Access-Control-Allow-Origin", "null")
        content_type = headers.get("Content-Type", "")
        if content_type.lower().startswith("text/html") and status == 200 and self.request.method != "HEAD":
            reply.html = []  # held whole, to put the shim in
        elif "Content-Length" in headers and not (redactor.secret and "gzip" in headers.get("Content-Encoding", "")):
            self.set_header("Content-Length", headers["Content-Length"])

    def rewrite_body(self, html: bytes, encoding: str) -> bytes:
        """A whole HTML page, decoded, with the shim that keeps its calls under the proxy."""
        if encoding in ("gzip", "deflate"):
            html = gzip.decompress(html) if encoding == "gzip" else zlib.decompress(html)
            self.clear_header("Content-Encoding")
        return inject_shim(html, self.prefix)

    def record_activity(self) -> None:
        """Tell Jupyter Server this user is active (as jupyter-server-proxy does), so a
        JupyterHub server used only through a proxied dashboard is not culled as idle."""
        self.settings["api_last_activity"] = dt.datetime.now(dt.UTC)

    # ----- HTTP

    # Authorised by the capability (checked in prepare), not by Jupyter's login, also
    # where the server refuses unauthenticated access.
    @allow_unauthenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            await self._open_upstream_ws()
            await websocket.WebSocketHandler.get(self, *args, **kwargs)
            return
        await self._forward()

    @allow_unauthenticated
    async def head(self, *args: Any, **kwargs: Any) -> None:
        await self._forward()

    @allow_unauthenticated
    async def post(self, *args: Any, **kwargs: Any) -> None:
        await self._forward()

    put = patch = delete = options = post

    async def _forward(self) -> None:
        if self.bare:
            self.redirect(self.prefix + "/" + (f"?{self.query_}" if self.query_ else ""))
            return
        self.record_activity()
        grant = token_for_url(self.target.origin)
        redactor = Redactor(grant.token)
        reply = _Reply()
        request = self._upstream_request(grant.token, reply, redactor)
        fetch: asyncio.Future[Any] = asyncio.ensure_future(_client().fetch(request, raise_error=False))
        await self._until_headers(fetch, reply, grant)
        try:
            response = await fetch
        except (httpclient.HTTPClientError, OSError) as exc:
            await self._broke_off(reply, exc)
            return
        if not reply.started:  # no end of headers seen (should not happen)
            raise self._unreachable(f"answered {response.code} without headers")
        if reply.html is not None:
            encoding = reply.headers.get("Content-Encoding", "").lower()
            self.write(redactor.feed(self.rewrite_body(b"".join(reply.html), encoding)))
        tail = redactor.close()
        if tail:
            self.write(tail)
        if not self._gone:
            self.finish()

    async def _broke_off(self, reply: _Reply, exc: Exception) -> None:
        """The upstream fetch failed: end a reply already under way, else say why as JSON."""
        if reply.started:
            if not self._gone:
                await self.finish()
            return
        if isinstance(exc, httpclient.HTTPClientError):
            code, why = (504, "timeout") if exc.code == 599 and "Timeout" in str(exc) else (502, "cluster_unreachable")
            raise ApiError(code, why, f"the dashboard of {self.target.label}: {exc}") from None
        raise self._unreachable(exc) from None

    def _upstream_request(self, token: Token | None, reply: _Reply, redactor: Redactor) -> httpclient.HTTPRequest:
        method = self.request.method or "GET"
        return httpclient.HTTPRequest(
            self.upstream_url(),
            method=method,
            headers=self.proxy_request_headers(token),
            body=self.request.body if method not in READ_METHODS else None,
            follow_redirects=False,
            decompress_response=False,
            allow_nonstandard_methods=True,
            connect_timeout=self.session_settings.http_timeout,
            request_timeout=3600.0,
            header_callback=functools.partial(self._upstream_header, reply, redactor),
            streaming_callback=functools.partial(self._upstream_chunk, reply, redactor) if method != "HEAD" else None,
        )

    def _upstream_header(self, reply: _Reply, redactor: Redactor, line: str) -> None:
        if self._gone:
            return
        if line.startswith("HTTP/"):
            start = httputil.parse_response_start_line(line.strip())
            reply.status, reply.reason, reply.headers = start.code, start.reason, httputil.HTTPHeaders()
        elif line.strip():
            reply.headers.parse_line(line)
        elif reply.status is not None and reply.status >= 200:
            if reply.status == 401:  # answered by _until_headers: raised here, a closing connection would win
                reply.refused = True
            else:
                self.rewrite_response_headers(reply, redactor)
            reply.headers_in.set()

    def _upstream_chunk(self, reply: _Reply, redactor: Redactor, chunk: bytes) -> None:
        if self._gone:
            raise OSError("the browser went away")
        if reply.refused:
            return
        if reply.html is not None:
            reply.html.append(chunk)
            if sum(map(len, reply.html)) > HTML_LIMIT:
                raise OSError("page too large to pass through")
            return
        self.write(redactor.feed(chunk))
        self.flush()

    async def _until_headers(self, fetch: asyncio.Future[Any], reply: _Reply, grant: Grant) -> None:
        """Wait for the dashboard's headers (or its end), at most the proxy timeout."""
        waited = _proxy_timeout(self.session_settings)
        headers_seen: asyncio.Future[Any] = asyncio.ensure_future(reply.headers_in.wait())
        done, _ = await asyncio.wait([fetch, headers_seen], timeout=waited, return_when=asyncio.FIRST_COMPLETED)
        headers_seen.cancel()
        if not done:
            self._gone = True
            fetch.add_done_callback(lambda f: f.exception())
            raise ApiError(504, "timeout", f"the dashboard of {self.target.label} did not answer within {waited:g} s")
        if reply.refused:
            fetch.add_done_callback(lambda f: f.exception())
            raise self._token_refused(grant)

    def on_connection_close(self) -> None:
        self._gone = True
        super().on_connection_close()

    # ----- WebSocket

    async def _open_upstream_ws(self) -> None:
        grant = token_for_url(self.target.origin)
        headers = {k: v for k, v in self.proxy_request_headers(grant.token).items() if k.lower() != "accept-encoding"}
        protocols = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        request = httpclient.HTTPRequest(self.upstream_url("ws"), headers=headers,
                                         connect_timeout=self.session_settings.http_timeout,
                                         request_timeout=_proxy_timeout(self.session_settings))  # fmt: skip
        self.record_activity()
        try:
            self._upstream_ws = await websocket.websocket_connect(
                request, on_message_callback=self._from_upstream, subprotocols=protocols or None
            )
        except httpclient.HTTPClientError as exc:
            if exc.code == 401:
                raise self._token_refused(grant) from None
            raise self._unreachable(f"refused the WebSocket: {exc}") from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: BaseException | str) -> ApiError:
        return ApiError(502, "cluster_unreachable", f"the dashboard of {self.target.label} is unreachable: {exc}")

    def _token_refused(self, grant: Grant) -> ApiError:
        token = grant.token
        where = f"sent the one from {token.source}" if token else f"it has none (looked in {TOKEN_SOURCES})"
        message = (
            grant.refusal(self.target.label) or f"{self.target.label} requires a Ray auth token; the server {where}"
        )
        return ApiError(502, "cluster_auth_required", message)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        upstream = self._upstream_ws
        return upstream.selected_subprotocol if upstream is not None else None

    def _from_upstream(self, message: str | bytes | None) -> None:
        if message is None:
            if self.ws_connection is not None:
                self.close()
            return
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            pass

    async def on_message(self, message: str | bytes) -> None:
        if self._upstream_ws is not None:
            self.record_activity()
            await self._upstream_ws.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self._upstream_ws is not None:
            self._upstream_ws.close()
            self._upstream_ws = None
