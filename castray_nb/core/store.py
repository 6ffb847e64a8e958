"""The user's own store: what castray_nb remembers between processes and restarts.

One SQLite file (the standard library's ``sqlite3``), ``<Jupyter data dir>/castray_nb/
castray.sqlite3``, in a folder of mode 0700, the file 0600: readable by the user alone.
Several processes use it at once (kernels, the Jupyter server, the command line): it is
in WAL mode, every write is one short transaction, and a writer waits up to
:data:`BUSY_TIMEOUT_S` for another's lock rather than fail.

It holds the **recent attachments** (:class:`Recent`): every cluster the user attached,
from any front end, with its address, its name and when it was last seen. Discovery offers
them again as candidates (source ``recent``); ``forget`` drops one. And it holds the
**history** (:mod:`.history`, :mod:`.recorder`): each cluster's series, its events, the
clusters seen with their last snapshot, and which process records which cluster.

The schema is versioned (``PRAGMA user_version``); :data:`MIGRATIONS` brings a file of any
earlier version up to :data:`SCHEMA_VERSION` in one transaction.

A store file that is not the user's own, or that other users may write, is not used (it
is logged once): another user who could write it could make discovery probe, and the
server attach, whatever they liked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("castray_nb")

BUSY_TIMEOUT_S = 5.0
MAX_RECENT = 200  # recent attachments kept; the least recently seen go first
_RECENT = """
CREATE TABLE IF NOT EXISTS recent (
    address TEXT PRIMARY KEY,         -- as attached: a GCS host:port or a dashboard URL
    name TEXT NOT NULL,               -- the name it was attached under
    session_name TEXT,                -- the Ray session it had then
    sources TEXT NOT NULL DEFAULT '', -- comma-separated discovery sources that had found it
    token INTEGER NOT NULL DEFAULT 1, -- 0: Ray's token is withheld from its host (a plug-in named it)
    first_attached REAL NOT NULL,     -- Unix time
    last_seen REAL NOT NULL           -- Unix time it last answered
)
"""


def _history_schema() -> str:
    from .history import SCHEMA

    return SCHEMA


def _points_by_time() -> str:
    from .history import POINTS_BY_TIME

    return POINTS_BY_TIME


def _points_packed() -> str:
    from .history import POINTS_PACKED

    return POINTS_PACKED


# What each version adds, in order: version N is the first N entries. Never edit one that
# has shipped; add the next.
MIGRATIONS: tuple[Callable[[], str], ...] = (
    lambda: _RECENT,
    _history_schema,
    _points_by_time,
    _points_packed,
)
SCHEMA_VERSION = len(MIGRATIONS)


def store_path() -> Path:
    """``<Jupyter data dir>/castray_nb/castray.sqlite3`` (``JUPYTER_DATA_DIR`` moves it)."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "castray_nb" / "castray.sqlite3"


class StoreError(OSError):
    """The store cannot be used (not the user's own, or unreadable)."""


class Store:
    """The SQLite file, through one connection per process, kept open and used by one
    transaction at a time (:meth:`connection`).

    Opening one per transaction cost more than the recording it did: a fresh connection
    parses the schema, and the last one to close checkpoints the WAL and deletes it (a
    third of a 100-node reading's CPU, measured in benchmarks/history_store.py). Nothing
    holds it across a refresh (every transaction is short), and a forked child opens its
    own: a connection is never used across a fork.
    """

    def __init__(self, path: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self.clock = clock
        self._lock = threading.Lock()  # one transaction of this process's at a time
        self._open: tuple[int, Path, sqlite3.Connection] | None = None  # (pid, path, connection)

    @property
    def path(self) -> Path:
        return self._path or store_path()

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """The connection in one transaction (committed at the end, rolled back on error)."""
        path = self.path
        with self._lock:
            db = self._connected(path)
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    if db.in_transaction:  # an error SQLite rolled back itself leaves none
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._close()  # the next transaction starts from a fresh connection
                raise StoreError(f"the store {path} cannot be used: {exc}") from None

    def close(self) -> None:
        """Close the connection (the next transaction opens another)."""
        with self._lock:
            self._close()

    def _connected(self, path: Path) -> sqlite3.Connection:
        """The open connection to ``path``, opened (the file checked and migrated) if this
        process has none to it."""
        if self._open is not None:
            pid, where, db = self._open
            if pid == os.getpid() and where == path:
                return db
            if pid == os.getpid():
                db.close()
            self._open = None  # a parent's connection, in a fork: left alone, never used
        try:
            _prepare(path)
            db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"the store {path} cannot be used: {exc}") from None
        try:
            # WAL with NORMAL: a commit survives the process being killed (what the store
            # must survive); only a power cut may lose the last ones, never corrupting it.
            db.execute("PRAGMA synchronous = NORMAL")
            from .history import register_functions

            register_functions(db)  # the history's SQL functions, which its migrations use too
            _migrate(db)
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"the store {path} cannot be used: {exc}") from None
        self._open = (os.getpid(), path, db)
        return db

    def _close(self) -> None:
        if self._open is not None:
            pid, _, db = self._open
            if pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._open = None


def _prepare(path: Path) -> None:
    """Make the folder (0700) and the file (0600) the user's own, or refuse a file that is not."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.parent.chmod(0o700)  # also when it was made before, with the umask's mode
    # The file is created only when absent, and never opened otherwise: closing any
    # descriptor of it drops every POSIX lock this process holds on it, those of its open
    # connections too, and another process may then take itself for the last one and
    # delete the WAL under them ("disk I/O error").
    try:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW, 0o600))
        info = path.lstat()
    except OSError as exc:
        raise StoreError(f"the store {path} cannot be opened: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise StoreError(f"the store {path} is not a file of this user's alone (mode 0600): not used")


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[number]().split(";"):
                if statement.strip():
                    db.execute(statement)
        if version < SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@dataclass(frozen=True)
class Remembered:
    """One recent attachment."""

    name: str
    address: str
    session_name: str | None
    sources: tuple[str, ...]
    token: bool
    first_attached: float
    last_seen: float

    @property
    def last_seen_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.last_seen, dt.UTC)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "address": self.address,
            "session_name": self.session_name,
            "sources": list(self.sources),
            "last_seen": self.last_seen_at.isoformat(),
            "first_attached": dt.datetime.fromtimestamp(self.first_attached, dt.UTC).isoformat(),
        }


class Recent:
    """The recent attachments in the user's store. Failures are logged, never raised into
    an attach: remembering is a convenience, attaching is the user's work."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store or Store()
        self._warned = False

    def remember(
        self, name: str, address: str, *, session_name: str | None, sources: tuple[str, ...], token: bool
    ) -> None:
        now = self.store.clock()
        self._quietly(
            lambda db: db.execute(
                "INSERT INTO recent (address, name, session_name, sources, token, first_attached, last_seen)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(address) DO UPDATE SET name = excluded.name,"
                " session_name = excluded.session_name, sources = excluded.sources, token = excluded.token,"
                " last_seen = excluded.last_seen",
                (address, name, session_name, ",".join(sources), int(token), now, now),
            ).execute(
                "DELETE FROM recent WHERE address NOT IN (SELECT address FROM recent ORDER BY last_seen DESC LIMIT ?)",
                (MAX_RECENT,),
            )
        )

    def seen(self, address: str, at: float | None = None) -> None:
        """It answered at ``at`` (default now)."""
        when = self.store.clock() if at is None else at
        self._quietly(
            lambda db: db.execute("UPDATE recent SET last_seen = max(last_seen, ?) WHERE address = ?", (when, address))
        )

    def entries(self) -> list[Remembered]:
        """Every remembered cluster, the most recently seen first."""
        rows: list[tuple[Any, ...]] = self._quietly(  # type: ignore[assignment]
            lambda db: db.execute(
                "SELECT name, address, session_name, sources, token, first_attached, last_seen FROM recent"
                " ORDER BY last_seen DESC, name"
            ).fetchall()
        )
        return [
            Remembered(name, address, session, tuple(s for s in sources.split(",") if s), bool(token), first, last)
            for name, address, session, sources, token, first, last in rows or []
        ]

    def forget(self, name: str) -> list[Remembered]:
        """Drop the clusters remembered under ``name`` (or at that address); returns them.
        Raises :class:`.errors.UnknownCluster` when none is, naming those that are."""
        from .errors import UnknownCluster

        try:
            with self.store.connection() as db:
                rows = db.execute(
                    "SELECT name, address, session_name, sources, token, first_attached, last_seen FROM recent"
                    " WHERE name = ? OR address = ?",
                    (name, name),
                ).fetchall()
                db.execute("DELETE FROM recent WHERE name = ? OR address = ?", (name, name))
        except StoreError as exc:
            raise UnknownCluster(f"{name!r} cannot be forgotten: {exc}") from None
        if not rows:
            known = ", ".join(sorted({e.name for e in self.entries()})) or "none"
            raise UnknownCluster(f"no remembered cluster is called {name!r} (remembered: {known})")
        return [
            Remembered(n, a, s, tuple(x for x in src.split(",") if x), bool(t), f, last)
            for n, a, s, src, t, f, last in rows
        ]

    def _quietly(self, work: Callable[[sqlite3.Connection], object]) -> object:
        try:
            with self.store.connection() as db:
                return work(db)
        except (StoreError, OSError) as exc:
            if not self._warned:
                self._warned = True
                log.warning("castray_nb: recent attachments are not kept: %s", exc)
            return None
