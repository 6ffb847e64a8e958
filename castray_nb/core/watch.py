"""Publish and subscribe (:class:`Bus`), and the one background refresh loop that every
watch of a session shares (:class:`Scheduler`, :class:`Watch`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from .model import Event

log = logging.getLogger(__name__)


class Bus:
    """Subscribers and the events they hear; a broken subscriber never starves the rest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every change; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            for event in events:
                try:
                    callback(event)
                except Exception:
                    log.exception("castray event subscriber failed")

    def clear(self) -> None:
        with self._lock:
            self._subscribers.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._subscribers)


class Watch:
    """A running background refresh; :meth:`stop` ends it (and the thread, if it was the last)."""

    def __init__(
        self,
        scheduler: Scheduler,
        interval: float,
        on_refresh: Callable[[list[Event]], None] | None,
        actors: bool = False,
        jobs: bool = False,
    ) -> None:
        self.scheduler = scheduler
        self.interval = interval
        self.on_refresh = on_refresh
        self.actors = actors
        self.jobs = jobs
        self.active = True

    def stop(self) -> None:
        self.active = False
        self.scheduler.remove(self)


# One round of a scheduler: refresh, and with what the watches ask for; returns the events.
Round = Callable[[bool, bool], list[Event]]


class Scheduler:
    """One thread for all of a session's watches. It runs at the shortest interval asked
    for, stretches its wait when a round takes long (thousands of nodes), so the background
    work stays under ~20 % of a core, and ends with the last watch."""

    def __init__(self, round_: Round, *, name: str = "castray-refresh") -> None:
        self._round = round_
        self._name = name
        self._lock = threading.Lock()
        self._watches: list[Watch] = []
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, interval: float, on_refresh: Callable[[list[Event]], None] | None, actors: bool, jobs: bool) -> Watch:
        watch = Watch(self, interval, on_refresh, actors, jobs)
        with self._lock:
            self._watches.append(watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
        self._wakeup.set()
        return watch

    def remove(self, watch: Watch) -> None:
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)
        self._wakeup.set()

    def stop_all(self) -> None:
        with self._lock:
            watches, self._watches = list(self._watches), []
        for watch in watches:
            watch.active = False
        self._wakeup.set()

    @property
    def watches(self) -> list[Watch]:
        with self._lock:
            return list(self._watches)

    def _loop(self) -> None:
        while True:
            with self._lock:
                watches = list(self._watches)
                if not watches:
                    self._thread = None
                    return
            # Cleared before the round: a stop() that arrives during it still cuts the wait short.
            self._wakeup.clear()
            started = time.monotonic()
            try:
                events = self._round(any(w.actors for w in watches), any(w.jobs for w in watches))
            except Exception:  # never let the loop die on a bug; the next round tries again
                log.exception("castray background refresh failed")
                events = []
            for watch in watches:
                if watch.on_refresh is not None and watch.active:
                    try:
                        watch.on_refresh(events)
                    except Exception:
                        log.exception("castray refresh listener failed")
            took = time.monotonic() - started
            self._wakeup.wait(max(min(w.interval for w in watches), 4 * took))
