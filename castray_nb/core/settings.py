"""All settings in one place: defaults, an optional JSON file, CASTRAY_* variables.

Precedence: explicit arguments > environment > config file > defaults.

========================  ==========================  =========================================
key (config file)         environment variable        meaning
========================  ==========================  =========================================
``probe_timeout``         CASTRAY_PROBE_TIMEOUT        seconds for one discovery probe (TCP/HTTP)
``source_timeout``        CASTRAY_SOURCE_TIMEOUT       seconds a discovery source may take (then left behind)
``http_timeout``          CASTRAY_HTTP_TIMEOUT         seconds for one dashboard request
``gcs_timeout``           CASTRAY_GCS_TIMEOUT          seconds for one GCS read (no dashboard)
``refresh_interval``      CASTRAY_REFRESH_INTERVAL     seconds between live refreshes
``temp_dirs``             CASTRAY_TEMP_DIRS            extra Ray temp dirs (os.pathsep-separated)
``attach``                CASTRAY_ATTACH               addresses to attach on start (comma-separated)
``sources``               CASTRAY_SOURCES              discovery sources to use (comma-separated)
``node_limit``            CASTRAY_NODE_LIMIT           most nodes asked of one cluster per read
``remote``                CASTRAY_REMOTE               false: refuse addresses not on this machine
``dashboard_link``        CASTRAY_DASHBOARD_LINK       template of the dashboard links shown (see core/links.py)
``dashboard_writes``      CASTRAY_DASHBOARD_WRITES     true: the server's dashboard proxy passes non-GET requests
``all_users``             CASTRAY_ALL_USERS            true: discovery also lists other Unix users' clusters here
``hosts``                 CASTRAY_HOSTS                other machines discovery probes (comma-separated; see below)
``history``               CASTRAY_HISTORY              false: record no history (see core/recorder.py)
``history_retention``     CASTRAY_HISTORY_RETENTION    how long history is kept: seconds, or ``12h``, ``7d``, ``2w``
``prometheus_url``        CASTRAY_PROMETHEUS_URL       a Prometheus server that scrapes the clusters: history() reads it
========================  ==========================  =========================================

``hosts`` names machines, never ranges: ``gpu-box`` (Ray's default ports: GCS 6379 and
dashboard 8265), ``10.1.2.3:6380`` (a GCS on that port), ``http://head:8265`` (a
dashboard). Discovery sends traffic to this machine and to those hosts only (and to the
hosts an installed discovery plug-in names).

The file is ``$CASTRAY_CONFIG`` or ``~/.config/castray_nb/config.json``; unknown keys
are an error, so a misspelt key never goes unnoticed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Settings:
    probe_timeout: float = 0.5
    source_timeout: float = 5.0
    http_timeout: float = 3.0
    gcs_timeout: float = 5.0
    refresh_interval: float = 2.0
    temp_dirs: tuple[str, ...] = ()
    attach: tuple[str, ...] = ()
    sources: tuple[str, ...] | None = None
    node_limit: int = 10_000
    remote: bool = True
    dashboard_link: str | None = None
    dashboard_writes: bool = False
    all_users: bool = False
    hosts: tuple[str, ...] = ()
    history: bool = True
    history_retention: float = 7 * 86400.0
    prometheus_url: str | None = None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


TEMPLATE_FIELDS = ("base_url", "cluster", "name", "dashboard_url", "host", "port")


def check_template(template: str, env: Mapping[str, str] | None = None) -> str:
    """The ``dashboard_link`` template itself, or ConfigError naming the field it cannot fill
    (the fields are filled by :func:`.links.dashboard_link`)."""
    env = os.environ if env is None else env
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None and name not in TEMPLATE_FIELDS and name not in env:
            known = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            raise ConfigError(f"dashboard_link: unknown field {{{name}}}; known: {known} and environment variables")
    return template


def check_prometheus_url(raw: Any) -> str | None:
    """A Prometheus server's base URL (``http://host:9090``, maybe under a path), or None
    for an empty one; ValueError saying what is wrong with it."""
    from urllib.parse import urlsplit

    if not isinstance(raw, str):
        raise ValueError("must be a string")
    text = raw.strip().rstrip("/")
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("must be an http:// or https:// URL of a Prometheus server, e.g. http://localhost:9090")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError("has a port that is not a number") from None
    return text


def check_host_entry(text: str) -> str:
    """One ``hosts`` entry as given, or ValueError saying why it names no machine to probe."""
    from .address import parse_address
    from .errors import InvalidAddress

    try:
        kind = parse_address(text).kind
    except InvalidAddress as exc:
        raise ValueError(str(exc)) from None
    if kind not in ("host", "gcs", "dashboard"):
        raise ValueError(f"{text!r} is not a host, host:port or http(s):// dashboard URL")
    return text


_FLOATS = ("probe_timeout", "source_timeout", "http_timeout", "gcs_timeout", "refresh_interval")
_LISTS = {"temp_dirs": os.pathsep, "attach": ",", "sources": ",", "hosts": ","}
_BOOLS = ("remote", "dashboard_writes", "all_users", "history")
_OTHERS = ("node_limit", "dashboard_link", "history_retention", "prometheus_url")
_ENV = {name: "CASTRAY_" + name.upper() for name in (*_FLOATS, *_LISTS, *_BOOLS, *_OTHERS)}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("CASTRAY_CONFIG"):
        return Path(env["CASTRAY_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "castray_nb" / "config.json"


def load_settings(env: Mapping[str, str] | None = None, path: Path | None = None) -> Settings:
    """Read the config file (if any) and the environment into a :class:`Settings`."""
    env = os.environ if env is None else env
    path = path or config_path(env)
    values: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"settings file {path} must hold a JSON object")
        unknown = sorted(set(data) - set(_ENV))
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {path}; known: {', '.join(_ENV)}")
        for key, raw in data.items():
            values[key] = _coerce(key, raw, f"{path}: {key}")
    for key, var in _ENV.items():
        if env.get(var, "").strip():
            values[key] = _coerce(key, env[var], var)
    return Settings(**values)


def _coerce(key: str, raw: Any, where: str) -> Any:
    try:
        if key in _FLOATS:
            value = float(raw)
            if not 0 < value <= 3600:
                raise ValueError("must be between 0 and 3600 seconds")
            return value
        if key in _BOOLS:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in _TRUE + _FALSE:
                raise ValueError("must be true or false")
            return text in _TRUE
        if key == "dashboard_link":
            if not isinstance(raw, str):
                raise ValueError("must be a string")
            return check_template(raw.strip()) or None
        if key == "prometheus_url":
            return check_prometheus_url(raw)
        if key == "history_retention":
            from .times import seconds

            value = seconds(raw)
            if value < 3600:
                raise ValueError("must be at least an hour")
            return value
        if key == "node_limit":
            number = int(raw)
            if number < 1:
                raise ValueError("must be at least 1")
            return number
        items = raw.split(_LISTS[key]) if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ValueError("must be a list of strings")
        entries = tuple(i.strip() for i in items if i.strip())
        if key == "hosts":
            for entry in entries:
                check_host_entry(entry)
        return entries
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value for {where}: {exc}") from None
