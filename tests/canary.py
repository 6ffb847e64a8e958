"""A canary host: run inside a network namespace, it prints one line for every TCP or UDP
packet that reaches it (``PROTO SRC -> DST:PORT``), on any port, until it is stopped.

``python tests/canary.py`` under ``ip netns exec NS``; raw sockets see each packet before
any port would refuse it, so even a probe of a closed port is seen.
"""

from __future__ import annotations

import select
import socket
import struct
import sys


def main() -> None:
    sockets = {socket.socket(socket.AF_INET, socket.SOCK_RAW, proto): name
               for proto, name in ((socket.IPPROTO_TCP, "tcp"), (socket.IPPROTO_UDP, "udp"))}  # fmt: skip
    print("listening", flush=True)
    while True:
        ready, _, _ = select.select(list(sockets), [], [])
        for sock in ready:
            packet = sock.recv(65535)
            header = (packet[0] & 0x0F) * 4
            src, dst = socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])
            (port,) = struct.unpack("!H", packet[header + 2 : header + 4])
            sys.stdout.write(f"{sockets[sock]} {src} -> {dst}:{port}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
