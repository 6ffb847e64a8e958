"""The server's one error type, and how every handler (REST, events, proxy) writes it."""

from __future__ import annotations

import json
from typing import Any

from tornado import web

from ..core.errors import (
    AmbiguousAddress,
    AuthRequired,
    CastrayError,
    ClusterTimeout,
    ClusterUnreachable,
    ConfigError,
    InvalidAddress,
    InvalidArgument,
    InvalidName,
    NameTaken,
    PrometheusError,
    UnknownCluster,
    UnknownJob,
)

# (core error type, HTTP status, error code): first match wins.
CORE_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (InvalidAddress, 400, "invalid_address"),
    (InvalidName, 400, "invalid_name"),
    (AmbiguousAddress, 400, "ambiguous_address"),
    (InvalidArgument, 400, "bad_request"),
    (UnknownCluster, 404, "unknown_cluster"),
    (UnknownJob, 404, "unknown_job"),
    (NameTaken, 409, "conflict"),
    (ClusterTimeout, 504, "timeout"),
    (AuthRequired, 502, "cluster_auth_required"),
    (ClusterUnreachable, 502, "cluster_unreachable"),
    (PrometheusError, 502, "prometheus_error"),
    (ConfigError, 500, "config_error"),
    (CastrayError, 409, "conflict"),
)
# Codes of Tornado's and Jupyter's own refusals.
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


class ApiError(web.HTTPError):
    """An error answered as ``{"error": code, "message": text}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, "%s", message)
        self.code = code
        self.message = message

    @classmethod
    def of(cls, exc: CastrayError) -> ApiError:
        """The answer to a core error (status and code from :data:`CORE_ERRORS`)."""
        status, code = next(((s, c) for kind, s, c in CORE_ERRORS if isinstance(exc, kind)), (500, "internal_error"))
        return cls(status, code, str(exc))


class JsonErrors:
    """A handler mixin: every error as ``{"error": code, "message": line}``, also Jupyter's
    own 403s; a 405 says which methods would do (RFC 9110)."""

    def allowed_methods(self) -> list[str]:
        return [m for m in ("GET", "POST", "DELETE") if _defines(type(self), m.lower())]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        handler: Any = self
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            code, message = exc.code, exc.message
        elif isinstance(exc, web.HTTPError):
            code, message = HTTP_CODES.get(status_code, "error"), exc.log_message or handler._reason
        else:
            code, message = "internal_error", "unexpected server error (see the server log)"
        if status_code == 405:
            handler.set_header("Allow", ", ".join(self.allowed_methods()))
        handler.clear_header("Content-Encoding")
        handler.set_header("Content-Type", "application/json")
        handler.finish(json.dumps({"error": code, "message": message}))


def _defines(cls: type, method: str) -> bool:
    return getattr(cls, method, None) is not getattr(web.RequestHandler, method)
