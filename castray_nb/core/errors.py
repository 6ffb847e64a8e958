"""Errors users see. Each message is written to be shown as one line."""

from __future__ import annotations


class CastrayError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidAddress(CastrayError, ValueError):
    """The text given as a cluster address is not one this package understands."""

    EXPECTED = (
        "expected host:port (GCS), http(s)://host:port (dashboard), a host alone (tries Ray's "
        "default ports), ray://host:port (driver only), a discovered session name, or 'auto'"
    )

    def __init__(self, address: object, reason: str = "", *, refused: bool = False) -> None:
        shown = _shorten(repr(address))
        if refused:  # a well-formed address that the settings do not allow
            super().__init__(f"address {shown} refused: {reason}")
            return
        why = f" ({reason})" if reason else ""
        super().__init__(f"invalid address {shown}{why}: {self.EXPECTED}")


class InvalidName(CastrayError, ValueError):
    """A name to attach a cluster under that cannot be used (see :data:`NAME_RULE`)."""


NAME_RULE = "letters, digits, '.', '_' and '-', at most 64 characters"


class InvalidArgument(CastrayError, ValueError):
    """An argument other than an address or a name is out of range or of the wrong kind."""


class AmbiguousAddress(CastrayError, ValueError):
    """The address stands for several clusters (``auto`` with more than one live here)."""


class NameTaken(CastrayError):
    """Another cluster is already attached under that name."""


class ClusterUnreachable(CastrayError, ConnectionError):
    """Nothing that speaks Ray answered at the address within the timeout."""


class ClusterTimeout(ClusterUnreachable, TimeoutError):
    """Something accepted the connection but did not answer within the timeout."""


class PrometheusError(CastrayError):
    """The Prometheus server of the ``prometheus_url`` setting did not answer, or not as
    Prometheus does (its URL, which may hold credentials, is never in the message)."""


class AuthRequired(CastrayError, PermissionError):
    """The cluster wants a token and none (or a wrong one) was sent."""


class DriverConflict(CastrayError, RuntimeError):
    """This process is already the Ray driver of another cluster."""


class UnknownCluster(CastrayError, KeyError):
    """No attached cluster has that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownJob(CastrayError, KeyError):
    """No attached cluster has a job with that id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(CastrayError, ValueError):
    """The settings file or a CASTRAY_* variable holds something unusable."""


def _shorten(text: str, limit: int = 80) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
