"""The server's attachments, kept across restarts of the Jupyter server.

JupyterHub culls idle servers and users restart theirs: what was attached in the server's
session is written to ``<Jupyter data dir>/castray_nb/server-attachments.json`` (the
user's own; mode 0600) on every attach and detach, and attached again, by a background
thread, when the server starts. A cluster that is gone by then is logged and left out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
import threading
from pathlib import Path

from ..core.errors import CastrayError
from ..core.model import Event
from ..core.session import Session

log = logging.getLogger("castray_nb")


def attachments_path() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "castray_nb" / "server-attachments.json"


def saved() -> list[dict[str, str]]:
    """The attachments kept last time; none from a file that is not the user's own alone
    (another user who could write it could make the server attach anything)."""
    path = attachments_path()
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            log.warning("castray_nb: ignoring %s: not a file of this user's, or writable by others", path)
            return []
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    entries = data.get("clusters", []) if isinstance(data, dict) else []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("address"), str)]


_saving = threading.Lock()


def save(session: Session) -> None:
    """Write what is attached now. Saves run one at a time and each reads the session
    inside its turn, so whichever thread saves last writes the newest state."""
    with _saving:
        _write(session)


def _write(session: Session) -> None:
    entries = [
        {"name": c.name, "address": c.info.gcs_address or c.info.dashboard_url or ""}
        for c in session.clusters()
        if c.info.gcs_address or c.info.dashboard_url
    ]
    path = attachments_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)  # also when it was made before, with the umask's mode
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump({"clusters": entries}, out)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(temp)
        log.warning("castray_nb: could not keep the server's attachments in %s: %s", path, exc)


def keep(session: Session) -> threading.Thread:
    """Attach what was attached before (in a thread), then keep the file up to date."""
    restoring = threading.Event()
    restoring.set()

    def on_event(event: Event) -> None:
        if event.kind in ("cluster_attached", "cluster_detached") and not restoring.is_set():
            save(session)

    def restore() -> None:
        try:
            for entry in saved():
                try:
                    session.connect(entry["address"], name=entry.get("name") or None, refresh=False)
                except CastrayError as exc:
                    log.warning("castray_nb: could not attach %s again: %s", entry.get("name") or entry["address"], exc)
        finally:
            restoring.clear()
            save(session)

    session.subscribe(on_event)
    thread = threading.Thread(target=restore, name="castray-restore-attachments", daemon=True)
    thread.start()
    return thread
