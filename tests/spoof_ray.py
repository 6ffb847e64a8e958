"""A process that poses as part of a Ray cluster and writes down everything it is sent.

Run by another Unix user in the shared-machine tests, as an attacker on a shared machine
would run it. Two roles, each one process:

- ``gcs``: started through a symlink named ``gcs_server`` with Ray's GCS flags. It accepts
  TCP on ``--gcs_server_port``, records the first bytes of every connection, and passes
  them to a gRPC server in the same process that records every call's metadata and
  answers UNAUTHENTICATED, to tempt a client into sending a token.
- ``dashboard``: started as ``.../dashboard/dashboard.py`` with the dashboard's flags. It
  answers ``/api/version`` and the State API's nodes as Ray 2.60 would, records every
  request's headers, and answers 401 to any other request without ``Authorization`` (a
  token-mode dashboard is what makes clients send one).

Each record is one JSON line in ``--log``. Only the standard library and grpcio (Ray's own
dependency) are used.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import socket
import sys
import threading
import time
from concurrent import futures

_lock = threading.Lock()
OPEN_PATHS = ("/api/version", "/api/v0/nodes")


def record(log: str, **fields: object) -> None:
    with _lock, open(log, "a", encoding="utf-8") as out:
        out.write(json.dumps({"time": time.time(), **fields}) + "\n")


def serve_gcs(port: int, log: str) -> None:
    import grpc

    class Everything(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
                metadata = [list(pair) for pair in details.invocation_metadata]
                record(log, role="gcs-grpc", method=details.method, metadata=metadata)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "token required")
                return b""

            return grpc.unary_unary_rpc_method_handler(answer)

    server = grpc.server(futures.ThreadPoolExecutor(4), handlers=[Everything()])
    inner = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def pipe(source: socket.socket, sink: socket.socket, first: bool) -> None:
        seen = b""
        try:
            while data := source.recv(65536):
                if first and len(seen) < 65536:
                    seen += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            if first:
                record(log, role="gcs-tcp", first_bytes=base64.b64encode(seen[:65536]).decode())
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(64)
    while True:
        conn, _ = listener.accept()
        backend = socket.create_connection(("127.0.0.1", inner))
        threading.Thread(target=pipe, args=(conn, backend, True), daemon=True).start()
        threading.Thread(target=pipe, args=(backend, conn, False), daemon=True).start()


def serve_dashboard(host: str, port: int, log: str, session: str, gcs: str) -> None:
    node = {"node_id": "f" * 56, "node_ip": "127.0.0.1", "is_head_node": True, "state": "ALIVE",
            "node_name": "127.0.0.1", "resources_total": {"CPU": 64.0}, "labels": {}}  # fmt: skip

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            record(log, role="dashboard", method=self.command, path=self.path, headers=dict(self.headers.items()))
            # Enough answers without a token to be listed and attached; everything else asks
            # for one, as a token-mode dashboard does, to tempt a client into sending it.
            if "Authorization" not in self.headers and not self.path.startswith(OPEN_PATHS):
                return self.reply(401, {"error": "token required"})
            if self.path.startswith("/api/version"):
                return self.reply(200, {"version": "4", "ray_version": "2.60.0", "ray_commit": "x",
                                        "session_name": session})  # fmt: skip
            if self.path.startswith("/api/v0/nodes"):
                result = {"total": 1, "num_after_truncation": 1, "num_filtered": 1, "result": [node]}
                return self.reply(200, {"result": True, "msg": "", "data": {"result": result}})
            return self.reply(404, {"error": "not found"})

        do_POST = do_HEAD = do_GET  # noqa: N815

        def reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer((host, port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["gcs", "dashboard"], required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--gcs_server_port", type=int)
    parser.add_argument("--node-ip-address")
    parser.add_argument("--session-name")
    parser.add_argument("--session-dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--port-retries")
    parser.add_argument("--gcs-address")
    parser.add_argument("--temp-dir")
    args = parser.parse_args()
    if args.role == "gcs":
        serve_gcs(args.gcs_server_port, args.log)
    else:
        session = args.session_dir.rstrip("/").rsplit("/", 1)[-1]
        serve_dashboard(args.host, args.port, args.log, session, args.gcs_address)


if __name__ == "__main__":
    sys.exit(main())
