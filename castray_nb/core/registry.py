"""Which clusters this user's kernels attached, for the Jupyter server to find.

A kernel and its Jupyter server are two processes, each with its own session. A dashboard
link that a kernel shows (``{base_url}castray/dashboard/{session_name}/``) must resolve in
the server, so each kernel under a Jupyter server keeps one small file,
``<Jupyter runtime dir>/castray_nb/kernel-<pid>.json``: the session name, name and dashboard
URL of each cluster it has attached. The directory is the user's own (mode 0700), the files
are readable by that user only (0600), and the server reads only files that the user owns
and nobody else can write.

The server never takes these entries on trust: it applies its own settings (``remote`` off
refuses other hosts) and token sources, and checks that the dashboard answers with that
session name before it serves it. A file whose kernel has ended is removed when read, and a
kernel removes its own file when its session closes or the process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from .links import runtime_dir

log = logging.getLogger("castray_nb")
_FILE_PREFIX = "kernel-"


@dataclass(frozen=True)
class Registration:
    session_name: str
    name: str
    dashboard_url: str
    pid: int
    # False: the kernel keeps Ray's token from this dashboard's host (only a discovery
    # plug-in named it; see auth.withhold), and so must the server.
    token: bool = True


def registry_dir() -> Path:
    return runtime_dir() / "castray_nb"


def _own_dir(create: bool) -> Path | None:
    folder = registry_dir()
    if create:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        info = folder.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        log.warning("castray_nb: ignoring %s: not a directory of this user's with mode 0700", folder)
        return None
    return folder


class KernelRegistry:
    """This process's registration file: rewritten whole, atomically, on each change."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid or os.getpid()
        self._lock = threading.Lock()
        atexit.register(self.remove)

    @property
    def path(self) -> Path:
        return registry_dir() / f"{_FILE_PREFIX}{self.pid}.json"

    def write(self, clusters: Iterable[tuple[str | None, str, str | None]]) -> None:
        """Record ``(session_name, name, dashboard_url)`` of each attached cluster."""
        from .address import host_of
        from .auth import withheld

        entries = [
            asdict(Registration(session, name, url, self.pid, withheld(host_of(url) or "") is None))
            for session, name, url in clusters
            if session and url
        ]
        with self._lock:
            if not entries:
                self._remove_locked()
                return
            folder = _own_dir(create=True)
            if folder is None:
                return
            handle, temp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:  # mkstemp: mode 0600
                    json.dump({"pid": self.pid, "clusters": entries}, out)
                os.replace(temp, self.path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                log.warning("castray_nb: could not write %s: %s", self.path, exc)

    def remove(self) -> None:
        with self._lock:
            self._remove_locked()

    def _remove_locked(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def registrations() -> list[Registration]:
    """Every live kernel's registrations; files of kernels that ended are removed."""
    folder = _own_dir(create=False)
    if folder is None:
        return []
    found: list[Registration] = []
    for path in sorted(folder.glob(f"{_FILE_PREFIX}*.json")):
        pid_text = path.stem[len(_FILE_PREFIX) :]
        if not pid_text.isdigit():
            continue
        if not _alive(int(pid_text)):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
                log.warning("castray_nb: ignoring %s: not a file of this user's, or writable by others", path)
                continue
            data = json.loads(path.read_text(encoding="utf-8"))
            for entry in data.get("clusters", []):
                found.append(
                    Registration(
                        str(entry["session_name"]),
                        str(entry["name"]),
                        str(entry["dashboard_url"]),
                        int(pid_text),
                        entry.get("token") is not False,
                    )
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # being replaced, or not ours to understand: skip it
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
