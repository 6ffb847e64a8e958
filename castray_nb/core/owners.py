"""Whose is a local endpoint: the Unix user that holds a listening socket on this machine.

On a shared machine every user's Ray processes are in the process table, and nothing in a
command line proves who runs a cluster: another user can start a script named
``gcs_server`` with Ray's flags. What the kernel knows is who created a listening socket,
and it tells every user. So the check is made at the moment a token would be sent, never
cached, and it must be cheap:

- Linux's ``sock_diag`` netlink interface (what ``ss`` uses), asked for listening TCP
  sockets only: ~60 µs for IPv4 and IPv6 together, measured here;
- else ``/proc/net/tcp`` and ``/proc/net/tcp6``: the same facts, but reading them walks the
  kernel's whole connection table (~11 ms here on a 24 GiB machine);
- elsewhere psutil (which may see only this user's own sockets).

An endpoint is *this user's own* when at least one socket listens where a connection to
it could land, and every such socket belongs to this user.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass

_LISTEN = "0A"
_WILDCARDS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class Holder:
    """Who holds the sockets that listen at one local endpoint (``uids`` empty: nobody)."""

    uids: frozenset[int]

    @property
    def own(self) -> bool:
        """Whether something listens there and all of it is this user's."""
        return self.uids == {os.geteuid()}

    @property
    def others(self) -> list[str]:
        """The other users among them, by name."""
        return [user_name(uid) for uid in sorted(self.uids - {os.geteuid()})]

    @property
    def user(self) -> str | None:
        """The user to name: another user's where there is one, else this user, else None."""
        others = self.others
        if others:
            return others[0]
        return user_name(os.geteuid()) if self.uids else None


@functools.lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    """The login name of ``uid``, or ``uid N`` where the passwd database has none."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def current_user() -> str:
    return user_name(os.geteuid())


def process_uid(pid: int | None) -> int | None:
    """The effective uid of a process, or None when it is gone or cannot be seen."""
    if not pid:
        return None
    import psutil

    try:
        return int(psutil.Process(pid).uids().effective)
    except (psutil.Error, OSError):
        return None


def holder(host: str, port: int) -> Holder:
    """Who holds the listening sockets a TCP connection to ``host:port`` could reach.

    ``host`` should be on this machine (see :func:`.address.is_this_machine`). An IP
    address is matched against sockets bound to it or to a wildcard; a name (``localhost``,
    this machine's host name) against every socket on ``port``.
    """
    wanted = _ip(host)
    uids: set[int] = set()
    for local, uid in _listeners(port):
        if wanted is None or local in _WILDCARDS or local == wanted:
            uids.add(uid)
    return Holder(frozenset(uids))


def holder_at(address: str) -> Holder:
    """:func:`holder` of ``host:port`` or ``scheme://host:port/...``; nobody for an address
    on another machine or one that is not of that form."""
    from .address import is_this_machine, probe_host, split_hostport

    try:
        host, port = split_hostport(address.split("://", 1)[-1].split("/", 1)[0])
    except ValueError:
        return Holder(frozenset())
    if not is_this_machine(host):
        return Holder(frozenset())
    return holder(probe_host(host), port)


def _ip(host: str) -> str | None:
    try:
        return _normal(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _listeners(port: int) -> Iterable[tuple[str, int]]:
    """(local address, uid) of every TCP socket listening on ``port``."""
    try:
        found = [entry for family in (socket.AF_INET, socket.AF_INET6) for entry in _diag_listeners(port, family)]
    except OSError:  # no netlink here (not Linux, or a sandbox that forbids it)
        tables = [t for t in ("/proc/net/tcp", "/proc/net/tcp6") if os.path.exists(t)]
        yield from (_proc_listeners(port, tables) if tables else _listeners_psutil(port))
        return
    yield from found


# sock_diag: a request for one family's TCP sockets in state LISTEN, answered as a dump of
# inet_diag_msg records (linux/inet_diag.h): family, state, timer, retrans, then the socket
# id (sport, dport big-endian, src and dst 16 bytes each, interface, cookie), expires,
# rqueue, wqueue, uid, inode.
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST, _NLM_F_DUMP, _NLMSG_ERROR, _NLMSG_DONE = 0x1, 0x300, 2, 3
_TCP_LISTEN = 10
_UID_OFFSET = 4 + 48 + 12


def _diag_listeners(port: int, family: int) -> list[tuple[str, int]]:
    af_netlink = getattr(socket, "AF_NETLINK", None)
    if af_netlink is None:
        raise OSError("no netlink")
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
    request += struct.pack(">HH", port, 0) + bytes(32) + struct.pack("=I", 0) + b"\xff" * 8
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
    found: list[tuple[str, int]] = []
    with socket.socket(af_netlink, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as diag:
        diag.settimeout(1.0)
        diag.send(header + request)
        while True:
            data = diag.recv(65536)
            if not data:
                return found
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR or length < 16:
                    raise OSError("sock_diag refused the request")
                message = data[offset + 16 : offset + length]
                if len(message) >= _UID_OFFSET + 4:
                    (local_port,) = struct.unpack_from(">H", message, 4)
                    (uid,) = struct.unpack_from("=I", message, _UID_OFFSET)
                    raw = message[8:12] if message[0] == socket.AF_INET else message[8:24]
                    if local_port == port:
                        found.append((_normal(ipaddress.ip_address(raw)), uid))
                offset += (length + 3) & ~3


def _proc_listeners(port: int, tables: list[str]) -> Iterable[tuple[str, int]]:
    needle = f":{port:04X} "
    for table in tables:
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    if needle not in line:  # the port is in the text: most lines end here
                        continue
                    fields = line.split()
                    if len(fields) < 8 or fields[3] != _LISTEN:
                        continue
                    address, _, hex_port = fields[1].partition(":")
                    if int(hex_port, 16) == port:
                        yield _decode(address), int(fields[7])
        except OSError:
            continue


def _decode(hex_address: str) -> str:
    """An address as ``/proc/net/tcp*`` writes it: 32-bit words in the host's byte order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)) if sys.byteorder == "little" else raw
    return _normal(ipaddress.ip_address(words))


def _normal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def _listeners_psutil(port: int) -> Iterable[tuple[str, int]]:
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):  # macOS without root: this user's own processes only
        connections = []
        for proc in psutil.process_iter():
            try:
                if proc.uids().effective == os.geteuid():
                    connections.extend(proc.net_connections(kind="tcp"))
            except (psutil.Error, OSError):
                continue
    for c in connections:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
            uid = process_uid(getattr(c, "pid", None))
            if uid is not None:
                yield _ip(c.laddr.ip) or c.laddr.ip, uid
