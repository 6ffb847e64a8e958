"""Ray's token, looked up the way Ray looks it up, and never shown."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_SOURCES = "RAY_AUTH_TOKEN, the file named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token"


@dataclass(frozen=True)
class Token:
    """A token and where it came from. Its value is left out of ``repr``."""

    value: str = field(repr=False)
    source: str

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value}"}


def find_token() -> Token | None:
    """Return the token Ray would use in this process, or None.

    Order as in Ray: ``RAY_AUTH_TOKEN``, then the file at ``RAY_AUTH_TOKEN_PATH``,
    then ``~/.ray/auth_token``. Unreadable or empty files count as no token.
    """
    value = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if value:
        return Token(value, "RAY_AUTH_TOKEN")
    path_text = os.environ.get("RAY_AUTH_TOKEN_PATH", "").strip()
    if path_text:
        return _read_token(Path(path_text).expanduser(), "RAY_AUTH_TOKEN_PATH")
    return _read_token(Path.home() / ".ray" / "auth_token", "~/.ray/auth_token")


def _read_token(path: Path, source: str) -> Token | None:
    try:
        value = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return Token(value, source) if value else None


def redact(text: str) -> str:
    """Remove the current token from text that may reach a user."""
    token = find_token()
    if token is None or len(token.value) < 4:
        return text
    return text.replace(token.value, "<token>")
