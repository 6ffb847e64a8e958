"""Dashboard HTTP: one shared client, timeouts on every call, Ray's auth, clear errors."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .auth import TOKEN_SOURCES, find_token
from .errors import AuthRequired, ClusterUnreachable

if TYPE_CHECKING:
    import httpx

_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _shared_client() -> httpx.Client:
    global _client
    with _client_lock:
        if _client is None:
            import httpx

            # trust_env=False: cluster endpoints are reached directly, never through
            # a proxy configured for the internet.
            _client = httpx.Client(
                trust_env=False,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            )
        return _client


def get_json(url: str, timeout: float, *, connect_timeout: float | None = None) -> Any:
    """GET ``url`` and decode JSON, with the token from Ray's sources when there is one.

    Raises :class:`ClusterUnreachable` (no answer, not HTTP, not JSON, HTTP error)
    or :class:`AuthRequired` (401/403).
    """
    import httpx

    token = find_token()
    headers = token.header() if token else {}
    limits = httpx.Timeout(timeout, connect=connect_timeout or timeout)
    try:
        reply = _shared_client().get(url, headers=headers, timeout=limits)
    except httpx.TimeoutException:
        raise ClusterUnreachable(f"{_base(url)} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise ClusterUnreachable(f"{_base(url)} is unreachable ({_reason(exc)})") from None
    if reply.status_code == 401:
        raise AuthRequired(
            f"{_base(url)} requires a Ray auth token; none found (looked in {TOKEN_SOURCES})"
            if token is None
            else f"{_base(url)} requires a Ray auth token and refused the one from {token.source}"
        )
    if reply.status_code == 403:
        where = token.source if token else "no token sent"
        raise AuthRequired(f"{_base(url)} rejected the Ray auth token ({where}): wrong token")
    if reply.status_code != 200:
        raise ClusterUnreachable(f"{_base(url)} answered HTTP {reply.status_code} for {_path(url)}")
    try:
        return reply.json()
    except ValueError:
        raise ClusterUnreachable(f"{_base(url)} answered {_path(url)} with something other than JSON") from None


def _base(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _path(url: str) -> str:
    rest = url.partition("://")[2]
    return "/" + rest.split("/", 1)[1] if "/" in rest else "/"


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0][:120]
