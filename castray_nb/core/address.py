"""What users may type as a cluster address, and which hosts are this machine."""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from .errors import InvalidAddress

AddressKind = Literal["gcs", "dashboard", "client", "session", "auto", "host"]

# What a host given alone is tried on: Ray's default ports.
DEFAULT_PORTS: tuple[tuple[str, int], ...] = (("GCS", 6379), ("dashboard", 8265), ("Ray Client", 10001))

MAX_ADDRESS_LENGTH = 512
SESSION_NAME = re.compile(r"^session_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_\d+_\d+$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_SCHEMES: dict[str, AddressKind] = {"http": "dashboard", "https": "dashboard", "ray": "client"}


@dataclass(frozen=True)
class Address:
    """A parsed address. ``host``/``port`` are empty for ``session`` and ``auto``; a
    ``host`` address (a host given alone) has ``port`` 0 and is tried on :data:`DEFAULT_PORTS`."""

    kind: AddressKind
    text: str
    host: str = ""
    port: int = 0
    scheme: str = ""
    path: str = ""

    @property
    def hostport(self) -> str:
        return join_hostport(self.host, self.port)

    @property
    def url(self) -> str:
        """The dashboard URL (or ``ray://`` URL) with no trailing slash."""
        return f"{self.scheme}://{self.hostport}{self.path}"


def parse_address(text: object) -> Address:
    """Parse a user-supplied address, or raise :class:`InvalidAddress`.

    >>> parse_address("127.0.0.1:6379").kind
    'gcs'
    >>> parse_address("http://localhost:8265").url
    'http://localhost:8265'
    """
    if not isinstance(text, str):
        raise InvalidAddress(text, "not a string")
    if len(text) > MAX_ADDRESS_LENGTH:
        raise InvalidAddress(text, f"longer than {MAX_ADDRESS_LENGTH} characters")
    stripped = text.strip()
    if not stripped:
        raise InvalidAddress(text, "empty")
    if any(not ch.isprintable() or ch.isspace() for ch in stripped):
        raise InvalidAddress(text, "contains spaces or control characters")
    if stripped.lower() == "auto":
        return Address("auto", "auto")
    if SESSION_NAME.match(stripped):
        return Address("session", stripped)
    if "://" in stripped:
        return _parse_url(text, stripped)
    host, port = _split_hostport(text, stripped)
    if not port:
        return Address("host", host, host)
    return Address("gcs", join_hostport(host, port), host, port)


def _parse_url(original: str, text: str) -> Address:
    scheme = text.split("://", 1)[0].lower()
    kind: AddressKind | None = _SCHEMES.get(scheme)
    if kind is None:
        raise InvalidAddress(original, f"unsupported scheme {scheme!r}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidAddress(original, str(exc)) from None
    if parts.username or parts.password:
        raise InvalidAddress(original, "credentials in the URL are not accepted")
    if parts.query or parts.fragment:
        raise InvalidAddress(original, "query or fragment in the URL")
    host = _check_host(original, parts.hostname or "")
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme, 10001)
    if not 0 < port < 65536:
        raise InvalidAddress(original, "port out of range 1-65535")
    path = parts.path.rstrip("/")
    if kind == "client" and path:
        raise InvalidAddress(original, "ray:// addresses take no path")
    if path and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", path):
        raise InvalidAddress(original, "unusual characters in the URL path")
    hostport = join_hostport(host, port)
    return Address(kind, f"{scheme}://{hostport}{path}", host, port, scheme, path)


def _split_hostport(original: str, text: str) -> tuple[str, int]:
    """``host:port``, or ``host`` alone (port 0)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidAddress(original, "IPv6 addresses are written [addr]:port or [addr]")
        if ":" not in host:
            raise InvalidAddress(original, "not a valid host name: brackets hold IPv6 addresses only")
        port_text = rest[1:] if rest else None
    else:
        if text.count(":") > 1:
            raise InvalidAddress(original, "IPv6 addresses are written [addr]:port or [addr]")
        host, sep, port_text_ = text.partition(":")
        port_text = port_text_ if sep else None
    host = _check_host(original, host)
    if port_text is None:
        if host in ("0.0.0.0", "::"):
            raise InvalidAddress(original, "a wildcard address names no host to connect to")
        return host, 0
    return host, _check_port(original, port_text)


def _check_port(original: str, port_text: str) -> int:
    if not port_text.isascii() or not port_text.isdigit():
        raise InvalidAddress(original, "the port is not a number")
    port = int(port_text)
    if not 0 < port < 65536:
        raise InvalidAddress(original, "port out of range 1-65535")
    return port


def _check_host(original: str, host: str) -> str:
    if not host:
        raise InvalidAddress(original, "no host")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host.isascii() or not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
        raise InvalidAddress(original, "not a valid host name")
    return host.lower().rstrip(".")


def join_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_hostport(hostport: str) -> tuple[str, int]:
    """Split an address Ray itself wrote (``ip:port``); raises ValueError if malformed."""
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


@functools.lru_cache(maxsize=1)
def own_addresses() -> frozenset[str]:
    """The addresses of this machine: loopback, every interface, and its names."""
    import psutil

    found = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}
    name = socket.gethostname()
    found.update({name.lower(), socket.getfqdn(name).lower()})
    for addresses in psutil.net_if_addrs().values():
        for entry in addresses:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                found.add(entry.address.split("%", 1)[0])
    return frozenset(found)


def is_this_machine(host: str) -> bool:
    """True when ``host`` names this machine (no DNS look-up is made)."""
    host = host.strip("[]").lower()
    if host in own_addresses():
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cluster_key(hostport: str) -> tuple[str, int]:
    """A key under which one GCS has one identity, whichever local name reached it."""
    host, port = split_hostport(hostport)
    return ("this-machine" if is_this_machine(host) else host.lower(), port)


def host_of(address: str) -> str | None:
    """The host, in lower case and without brackets, of a GCS ``host:port`` or a
    ``scheme://host[:port]/...`` URL; None when there is none to read."""
    if "://" in address:
        return urlsplit(address).hostname or None
    try:
        host = split_hostport(address)[0]
    except ValueError:
        return None
    return host.lower() or None


def probe_host(host: str) -> str:
    """Where to send traffic for a host Ray bound: wildcards mean loopback."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
