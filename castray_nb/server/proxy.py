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
Server runs on) streams both HTTP and WebSocket; the proxy is this module.
"""

from __future__ import annotations

import asyncio
import gzip
import hmac
import json
import logging
import re
import secrets
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import httpclient, httputil, web, websocket
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from .. import api
from ..core.address import is_this_machine
from ..core.auth import TOKEN_SOURCES, Grant, Token, token_for_url
from ..core.client import ClusterClient
from ..core.errors import AuthRequired, CastrayError, ClusterTimeout
from ..core.links import PROXY_PATH
from ..core.registry import registrations
from ..core.settings import Settings

log = logging.getLogger("castray_nb")

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
VERIFIED_FOR_S = 30.0
DISCOVERED_FOR_S = 10.0


class ProxyError(web.HTTPError):
    """A refusal answered as ``{"error": code, "message": text}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, "%s", message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Target:
    key: str  # what the route names: the cluster's name or session name
    origin: str  # scheme://host:port of its dashboard, nothing else
    label: str  # for messages


# --------------------------------------------------------------------------- capabilities


class Capabilities:
    """One random capability per cluster key, until revoked."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}

    def mint(self, key: str) -> str:
        if key not in self._by_key:
            self._by_key[key] = "cap-" + secrets.token_urlsafe(24)
        return self._by_key[key]

    def check(self, key: str, capability: str) -> bool:
        expected = self._by_key.get(key)
        return expected is not None and hmac.compare_digest(expected, capability)

    def revoke(self, key: str | None = None) -> list[str]:
        gone = list(self._by_key) if key is None else [k for k in (key,) if k in self._by_key]
        for k in gone:
            del self._by_key[k]
        return gone


CAPABILITIES = Capabilities()


# --------------------------------------------------------------------------- targets


class Targets:
    """Resolves a route's ``{cluster}`` to a dashboard origin, never from the request."""

    def __init__(self) -> None:
        self._verified: dict[str, tuple[str, float]] = {}
        self._discovered: tuple[float, dict[str, str | None]] = (0.0, {})

    def settings(self) -> Settings:
        return api.session().settings

    def known(self, key: str) -> Target | None:
        """Without I/O: an attached cluster's target, or one verified lately; else None."""
        attached = [c for c in api.session().clusters() if key in (c.name, c.session_name)]
        if attached:
            cluster = attached[0]
            return self._target(key, cluster.dashboard_url, f"cluster {cluster.name!r}")
        cached = self._verified.get(key)
        if cached and cached[1] > time.monotonic():
            return Target(key, cached[0], f"cluster {key!r}")
        return None

    def resolve(self, key: str) -> Target:
        """Blocking (it may read a dashboard's ``/api/version`` or discover): run in a worker."""
        target = self.known(key)
        if target is not None:
            return target
        registered = [r for r in registrations() if r.session_name == key]
        if registered:
            return self._verify(key, registered[0].dashboard_url, "registered by a kernel")
        discovered = self._discover()
        if key in discovered:
            url = discovered[key]
            return self._target(key, url, f"cluster {key!r}") if url is None else self._verify(key, url, "discovered")
        raise ProxyError(404, "unknown_cluster", f"no cluster named {key!r}: not attached, registered or discovered")

    def forget(self, key: str | None = None) -> None:
        if key is None:
            self._verified.clear()
        else:
            self._verified.pop(key, None)

    def _target(self, key: str, url: str | None, label: str) -> Target:
        if not url:
            raise ProxyError(404, "no_dashboard", f"{label} has no dashboard (started without one)")
        parts = urlsplit(url)
        return Target(key, f"{parts.scheme}://{parts.netloc}", label)

    def _verify(self, key: str, url: str, how: str) -> Target:
        """The server's own checks on a cluster it did not attach: its ``remote`` setting,
        its token sources, and that the dashboard is that session's."""
        settings = self.settings()
        host = urlsplit(url).hostname or ""
        if not settings.remote and not is_this_machine(host):
            raise ProxyError(403, "remote_refused", f"{key!r} ({how}) is not on this machine, and remote is off")
        try:
            version = ClusterClient(None, url, settings).version()
        except AuthRequired as exc:
            raise ProxyError(502, "cluster_auth_required", f"the server cannot read {key!r}: {exc}") from None
        except ClusterTimeout as exc:
            raise ProxyError(504, "timeout", str(exc)) from None
        except CastrayError as exc:
            raise ProxyError(502, "cluster_unreachable", f"{key!r} ({how}): {exc}") from None
        if version.get("session_name") != key:
            raise ProxyError(404, "unknown_cluster", f"the dashboard registered for {key!r} now serves another session")
        target = self._target(key, url, f"cluster {key!r}")
        self._verified[key] = (target.origin, time.monotonic() + VERIFIED_FOR_S)
        return target

    def _discover(self) -> dict[str, str | None]:
        when, found = self._discovered
        if time.monotonic() - when > DISCOVERED_FOR_S:
            # Another user's dashboard is served only when it was attached on purpose.
            found = {c.name: c.dashboard_url for c in api.session().discover(connect=False) if not c.other_user}
            self._discovered = (time.monotonic(), found)
        return found


TARGETS = Targets()


def revoke(key: str | None = None) -> list[str]:
    """Drop capabilities (all, or one cluster's); links minted before stop working."""
    TARGETS.forget(key)
    return CAPABILITIES.revoke(key)


# --------------------------------------------------------------------------- paths


def upstream_path(raw: str) -> str:
    """The path to ask the dashboard for, from the raw (percent-encoded) rest of the route.

    Each segment is decoded once and checked: ``.``/``..`` (also ``%2e%2e``), an encoded
    slash or backslash, or a control character (CR/LF, NUL) is 400. Empty segments collapse,
    so the path can never name another host (``//evil``). What is left is re-encoded, so
    the dashboard sees exactly the segments that were checked.
    """
    if not raw:
        return "/"
    if not raw.startswith("/"):
        raise ProxyError(400, "bad_path", "the path must begin with '/'")
    out: list[str] = []
    for segment in raw.split("/")[1:]:
        text = unquote(segment, errors="strict") if "%" in segment else segment
        if text in (".", "..") or any(c in text for c in "/\\") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            raise ProxyError(400, "bad_path", "the path may not hold '.', '..', encoded slashes or control characters")
        if text:
            out.append(quote(text, safe="!$&'()*+,;=:@~"))
    return "/" + "/".join(out) + ("/" if raw.endswith("/") and out else "")


def checked_query(query: str) -> str:
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in query):
        raise ProxyError(400, "bad_path", "the query may not contain spaces or control characters")
    return query


def rewrite_location(location: str, origin: str, upstream: str, prefix: str) -> str:
    """A dashboard's redirect, kept under the proxy: resolved against the page it answered,
    then re-rooted at ``prefix``; a redirect to anywhere else lands on the dashboard's root."""
    resolved = urlsplit(urljoin(origin + upstream, location))
    path = resolved.path if f"{resolved.scheme}://{resolved.netloc}" == origin else "/"
    return prefix + (path or "/") + (f"?{resolved.query}" if resolved.query else "")


class Redactor:
    """Replaces the token in a stream, also across chunk boundaries (same length, so a
    Content-Length stays right)."""

    def __init__(self, token: Token | None) -> None:
        self.secret = token.value.encode() if token and len(token.value) >= 4 else b""
        self.mask = b"*" * len(self.secret)
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self.secret:
            return chunk
        data = (self.held + chunk).replace(self.secret, self.mask)
        split = max(0, len(data) - (len(self.secret) - 1))  # a token's beginning may end a chunk
        self.held, out = data[split:], data[:split]
        return out

    def close(self) -> bytes:
        out, self.held = self.held, b""
        return out

    def text(self, value: str) -> str:
        return value.replace(self.secret.decode(), self.mask.decode()) if self.secret else value


# The page's leading-slash calls (Ray 2.60: /api/authentication_mode, /api/authenticate,
# /api/grafana_health) would leave the proxy for Jupyter's own /api/: this shim, put first
# in every HTML page, sends any same-origin absolute path back under the proxy. The page is
# sandboxed (opaque origin), where localStorage, sessionStorage and document.cookie throw;
# Ray's app reads them, so they get in-memory stand-ins.
_SHIM = """<script>(function(){
var P=%(prefix)s;
function fix(u){try{if(typeof u!=="string")return u;
if(u.charAt(0)==="/"&&u.charAt(1)!=="/"&&u.indexOf(P)!==0)return P+u;}catch(e){}return u;}
var f=window.fetch;if(f)window.fetch=function(i,o){return f.call(this,typeof i==="string"?fix(i):i,o);};
var x=XMLHttpRequest.prototype.open;XMLHttpRequest.prototype.open=function(m,u){
var a=Array.prototype.slice.call(arguments);a[1]=fix(u);return x.apply(this,a);};
var W=window.WebSocket;if(W){window.WebSocket=function(u,p){if(typeof u==="string"&&u.charAt(0)==="/")
u=(location.protocol==="https:"?"wss://":"ws://")+location.host+fix(u);return p===undefined?new W(u):new W(u,p);};
window.WebSocket.prototype=W.prototype;}
function mem(){var d={};return{getItem:function(k){return k in d?d[k]:null;},setItem:function(k,v){d[k]=String(v);},
removeItem:function(k){delete d[k];},clear:function(){d={};},key:function(i){return Object.keys(d)[i]||null;},
get length(){return Object.keys(d).length;}};}
try{document.cookie;}catch(e){Object.defineProperty(document,"cookie",{get:function(){return "";},
set:function(){},configurable:true});}
["localStorage","sessionStorage"].forEach(function(n){try{window[n].length;}catch(e){
try{Object.defineProperty(window,n,{value:mem(),configurable:true});}catch(e2){}}});
})();</script>"""


def inject_shim(html: bytes, prefix: str) -> bytes:
    script = (_SHIM % {"prefix": json.dumps(prefix)}).encode()
    match = re.search(rb"<head[^>]*>", html, re.IGNORECASE)
    at = match.end() if match else 0
    return html[:at] + script + html[at:]


# --------------------------------------------------------------------------- handlers


def _client() -> SimpleAsyncHTTPClient:
    return SimpleAsyncHTTPClient(force_instance=False, max_clients=64)  # one per IOLoop


def _proxy_timeout(settings: Settings) -> float:
    """How long the dashboard may take to start answering one proxied request."""
    return 5 * settings.http_timeout


class _ProxyBase(JupyterHandler):
    """JSON errors; our own security headers in place of Jupyter's."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ProxyError):
            code, message = exc.code, exc.message
        elif isinstance(exc, web.HTTPError):
            code, message = (
                {401: "unauthorized", 403: "forbidden", 405: "method_not_allowed"}.get(status_code, "error"),
                exc.log_message or self._reason,
            )
        else:
            code, message = "internal_error", "unexpected server error (see the server log)"
        if status_code == 405:
            self.set_header("Allow", ", ".join(READ_METHODS))
        self.clear_header("Content-Encoding")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": code, "message": message}))

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
            raise ProxyError(404, "not_found", "not a dashboard route")
        key_raw, _, rest = path[len(base) :].partition("/")
        key = unquote(key_raw)
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", key) or key in (".", ".."):
            raise ProxyError(400, "bad_path", "the cluster part of the path is not a cluster name")
        return key, ("/" + rest) if rest or path.endswith(key_raw + "/") else ""


async def _resolve(key: str) -> Target:
    """The target of ``{cluster}``: on the loop when no I/O is needed (every request for an
    attached cluster's page and assets), else in the server's pool."""
    target = TARGETS.known(key)
    if target is not None:
        return target
    from .handlers import _POOL  # the server's pool of workers for blocking core calls

    return await asyncio.get_running_loop().run_in_executor(_POOL, TARGETS.resolve, key)


class DashboardEntryHandler(_ProxyBase):
    """The bare route: Jupyter's auth, then a redirect to the capability route."""

    @web.authenticated
    async def get(self) -> None:
        key, rest = self.key_and_rest()
        if not rest:  # .../dashboard/NAME → .../dashboard/NAME/
            self.redirect(self.request.path + "/" + (f"?{self.request.query}" if self.request.query else ""))
            return
        path = upstream_path(rest)
        await _resolve(key)  # 404/502 now, as JSON, rather than from the page
        prefix = capability_prefix(self.base_url, key, CAPABILITIES.mint(key))
        query = checked_query(self.request.query)
        self.redirect(prefix + path + (f"?{query}" if query else ""))

    head = get


def capability_prefix(base_url: str, key: str, capability: str) -> str:
    return f"{base_url.rstrip('/')}/{PROXY_PATH}/{quote(key, safe='')}/{capability}"


def dashboard_link(base_url: str, key: str, has_dashboard: bool) -> str | None:
    """The link the server hands out (REST): the capability route's root."""
    return capability_prefix(base_url, key, CAPABILITIES.mint(key)) + "/" if has_dashboard else None


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
        if not CAPABILITY.fullmatch(capability) or not CAPABILITIES.check(key, capability):
            raise ProxyError(403, "forbidden", "this dashboard link has expired or is not valid; open it again")
        self.key, self.capability = key, capability
        self.bare = not tail and not rest[1:].endswith("/")  # .../cap-x: the page needs .../cap-x/
        self.path_ = upstream_path("/" + tail)
        self.query_ = checked_query(self.request.query)
        self.prefix = capability_prefix(self.base_url, key, capability)
        self.target = await _resolve(key)
        self.session_settings = api.session().settings
        method = self.request.method or ""
        if method not in READ_METHODS:
            self._check_write()

    def _check_write(self) -> None:
        if not self.session_settings.dashboard_writes:
            raise ProxyError(
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
            raise ProxyError(403, "forbidden", "a write must come from the Jupyter origin or this dashboard's page")

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

    def _upstream_headers(self, token: Token | None) -> dict[str, str]:
        connection_listed = {
            h.strip().lower() for h in self.request.headers.get("Connection", "").split(",") if h.strip()
        }
        headers = {
            k: v
            for k, v in self.request.headers.get_all()
            if k.lower() not in HOP_BY_HOP | REQUEST_DROPPED | connection_listed
            and not k.lower().startswith("sec-websocket")
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
            headers["Accept-Encoding"] = "identity"  # so the reply can be searched for it
        return headers

    async def _forward(self) -> None:
        if self.bare:
            self.redirect(self.prefix + "/" + (f"?{self.query_}" if self.query_ else ""))
            return
        grant = token_for_url(self.target.origin)
        token = grant.token
        redactor = Redactor(token)
        url = self.target.origin + self.path_ + (f"?{self.query_}" if self.query_ else "")
        method = self.request.method or "GET"
        state: dict[str, Any] = {"status": None, "headers": httputil.HTTPHeaders(), "html": None, "started": False}
        headers_in = asyncio.Event()

        def on_header(line: str) -> None:
            if self._gone:
                return
            if line.startswith("HTTP/"):
                start = httputil.parse_response_start_line(line.strip())
                state["status"], state["reason"], state["headers"] = start.code, start.reason, httputil.HTTPHeaders()
            elif line.strip():
                state["headers"].parse_line(line)
            elif state["status"] is not None and state["status"] >= 200:
                if state["status"] == 401:  # answered below: raised here, a closing connection would win
                    state["refused"] = True
                else:
                    self._start_reply(state, redactor)
                headers_in.set()

        def on_chunk(chunk: bytes) -> None:
            if self._gone:
                raise OSError("the browser went away")
            if state.get("refused"):
                return
            if state["html"] is not None:
                state["html"].append(chunk)
                if sum(map(len, state["html"])) > HTML_LIMIT:
                    raise OSError("page too large to pass through")
                return
            self.write(redactor.feed(chunk))
            self.flush()

        request = httpclient.HTTPRequest(
            url,
            method=method,
            headers=self._upstream_headers(token),
            body=self.request.body if method not in READ_METHODS else None,
            follow_redirects=False,
            decompress_response=False,
            allow_nonstandard_methods=True,
            connect_timeout=self.session_settings.http_timeout,
            request_timeout=3600.0,
            header_callback=on_header,
            streaming_callback=on_chunk if method != "HEAD" else None,
        )
        fetch: asyncio.Future[Any] = asyncio.ensure_future(_client().fetch(request, raise_error=False))
        waited = _proxy_timeout(self.session_settings)
        headers_seen: asyncio.Future[Any] = asyncio.ensure_future(headers_in.wait())
        done, _ = await asyncio.wait([fetch, headers_seen], timeout=waited, return_when=asyncio.FIRST_COMPLETED)
        headers_seen.cancel()
        if not done:
            self._gone = True
            fetch.add_done_callback(lambda f: f.exception())
            raise ProxyError(504, "timeout", f"the dashboard of {self.target.label} did not answer within {waited:g} s")
        if state.get("refused"):
            fetch.add_done_callback(lambda f: f.exception())
            raise self._token_refused(grant)
        try:
            response = await fetch
        except httpclient.HTTPClientError as exc:
            if state["started"]:
                await self.finish()
                return
            code, why = (504, "timeout") if exc.code == 599 and "Timeout" in str(exc) else (502, "cluster_unreachable")
            raise ProxyError(code, why, f"the dashboard of {self.target.label}: {exc}") from None
        except OSError as exc:
            if state["started"] and not self._gone:
                await self.finish()
            if state["started"]:
                return
            raise self._unreachable(exc) from None
        if not state["started"]:  # no header_callback end (should not happen): answer from the response
            raise self._unreachable(f"answered {response.code} without headers")
        if state["html"] is not None:
            body = b"".join(state["html"])
            encoding = state["headers"].get("Content-Encoding", "").lower()
            if encoding in ("gzip", "deflate"):
                body = gzip.decompress(body) if encoding == "gzip" else zlib.decompress(body)
                self.clear_header("Content-Encoding")
            self.write(redactor.feed(inject_shim(body, self.prefix)))
        tail = redactor.close()
        if tail:
            self.write(tail)
        if not self._gone:
            self.finish()

    def _start_reply(self, state: dict[str, Any], redactor: Redactor) -> None:
        status: int = state["status"]
        headers: httputil.HTTPHeaders = state["headers"]
        state["started"] = True
        self.set_status(status, state.get("reason") or None)
        self.clear_header("Content-Type")
        listed = {h.strip().lower() for h in headers.get("Connection", "").split(",") if h.strip()}
        seen: set[str] = set()
        for name, value in headers.get_all():
            lower = name.lower()
            if lower in HOP_BY_HOP | REPLY_DROPPED | listed | {"server", "date"}:
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
            state["html"] = []  # held whole, to put the shim in
        elif "Content-Length" in headers and not (redactor.secret and "gzip" in headers.get("Content-Encoding", "")):
            self.set_header("Content-Length", headers["Content-Length"])

    def on_connection_close(self) -> None:
        self._gone = True
        super().on_connection_close()

    # ----- WebSocket

    async def _open_upstream_ws(self) -> None:
        grant = token_for_url(self.target.origin)
        token = grant.token
        url = "ws" + self.target.origin[4:] + self.path_ + (f"?{self.query_}" if self.query_ else "")
        headers = {k: v for k, v in self._upstream_headers(token).items() if k.lower() != "accept-encoding"}
        protocols = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        request = httpclient.HTTPRequest(url, headers=headers, connect_timeout=self.session_settings.http_timeout,
                                         request_timeout=_proxy_timeout(self.session_settings))  # fmt: skip
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

    def _unreachable(self, exc: BaseException | str) -> ProxyError:
        return ProxyError(502, "cluster_unreachable", f"the dashboard of {self.target.label} is unreachable: {exc}")

    def _token_refused(self, grant: Grant) -> ProxyError:
        token = grant.token
        where = f"sent the one from {token.source}" if token else f"it has none (looked in {TOKEN_SOURCES})"
        message = (
            grant.refusal(self.target.label) or f"{self.target.label} requires a Ray auth token; the server {where}"
        )
        return ProxyError(502, "cluster_auth_required", message)

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
            await self._upstream_ws.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self._upstream_ws is not None:
            self._upstream_ws.close()
            self._upstream_ws = None
