"""Settings: defaults, file, environment, and clear errors for bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from castray_nb.core.errors import ConfigError
from castray_nb.core.settings import Settings, config_path, load_settings


def test_defaults_without_file_or_env(tmp_path: Path) -> None:
    assert load_settings({}, tmp_path / "missing.json") == Settings()


def test_file_then_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"http_timeout": 7, "temp_dirs": ["/a", "/b"], "attach": ["127.0.0.1:6379"]}))
    settings = load_settings({"CASTRAY_HTTP_TIMEOUT": "1.5", "CASTRAY_SOURCES": "processes, env"}, path)
    assert settings.http_timeout == 1.5
    assert settings.temp_dirs == ("/a", "/b")
    assert settings.attach == ("127.0.0.1:6379",)
    assert settings.sources == ("processes", "env")


def test_config_path_follows_the_environment(tmp_path: Path) -> None:
    assert config_path({"CASTRAY_CONFIG": str(tmp_path / "x.json")}) == tmp_path / "x.json"
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "castray_nb" / "config.json"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"http_timeot": 3}', "unknown key"),
        ('{"http_timeout": "soon"}', "http_timeout"),
        ('{"http_timeout": -1}', "between"),
        ('{"temp_dirs": 5}', "list of strings"),
        ("[1, 2]", "JSON object"),
        ("{not json", "cannot read"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings({}, path)


def test_bad_environment_values_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CASTRAY_REFRESH_INTERVAL"):
        load_settings({"CASTRAY_REFRESH_INTERVAL": "fast"}, tmp_path / "none.json")
