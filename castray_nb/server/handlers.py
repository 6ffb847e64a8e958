"""Tornado handlers of the Jupyter Server extension: thin, over the same core as every front end."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web, websocket
from tornado.ioloop import IOLoop

from .. import api
from ..core.errors import (
    AmbiguousAddress,
    AuthRequired,
    CastrayError,
    ClusterTimeout,
    ClusterUnreachable,
    ConfigError,
    InvalidAddress,
    InvalidArgument,
    InvalidName,
    NameTaken,
    UnknownCluster,
    UnknownJob,
)
from ..core.jobs import JOB_COLUMNS, checked_status, job_to_json
from ..core.links import PROXY_PATH
from ..core.nodes import COLUMNS, row_to_json
from ..core.session import ClusterState, Event
from ..core.settings import load_settings
from . import proxy

AUTH_RESOURCE = "castray"
PREFIX = "castray/api"

T = TypeVar("T")

# Core calls that do I/O block (network reads with their own timeouts); they run in this
# pool, never on the server's event loop. Routes that need no I/O (the attached clusters,
# the last rows, the document) answer on the loop and never wait here. Each kind of call
# has its own share of the workers, taken before it queues for one, so slow calls of one
# kind (six connects to a silent server) cannot starve another (a refresh, a discovery).
_LANES = {"connect": 4, "discover": 2, "read": 4}
_POOL = concurrent.futures.ThreadPoolExecutor(sum(_LANES.values()), thread_name_prefix="castray-server")
_lanes: dict[str, asyncio.Semaphore] = {}

# (exception type, HTTP status, error code): first match wins.
_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (InvalidAddress, 400, "invalid_address"),
    (InvalidName, 400, "invalid_name"),
    (AmbiguousAddress, 400, "ambiguous_address"),
    (InvalidArgument, 400, "bad_request"),
    (UnknownCluster, 404, "unknown_cluster"),
    (UnknownJob, 404, "unknown_job"),
    (NameTaken, 409, "conflict"),
    (ClusterTimeout, 504, "timeout"),
    (AuthRequired, 502, "cluster_auth_required"),
    (ClusterUnreachable, 502, "cluster_unreachable"),
    (ConfigError, 500, "config_error"),
    (CastrayError, 409, "conflict"),
)


class ApiError(web.HTTPError):
    """An error answered as ``{"error": code, "message": text}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, "%s", message)
        self.code = code
        self.message = message


@functools.lru_cache(maxsize=1)
def _deadline() -> float:
    """The longest a request may take: a GCS read plus a dashboard read, with room.

    Read from the settings, not the session: creating the session may attach clusters
    (the ``attach`` setting), which must not happen on the server's event loop."""
    settings = load_settings()
    return settings.gcs_timeout + 3 * settings.http_timeout + 5.0


async def _call(lane: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking core call in its lane of the pool, under the request deadline;
    core errors become :class:`ApiError` (status and code from ``_ERRORS``)."""
    loop = asyncio.get_running_loop()
    semaphore = _lanes.setdefault(lane, asyncio.Semaphore(_LANES[lane]))

    async def run() -> T:
        async with semaphore:
            return await loop.run_in_executor(_POOL, lambda: fn(*args, **kwargs))

    try:
        return await asyncio.wait_for(run(), _deadline())
    except asyncio.TimeoutError:
        raise ApiError(504, "timeout", f"no answer within {_deadline():g} s") from None
    except CastrayError as exc:
        raise _api_error(exc) from None


def _api_error(exc: CastrayError) -> ApiError:
    """The JSON error for a core error (status and code from ``_ERRORS``)."""
    status, code = next(((s, c) for kind, s, c in _ERRORS if isinstance(exc, kind)), (500, "internal_error"))
    return ApiError(status, code, str(exc))


class _JsonErrors:
    """Errors as ``{"error": code, "message": line}``, also Jupyter's own 403s."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        handler: Any = self
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            code, message = exc.code, exc.message
        elif isinstance(exc, web.HTTPError):
            code, message = _CODES.get(status_code, "error"), exc.log_message or handler._reason
        else:
            code, message = "internal_error", "unexpected server error (see the server log)"
        if status_code == 405:  # RFC 9110: say which methods would do
            methods = [m for m in ("GET", "POST", "DELETE") if _defines(type(self), m.lower())]
            handler.set_header("Allow", ", ".join(methods))
        handler.set_header("Content-Type", "application/json")
        handler.finish(json.dumps({"error": code, "message": message}))


def _defines(cls: type, method: str) -> bool:
    return getattr(cls, method, None) is not getattr(web.RequestHandler, method)


class _Base(_JsonErrors, APIHandler):
    auth_resource = AUTH_RESOURCE

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def body(self, allowed: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
        """The JSON object body (empty allowed), with known keys of the right types only."""
        raw = self.request.body.strip()
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "bad_request", "the body is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "bad_request", "the body must be a JSON object")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ApiError(400, "bad_request", f"unknown field(s): {', '.join(unknown)}")
        for key, kind in allowed.items():
            if key in data and not isinstance(data[key], kind):
                raise ApiError(400, "bad_request", f"{key!r} has the wrong type")
        return data

    def flag(self, name: str, default: bool) -> bool:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in ("true", "1", "yes"):
            return True
        if value in ("false", "0", "no"):
            return False
        raise ApiError(400, "bad_request", f"query argument {name!r} must be true or false")


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def _with_link(handler: JupyterHandler, data: dict[str, Any], key: str) -> dict[str, Any]:
    """A cluster's JSON with ``dashboard_link``: the proxy route, capability included."""
    base_url = handler.settings.get("base_url", "/")
    return {**data, "dashboard_link": proxy.dashboard_link(base_url, key, bool(data.get("dashboard_url")))}


def _state_json(handler: JupyterHandler, state: ClusterState) -> dict[str, Any]:
    return _with_link(handler, state.to_json(), state.name)


class DiscoverHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body({"attach": bool})
        attach = bool(body.get("attach"))
        session = api.session()
        started = asyncio.get_running_loop().time()
        found = await _call("discover", session.discover, connect=attach)
        elapsed = asyncio.get_running_loop().time() - started
        report = session.discover_report()
        attached = list(report.attached) if report and attach else []
        failed = [{"name": n, "message": why} for n, why in report.attach_errors] if report else []
        self.reply(
            {
                "clusters": [_with_link(self, c.to_json(), c.name) for c in found],
                "attached": attached,
                "attach_errors": failed,
                "elapsed_s": round(elapsed, 4),
            }
        )


class ExternalInfoHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"clusters": [_state_json(self, c) for c in api.session().clusters()]})


class NodesHandler(_Base):
    source: str | None = None

    @web.authenticated
    @authorized
    async def get(self) -> None:
        alive = self.flag("alive", False)
        refresh = self.flag("refresh", True)
        session = api.session()
        if refresh:
            await _call("read", session.refresh)
        rows = session.rows(source=self.source, alive_only=alive)
        self.reply({"columns": list(COLUMNS), "nodes": [row_to_json(r) for r in rows]})


class ExternalNodesHandler(NodesHandler):
    source = "external"


class ConnectHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body({"cluster_address": str, "name": str})
        address = body.get("cluster_address")
        if not isinstance(address, str):
            raise ApiError(400, "bad_request", 'the body must be {"cluster_address": "..."}')
        name = body.get("name")
        state = await _call("connect", api.session().connect, address, name=name)
        self.reply({"cluster": _state_json(self, state)})


class DisconnectHandler(_Base):
    @web.authenticated
    @authorized
    async def delete(self) -> None:
        # CastRay's form, DELETE with no parameters, detaches every attached cluster.
        name = self.get_query_argument("name", None)
        everything = self.flag("all", name is None)
        if (name is None) != everything:
            raise ApiError(400, "bad_request", "give ?name=NAME, or ?all=true (or no parameter) to detach all")
        keys = {c.name: [c.name, c.session_name] for c in api.session().clusters()}
        try:
            gone = api.disconnect(name, all=everything)  # no I/O: answered on the loop
        except CastrayError as exc:
            raise _api_error(exc) from None
        for detached in gone:  # its dashboard links stop working
            for key in keys.get(detached, []):
                if key:
                    proxy.revoke(key)
        self.reply({"detached": gone})


class DashboardLinksHandler(_Base):
    """``DELETE castray/api/dashboard-links[?cluster=KEY]``: revoke dashboard links."""

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        key = self.get_query_argument("cluster", None)
        self.reply({"revoked": proxy.revoke(key)})


class JobsHandler(_Base):
    """``GET castray/api/jobs[?cluster=NAME&status=S&refresh=false]``: one jobs table."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        cluster = self.get_query_argument("cluster", None)
        status = self.get_query_argument("status", None)
        refresh = self.flag("refresh", True)
        session = api.session()
        try:
            wanted = checked_status(status)
            if refresh:
                found, skipped = await _call("read", session.jobs, cluster=cluster, status=wanted)
            else:  # what a watch that reads jobs last read (no I/O)
                found, skipped = session.cached_jobs(cluster)
                found = [j for j in found if wanted is None or j.status == wanted]
        except CastrayError as exc:
            raise _api_error(exc) from None
        self.reply({"columns": list(JOB_COLUMNS), "jobs": [job_to_json(j) for j in found], "skipped": skipped})


class JobLogsHandler(_Base):
    """``GET castray/api/jobs/{cluster}/{submission_id}/logs``: a submission job's logs."""

    @web.authenticated
    @authorized
    async def get(self, cluster: str, submission_id: str) -> None:
        logs = await _call("read", api.session().job_logs, submission_id, cluster=cluster)
        self.reply({"cluster": cluster, "submission_id": submission_id, "logs": logs})


class OpenApiHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(openapi_text())


def openapi_text() -> str:
    return resources.files(__package__).joinpath("openapi.json").read_text(encoding="utf-8")


class EventsHandler(_JsonErrors, JupyterHandler, websocket.WebSocketHandler):
    """``GET /castray/api/events``: a ``hello`` with the attached clusters, then one
    message per change. While any socket is open the session refreshes in the background
    (``?interval=SECONDS``, default the ``refresh_interval`` setting); ``?jobs=true``
    also reads the clusters' jobs each round, and job changes become messages."""

    auth_resource = AUTH_RESOURCE

    def initialize(self) -> None:
        self._unsubscribe: Callable[[], None] | None = None
        self._watch: Any = None
        self._loop: IOLoop | None = None
        self._closed = threading.Event()

    async def pre_get(self) -> None:
        authorized_ = self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)
        if asyncio.iscoroutine(authorized_):
            authorized_ = await authorized_
        if not authorized_:
            raise web.HTTPError(403)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.pre_get()
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise ApiError(400, "bad_request", "this endpoint is a WebSocket")
        interval = self.get_query_argument("interval", None)
        try:
            self._interval = float(interval) if interval is not None else None
        except ValueError:
            self._interval = -1.0
        if self._interval is not None and not 0.2 <= self._interval <= 3600:
            raise ApiError(400, "bad_request", "'interval' must be a number of seconds between 0.2 and 3600")
        self._jobs = (self.get_query_argument("jobs", "") or "").strip().lower() in ("true", "1", "yes")
        self._session = api.session()
        result = super().get(*args, **kwargs)
        if result is not None:
            await result

    def open(self, *args: Any, **kwargs: Any) -> None:
        self._loop = IOLoop.current()
        self._unsubscribe = self._session.subscribe(self._from_any_thread)
        self._watch = self._session.watch(self._interval, jobs=self._jobs)
        hello = {"type": "hello", "clusters": [_state_json(self, c) for c in self._session.clusters()]}
        self.write_message(json.dumps(hello))

    def _from_any_thread(self, event: Event) -> None:
        if self._loop is not None and not self._closed.is_set():
            self._loop.add_callback(self._send, event)

    def _send(self, event: Event) -> None:
        if self._closed.is_set():
            return
        try:
            self.write_message(json.dumps({"type": "event", **event.to_json()}))
        except websocket.WebSocketClosedError:
            self.on_close()

    def on_message(self, message: str | bytes) -> None:
        pass  # the socket only speaks; whatever a client sends is ignored

    def on_close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._watch is not None:
            self._watch.stop()


def setup_handlers(web_app: Any) -> None:
    base = web_app.settings["base_url"]

    def route(path: str) -> str:
        return url_path_join(base, PREFIX, path)

    web_app.add_handlers(
        ".*$",
        [
            (route("cluster/discover-external"), DiscoverHandler),
            (route("cluster/external-info"), ExternalInfoHandler),
            (route("cluster/connect-external"), ConnectHandler),
            (route("cluster/disconnect-external"), DisconnectHandler),
            (route("nodes"), NodesHandler),
            (route("nodes/external"), ExternalNodesHandler),
            (route("events"), EventsHandler),
            (route("openapi.json"), OpenApiHandler),
            (route("dashboard-links"), DashboardLinksHandler),
            (route("jobs"), JobsHandler),
            (route(r"jobs/([^/]+)/([^/]+)/logs"), JobLogsHandler),
            (url_path_join(base, PROXY_PATH, r"[^/]+/cap-[A-Za-z0-9_-]{32}(?:/.*)?"), proxy.DashboardProxyHandler),
            (url_path_join(base, PROXY_PATH, r"[^/]+(?:/.*)?"), proxy.DashboardEntryHandler),
        ],
    )
