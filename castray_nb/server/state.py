"""The server's state, one object on the Tornado application (``web_app.settings["castray"]``),
as dask-labextension keeps its cluster manager: the session, the worker lanes, the
dashboard capabilities and targets. Handlers take it from there; no module holds any."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..core.errors import CastrayError
from ..core.session import Session
from .errors import ApiError
from .targets import Capabilities, Targets

KEY = "castray"
T = TypeVar("T")

# Each kind of blocking call has its own share of the workers, taken before it queues for
# one, so slow calls of one kind (six connects to a silent server) cannot starve another
# (a refresh, a discovery).
LANES = {"connect": 4, "discover": 2, "read": 4}


class Lanes:
    """Core calls that do I/O (network reads with their own timeouts) run here, never on
    the server's event loop. A lane's share is held until its worker really ends, also
    when the request gave up waiting on it: a timed-out call still occupies a worker."""

    def __init__(self, deadline: float, shares: dict[str, int] | None = None) -> None:
        self.deadline = deadline
        self.shares = dict(shares or LANES)
        self.pool = concurrent.futures.ThreadPoolExecutor(
            sum(self.shares.values()), thread_name_prefix="castray-server"
        )
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    def busy(self, lane: str) -> int:
        """Workers of ``lane`` in use now (for tests and the log)."""
        semaphore = self._semaphores.get(lane)
        return 0 if semaphore is None else self.shares[lane] - semaphore._value

    async def call(self, lane: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a worker of ``lane``, under the request deadline; core
        errors become :class:`ApiError`."""
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.setdefault(lane, asyncio.Semaphore(self.shares[lane]))

        async def run() -> T:
            await semaphore.acquire()
            try:
                future = loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))
            except BaseException:
                semaphore.release()
                raise
            future.add_done_callback(lambda _: semaphore.release())
            return await asyncio.shield(future)

        try:
            return await asyncio.wait_for(run(), self.deadline)
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"no answer within {self.deadline:g} s") from None
        except CastrayError as exc:
            raise ApiError.of(exc) from None

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class ServerState:
    """Everything the extension's handlers share."""

    session: Session
    lanes: Lanes
    capabilities: Capabilities = field(default_factory=Capabilities)
    targets: Targets = field(init=False)
    recording: Any = None  # the server's own watch, held while it records

    def __post_init__(self) -> None:
        self.targets = Targets(self.session)

    @classmethod
    def for_session(cls, session: Session) -> ServerState:
        settings = session.settings
        # The longest a request may take: a GCS read plus a dashboard read, with room.
        return cls(session, Lanes(settings.gcs_timeout + 3 * settings.http_timeout + 5.0))

    def revoke(self, key: str | None = None) -> list[str]:
        """Drop dashboard capabilities (all, or one cluster's); links minted before stop working."""
        self.targets.forget(key)
        return self.capabilities.revoke(key)


def server_state(settings: dict[str, Any]) -> ServerState:
    """The state on an application's settings (``handler.settings``)."""
    state = settings.get(KEY)
    if not isinstance(state, ServerState):
        raise RuntimeError("castray_nb's server extension is not loaded on this application")
    return state
