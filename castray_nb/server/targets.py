"""Which dashboard a proxy route reaches: per-cluster capabilities, and the targets they
open, resolved from the server's own knowledge (attached, registered by a kernel of this
user, or discovered here), never from the request."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..core.address import is_this_machine
from ..core.auth import withhold
from ..core.client import ClusterClient
from ..core.errors import AuthRequired, CastrayError, ClusterTimeout
from ..core.registry import registrations
from ..core.session import Session
from ..core.settings import Settings
from .errors import ApiError

VERIFIED_FOR_S = 30.0
DISCOVERED_FOR_S = 10.0


@dataclass(frozen=True)
class Target:
    key: str  # what the route names: the cluster's name or session name
    origin: str  # scheme://host:port of its dashboard, nothing else
    label: str  # for messages


class Capabilities:
    """One random capability per cluster key, until revoked."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}

    def mint(self, key: str) -> str:
        if key not in self._by_key:
            self._by_key[key] = "cap-" + secrets.token_urlsafe(24)
        return self._by_key[key]

    def check(self, key: str, capability: str) -> bool:
        expected = self._by_key.get(key)
        return expected is not None and hmac.compare_digest(expected, capability)

    def revoke(self, key: str | None = None) -> list[str]:
        gone = list(self._by_key) if key is None else [k for k in (key,) if k in self._by_key]
        for k in gone:
            del self._by_key[k]
        return gone


class Targets:
    """Resolves a route's ``{cluster}`` to a dashboard origin, never from the request."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._verified: dict[str, tuple[str, float]] = {}
        self._discovered: tuple[float, dict[str, str | None]] = (0.0, {})

    def settings(self) -> Settings:
        return self.session.settings

    def known(self, key: str) -> Target | None:
        """Without I/O: an attached cluster's target, or one verified lately; else None."""
        attached = [c for c in self.session.clusters() if key in (c.name, c.session_name)]
        if attached:
            cluster = attached[0]
            return self._target(key, cluster.dashboard_url, f"cluster {cluster.name!r}")
        cached = self._verified.get(key)
        if cached and cached[1] > time.monotonic():
            return Target(key, cached[0], f"cluster {key!r}")
        return None

    def resolve(self, key: str) -> Target:
        """Blocking (it may read a dashboard's ``/api/version`` or discover): run in a worker."""
        target = self.known(key)
        if target is not None:
            return target
        registered = [r for r in registrations() if r.session_name == key]
        if registered:
            entry = registered[0]
            if not entry.token:  # the kernel keeps Ray's token from that host: so does the server
                withhold(urlsplit(entry.dashboard_url).hostname or "", "only a discovery plug-in named it")
            return self._verify(key, entry.dashboard_url, "registered by a kernel")
        discovered = self._discover()
        if key in discovered:
            url = discovered[key]
            return self._target(key, url, f"cluster {key!r}") if url is None else self._verify(key, url, "discovered")
        raise ApiError(404, "unknown_cluster", f"no cluster named {key!r}: not attached, registered or discovered")

    def forget(self, key: str | None = None) -> None:
        if key is None:
            self._verified.clear()
        else:
            self._verified.pop(key, None)

    def _target(self, key: str, url: str | None, label: str) -> Target:
        if not url:
            raise ApiError(404, "no_dashboard", f"{label} has no dashboard (started without one)")
        parts = urlsplit(url)
        return Target(key, f"{parts.scheme}://{parts.netloc}", label)

    def _verify(self, key: str, url: str, how: str) -> Target:
        """The server's own checks on a cluster it did not attach: its ``remote`` setting,
        its token sources, and that the dashboard is that session's."""
        settings = self.settings()
        host = urlsplit(url).hostname or ""
        if not settings.remote and not is_this_machine(host):
            raise ApiError(403, "remote_refused", f"{key!r} ({how}) is not on this machine, and remote is off")
        try:
            version = ClusterClient(None, url, settings).version()
        except AuthRequired as exc:
            raise ApiError(502, "cluster_auth_required", f"the server cannot read {key!r}: {exc}") from None
        except ClusterTimeout as exc:
            raise ApiError(504, "timeout", str(exc)) from None
        except CastrayError as exc:
            raise ApiError(502, "cluster_unreachable", f"{key!r} ({how}): {exc}") from None
        if version.get("session_name") != key:
            raise ApiError(404, "unknown_cluster", f"the dashboard registered for {key!r} now serves another session")
        target = self._target(key, url, f"cluster {key!r}")
        self._verified[key] = (target.origin, time.monotonic() + VERIFIED_FOR_S)
        return target

    def _discover(self) -> dict[str, str | None]:
        when, found = self._discovered
        if time.monotonic() - when > DISCOVERED_FOR_S:
            # Another user's dashboard is served only when it was attached on purpose.
            found = {c.name: c.dashboard_url for c in self.session.discover(connect=False) if not c.other_user}
            self._discovered = (time.monotonic(), found)
        return found
