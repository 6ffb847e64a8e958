"""Ray's token, looked up the way Ray looks it up, never shown, and sent only to the
user's own processes.

Who gets a token (:func:`token_for`, asked at the moment of every send):

- a token given on purpose (``connect(..., token=...)``, ``--token-file``) goes where it
  was given for;
- Ray's own token (its sources, as Ray reads them) goes to an address on another machine,
  as Ray's own CLI would send it there, unless only a discovery plug-in named that host and
  did not say the token is meant for it (:func:`withhold`);
- to an endpoint on this machine, Ray's token goes only when every socket listening there
  belongs to this Unix user (:mod:`.owners`): on a shared machine another user's process
  can pose as a Ray cluster, and a token it receives opens every cluster of ours.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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


def token_from_file(path: str | os.PathLike[str]) -> Token:
    """The token in a file named on purpose (``--token-file``); :class:`InvalidArgument`
    when it cannot be read or is empty. The file's content is never shown."""
    from .errors import InvalidArgument

    where = Path(path).expanduser()
    try:
        value = where.read_text(encoding="utf-8", errors="replace").strip()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the token file {where}: {exc.strerror or type(exc).__name__}") from None
    if not value:
        raise InvalidArgument(f"the token file {where} is empty")
    return Token(value, f"the token file {where}")


def _read_token(path: Path, source: str) -> Token | None:
    try:
        value = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return Token(value, source) if value else None


@dataclass(frozen=True)
class Grant:
    """The token to send to one endpoint, or None; ``withheld_from`` names the user whose
    endpoint did not get Ray's token, or ``withheld_because`` says why another machine did
    not (both None when nothing was held back)."""

    token: Token | None
    withheld_from: str | None = None
    withheld_because: str | None = None

    @property
    def held_back(self) -> bool:
        """Whether Ray's token was kept from this endpoint."""
        return self.withheld_from is not None or self.withheld_because is not None

    def refusal(self, where: str) -> str | None:
        """What to tell a user whose request ``where`` was refused for want of the token held back."""
        on_purpose = "To send one on purpose, pass token= to connect() (or --token-file on the command line)"
        if self.withheld_because is not None:
            return f"{where} requires a Ray auth token; yours was withheld: {self.withheld_because}. {on_purpose}"
        if self.withheld_from is None:
            return None
        return (
            f"{where} requires a Ray auth token, and it belongs to user {self.withheld_from}: castray_nb sends "
            f"your Ray token only to your own processes. {on_purpose}"
        )


# Other machines that get no Ray token of ours: hosts only a discovery plug-in named, which
# did not say the token is meant for them. Host (lower case) -> why. Process-wide, as the
# token itself is: every sender asks token_for at the moment it sends.
_withheld: dict[str, str] = {}
_withheld_lock = threading.Lock()


def withhold(host: str, why: str) -> None:
    """Send Ray's own token to ``host`` (another machine) no more, until :func:`release`."""
    with _withheld_lock:
        _withheld[_host_key(host)] = why


def release(host: str) -> None:
    """The user named ``host`` themselves (an address they typed, the ``hosts`` setting):
    Ray's token may go there again, as Ray's own CLI would send it."""
    with _withheld_lock:
        _withheld.pop(_host_key(host), None)


def withheld(host: str) -> str | None:
    """Why Ray's token is kept from ``host``, or None."""
    with _withheld_lock:
        return _withheld.get(_host_key(host))


def _host_key(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


def token_for(host: str, port: int, token: Token | None = None) -> Grant:
    """The token to send to ``host:port``: ``token`` when one was given on purpose, else
    Ray's own, unless the endpoint is on this machine and not held by this user alone."""
    if token is not None:
        return Grant(token)
    found = find_token()
    if found is None:
        return Grant(None)
    from .address import is_this_machine, probe_host
    from .owners import holder

    if not is_this_machine(host):
        why = withheld(host)
        return Grant(None, withheld_because=why) if why else Grant(found)
    held = holder(probe_host(host.strip("[]")), port)
    if held.own:
        return Grant(found)
    return Grant(None, held.user or "nobody (nothing listens there)")


def token_for_url(url: str, token: Token | None = None) -> Grant:
    """:func:`token_for` for an ``http(s)://`` or ``ws(s)://`` URL."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    except ValueError:
        return Grant(token)
    return token_for(parts.hostname or "", port, token)


def redact(text: str) -> str:
    """Remove the current token from text that may reach a user."""
    token = find_token()
    if token is None or len(token.value) < 4:
        return text
    return text.replace(token.value, "<token>")


def given_token(token: Token | str | None) -> Token | None:
    """A token given on purpose, as a :class:`Token` (a string is the token itself)."""
    from .errors import InvalidArgument

    if token is None or isinstance(token, Token):
        return token
    if not isinstance(token, str) or not token.strip():
        raise InvalidArgument("token must be a non-empty string (the Ray auth token itself)")
    return Token(token.strip(), "the token given")
