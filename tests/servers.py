"""Hostile neighbours on this machine's loopback: a non-Ray HTTP server and a silent one."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"<html>hello, I am not Ray</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def not_ray_http(port: int = 0, host: str = "127.0.0.1") -> Iterator[int]:
    """An HTTP server that answers 200 with HTML to everything; yields its port."""
    server = http.server.ThreadingHTTPServer((host, port), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server(host: str = "127.0.0.1") -> Iterator[int]:
    """Accepts connections and never says a word; yields its port."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


@contextmanager
def canary(host: str = "127.0.0.1") -> Iterator[tuple[int, list[str]]]:
    """An HTTP server that records every request line it gets; yields (port, lines).
    A proxy test points every trick at it: the list must stay empty."""
    hits: list[str] = []

    class Record(_Hello):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            hits.append(self.requestline)
            super().do_GET()

        do_POST = do_GET  # noqa: N815

    server = http.server.ThreadingHTTPServer((host, 0), Record)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()
