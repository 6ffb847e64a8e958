"""Tornado handlers of the Jupyter Server extension: thin, over the same core as every front end."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web, websocket
from tornado.ioloop import IOLoop

from ..core import past
from ..core.errors import CastrayError
from ..core.history import EVENT_COLUMNS, FRAME_COLUMNS
from ..core.jobs import JOB_COLUMNS, checked_status, job_to_json
from ..core.links import PROXY_PATH
from ..core.model import ClusterState, Event
from ..core.nodes import COLUMNS, row_to_json
from . import proxy
from .errors import ApiError, JsonErrors
from .state import KEY, ServerState, server_state

AUTH_RESOURCE = "castray"
PREFIX = "castray/api"


class _Base(JsonErrors, APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def castray(self) -> ServerState:
        return server_state(self.settings)

    async def call(self, lane: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A blocking core call in its lane of the server's workers (see :class:`.state.Lanes`)."""
        return await self.castray.lanes.call(lane, fn, *args, **kwargs)

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


def _with_link(handler: JupyterHandler, data: dict[str, Any], key: str) -> dict[str, Any]:
    """A cluster's JSON with ``dashboard_link``: the proxy route, capability included."""
    base_url = handler.settings.get("base_url", "/")
    link = proxy.dashboard_link(server_state(handler.settings), base_url, key, bool(data.get("dashboard_url")))
    return {**data, "dashboard_link": link}


def _state_json(handler: JupyterHandler, state: ClusterState) -> dict[str, Any]:
    return _with_link(handler, state.to_json(), state.name)


class DiscoverHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body({"attach": bool})
        attach = bool(body.get("attach"))
        started = asyncio.get_running_loop().time()
        found = await self.call("discover", self.castray.session.discover, connect=attach)
        elapsed = asyncio.get_running_loop().time() - started
        report = found.report  # this discovery's own, whatever else runs meanwhile
        attached = list(report.attached) if attach else []
        failed = [{"name": n, "message": why} for n, why in report.attach_errors]
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
        self.reply({"clusters": [_state_json(self, c) for c in self.castray.session.clusters()]})


class NodesHandler(_Base):
    source: str | None = None

    @web.authenticated
    @authorized
    async def get(self) -> None:
        alive = self.flag("alive", False)
        refresh = self.flag("refresh", True)
        session = self.castray.session
        if refresh:
            await self.call("read", session.refresh)
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
        state = await self.call("connect", self.castray.session.connect, address, name=name)
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
        session = self.castray.session
        keys = {c.name: [c.name, c.session_name] for c in session.clusters()}
        try:  # no I/O: answered on the loop
            if everything:
                gone = session.detach_all()
            else:
                session.detach(str(name))
                gone = [str(name)]
        except CastrayError as exc:
            raise ApiError.of(exc) from None
        for detached in gone:  # its dashboard links stop working
            for key in keys.get(detached, []):
                if key:
                    self.castray.revoke(key)
        self.reply({"detached": gone})


class RecentHandler(_Base):
    """``GET castray/api/recent``: the clusters attached before (the user's store), each
    with whether it is attached now; ``DELETE castray/api/recent?name=NAME``: forget one."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        session = self.castray.session
        entries = await self.call("read", session.remembered)
        attached = {c.info.gcs_address or c.info.dashboard_url for c in session.clusters()}
        self.reply({"clusters": [{**e.to_json(), "attached": e.address in attached} for e in entries]})

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        name = self.get_query_argument("name", None)
        if not name:
            raise ApiError(400, "bad_request", "give ?name=NAME (the name it was attached under, or its address)")
        gone = await self.call("read", self.castray.session.forget, name)
        self.reply({"forgotten": [e.to_json() for e in gone]})


class DashboardLinksHandler(_Base):
    """``DELETE castray/api/dashboard-links[?cluster=KEY]``: revoke dashboard links."""

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        key = self.get_query_argument("cluster", None)
        self.reply({"revoked": self.castray.revoke(key)})


class JobsHandler(_Base):
    """``GET castray/api/jobs[?cluster=NAME&status=S&refresh=false]``: one jobs table."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        cluster = self.get_query_argument("cluster", None)
        status = self.get_query_argument("status", None)
        refresh = self.flag("refresh", True)
        session = self.castray.session
        try:
            wanted = checked_status(status)
            if refresh:
                found, skipped = await self.call("read", session.jobs, cluster=cluster, status=wanted)
            else:  # what a watch that reads jobs last read (no I/O)
                found, skipped = session.cached_jobs(cluster)
                found = [j for j in found if wanted is None or j.status == wanted]
        except CastrayError as exc:
            raise ApiError.of(exc) from None
        self.reply({"columns": list(JOB_COLUMNS), "jobs": [job_to_json(j) for j in found], "skipped": skipped})


class JobLogsHandler(_Base):
    """``GET castray/api/jobs/{cluster}/{submission_id}/logs``: a submission job's logs."""

    @web.authenticated
    @authorized
    async def get(self, cluster: str, submission_id: str) -> None:
        logs = await self.call("read", self.castray.session.job_logs, submission_id, cluster=cluster)
        self.reply({"cluster": cluster, "submission_id": submission_id, "logs": logs})


def _past_arguments(handler: JupyterHandler) -> dict[str, Any]:
    """``?cluster=&since=&until=`` as the core's arguments (checked there)."""
    return {
        "cluster": handler.get_query_argument("cluster", None) or None,
        "since": handler.get_query_argument("since", None) or "1h",
        "until": handler.get_query_argument("until", None) or None,
    }


def _recorded_events(handler: JupyterHandler) -> Callable[[], dict[str, Any]]:
    settings = server_state(handler.settings).session.settings
    arguments = _past_arguments(handler)

    def read() -> dict[str, Any]:
        return {"columns": list(EVENT_COLUMNS), "events": past.rows_json(past.events(settings, **arguments))}

    return read


class HistoryHandler(_Base):
    """``GET castray/api/history?cluster=&since=1h&until=&metric=M&node=``: the recorded
    history, one row per (time, cluster, node, metric), as ``castray_nb.history()``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        settings = self.castray.session.settings
        wanted = [m for raw in self.get_query_arguments("metric") for m in raw.split(",") if m.strip()]
        node = self.get_query_argument("node", None)
        arguments = {**_past_arguments(self), "metrics": wanted or None, "node": node}

        def read() -> dict[str, Any]:
            return {"columns": list(FRAME_COLUMNS), "history": past.rows_json(past.history(settings, **arguments))}

        self.reply(await self.call("read", read))


class SparklinesHandler(_Base):
    """``GET castray/api/sparklines?since=1h``: each recorded cluster's CPU, GPU and memory
    percentages a minute apart, for the sidebar's cards (``{"clusters": {NAME: {"start",
    "step", "cpu", "gpu", "memory"}}}``)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        settings = self.castray.session.settings
        since = self.get_query_argument("since", None) or "1h"
        lines = await self.call("read", past.sparklines, settings, since=since)
        self.reply({"clusters": lines})


class EndedHandler(_Base):
    """``GET castray/api/ended``: the clusters that ended, each with its last snapshot."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        settings = self.castray.session.settings
        ended = await self.call("read", past.ended, settings)
        self.reply({"clusters": [c.to_json() for c in ended]})


class OpenApiHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(openapi_text())


def openapi_text() -> str:
    return resources.files(__package__).joinpath("openapi.json").read_text(encoding="utf-8")


class EventsHandler(JsonErrors, JupyterHandler, websocket.WebSocketHandler):
    """``GET /castray/api/events``: as a WebSocket, a ``hello`` with the attached clusters,
    then one message per change; as a plain GET, the recorded events (see :meth:`get`).
    While any socket is open the session refreshes in the background
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
        interval = self.get_query_argument("interval", None)
        try:
            self._interval = float(interval) if interval is not None else None
        except ValueError:
            self._interval = -1.0
        if self._interval is not None and not 0.2 <= self._interval <= 3600:
            raise ApiError(400, "bad_request", "'interval' must be a number of seconds between 0.2 and 3600")
        jobs = (self.get_query_argument("jobs", None) or "false").strip().lower()
        if jobs not in ("true", "1", "yes", "false", "0", "no"):
            raise ApiError(400, "bad_request", "query argument 'jobs' must be true or false")
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            # A plain GET: the recorded events (``?cluster=&since=1h&until=``), as
            # ``castray_nb.events()``, under the same authentication as the socket.
            lanes = server_state(self.settings).lanes
            data = await lanes.call("read", _recorded_events(self))
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(data))
            return
        self._jobs = jobs in ("true", "1", "yes")
        self._session = server_state(self.settings).session
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


def routes(base_url: str) -> list[tuple[str, type]]:
    """Every route the extension installs, under ``base_url``: the one table that
    :func:`setup_handlers` installs and the tests compare with the OpenAPI document."""

    def api_route(path: str) -> str:
        return url_path_join(base_url, PREFIX, path)

    return [
        (api_route("cluster/discover-external"), DiscoverHandler),
        (api_route("cluster/external-info"), ExternalInfoHandler),
        (api_route("cluster/connect-external"), ConnectHandler),
        (api_route("cluster/disconnect-external"), DisconnectHandler),
        (api_route("nodes"), NodesHandler),
        (api_route("nodes/external"), ExternalNodesHandler),
        (api_route("events"), EventsHandler),
        (api_route("history"), HistoryHandler),
        (api_route("ended"), EndedHandler),
        (api_route("sparklines"), SparklinesHandler),
        (api_route("openapi.json"), OpenApiHandler),
        (api_route("dashboard-links"), DashboardLinksHandler),
        (api_route("recent"), RecentHandler),
        (api_route("jobs"), JobsHandler),
        (api_route(r"jobs/([^/]+)/([^/]+)/logs"), JobLogsHandler),
        (url_path_join(base_url, PROXY_PATH, r"[^/]+/cap-[A-Za-z0-9_-]{32}(?:/.*)?"), proxy.DashboardProxyHandler),
        (url_path_join(base_url, PROXY_PATH, r"[^/]+(?:/.*)?"), proxy.DashboardEntryHandler),
    ]


def setup_handlers(web_app: Any, state: ServerState) -> None:
    """Put ``state`` on the application and install :func:`routes`."""
    web_app.settings[KEY] = state
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))
