"""Dashboard HTTP: timeouts on every call, Ray's auth, clear errors.

Built on the standard library's ``urllib.request`` rather than httpx: measured here,
importing httpx and building its client costs ~260 ms (httpcore is imported lazily and
the CA bundle is loaded up front even for plain-http dashboards), more than everything
else ``castray-nb discover`` does; urllib costs ~17 ms and gives what is needed: per-call
timeouts, TLS verification for https, no proxies, no redirects.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import Any

import orjson

from .auth import TOKEN_SOURCES, Grant, Token, token_for_url
from .errors import AuthRequired, ClusterTimeout, ClusterUnreachable
from .gcpause import gc_paused

MAX_REPLY_BYTES = 256 * 1024 * 1024
BIG_REPLY_BYTES = 256 * 1024  # about 500 nodes: below this a parse allocates too little to matter


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a Ray dashboard does not redirect; do not follow anyone who does


# ProxyHandler({}): cluster endpoints are reached directly, never through a proxy set up
# for the internet in the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def get_json(url: str, timeout: float, *, send_token: bool = True, token: Token | None = None) -> Any:
    """GET ``url`` and decode JSON, with ``token`` or else the token from Ray's sources
    where :func:`.auth.token_for` allows it (unless ``send_token`` is false).

    ``timeout`` bounds the connection and every read. Raises :class:`ClusterUnreachable`
    (no answer, not HTTP, not JSON, an HTTP error) or :class:`AuthRequired` (401/403).
    """
    body = get_bytes(url, timeout, send_token=send_token, token=token)
    with gc_paused(len(body) > BIG_REPLY_BYTES):
        return parse_json(body, url)


def get_bytes(url: str, timeout: float, *, send_token: bool = True, token: Token | None = None) -> bytes:
    """:func:`get_json` without the decoding: the body of a 200 reply, errors as there."""
    grant = token_for_url(url, token) if send_token else Grant(None)
    token = grant.token
    request = urllib.request.Request(url, headers={"Accept": "application/json", **(token.header() if token else {})})
    try:
        with _opener.open(request, timeout=timeout) as reply:
            status, body = reply.status, reply.read(MAX_REPLY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(4096) if exc.fp is not None else b""
        exc.close()
    except TimeoutError:
        raise ClusterTimeout(f"{_base(url)} did not answer within {timeout:g} s") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise ClusterTimeout(f"{_base(url)} did not answer within {timeout:g} s") from None
        raise ClusterUnreachable(f"{_base(url)} is unreachable ({_reason(exc.reason)})") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ClusterUnreachable(f"{_base(url)} does not speak HTTP ({_reason(exc)})") from None
    if status == 401:
        raise AuthRequired(
            grant.refusal(_base(url))
            or f"{_base(url)} requires a Ray auth token; none found (looked in {TOKEN_SOURCES})"
            if token is None
            else f"{_base(url)} requires a Ray auth token and refused the one from {token.source}"
        )
    if status == 403:
        refusal = grant.refusal(_base(url))
        if refusal:
            raise AuthRequired(refusal)
        where = token.source if token else "no token sent"
        raise AuthRequired(f"{_base(url)} rejected the Ray auth token ({where}): wrong token")
    if status != 200:
        raise HttpStatus(f"{_base(url)} answered HTTP {status} for {_path(url)}", status, body)
    if len(body) > MAX_REPLY_BYTES:
        raise ClusterUnreachable(f"{_base(url)} sent more than {MAX_REPLY_BYTES // 2**20} MiB for {_path(url)}")
    return bytes(body)


class HttpStatus(ClusterUnreachable):
    """The dashboard answered, with an HTTP error: ``status`` and the start of its ``body``."""

    def __init__(self, message: str, status: int, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body.decode("utf-8", "replace").strip()


def parse_json(body: bytes, url: str) -> Any:
    """Decode a reply from ``url``; raises :class:`ClusterUnreachable` when it is not JSON.

    orjson: a 10,000-node reply is ~4.5 MB, and a parser holds the GIL while it runs:
    36 ms with json.loads, 20 ms with orjson (measured here). Parse a big reply with the
    cyclic collector paused (see gcpause).
    """
    try:
        return orjson.loads(body)
    except ValueError:
        raise ClusterUnreachable(f"{_base(url)} answered {_path(url)} with something other than JSON") from None


def _base(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _path(url: str) -> str:
    rest = url.partition("://")[2]
    return "/" + rest.split("/", 1)[1] if "/" in rest else "/"


def _reason(reason: object) -> str:
    text = str(reason) or type(reason).__name__
    if "refused" in text.lower():
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:120]
