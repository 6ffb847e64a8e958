"""Dashboard links, the kernels' registry and the proxy's path rules, in milliseconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from castray_nb.core import links, registry
from castray_nb.core.auth import Token
from castray_nb.core.errors import ConfigError
from castray_nb.core.settings import Settings, load_settings
from castray_nb.server.errors import ApiError
from castray_nb.server.rewrite import Redactor, rewrite_location, upstream_path
from castray_nb.server.targets import Targets


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", "/"), ("/", "/"), ("/api/v0/nodes", "/api/v0/nodes"), ("/static/js/", "/static/js/"),
     ("//evil.example/x", "/evil.example/x"), ("/@evil:1/x", "/@evil:1/x"), ("/a%20b", "/a%20b"),
     ("/http:/x", "/http:/x")],
)  # fmt: skip
def test_paths_stay_below_the_dashboards_root(raw: str, expected: str) -> None:
    assert upstream_path(raw) == expected


@pytest.mark.parametrize("raw", ["/..", "/a/../b", "/%2e%2e/x", "/.%2E", "/a%2fb", "/a%5Cb", "/a%0d%0ab", "/a%00"])
def test_traversal_and_control_characters_are_refused(raw: str) -> None:
    with pytest.raises(ApiError) as refused:
        upstream_path(raw)
    assert refused.value.status_code == 400 and refused.value.code == "bad_path"


def test_redirects_are_rerooted_under_the_proxy() -> None:
    origin, prefix = "http://127.0.0.1:8265", "/castray/dashboard/c/cap-x"
    assert rewrite_location("/#/jobs", origin, "/", prefix) == prefix + "/"
    assert rewrite_location("http://127.0.0.1:8265/api?a=1", origin, "/", prefix) == prefix + "/api?a=1"
    assert rewrite_location("http://elsewhere:1/x", origin, "/", prefix) == prefix + "/"
    assert rewrite_location("../../../x", origin, "/a/b/", prefix) == prefix + "/x"


@pytest.mark.parametrize("cut", range(1, 12))
def test_the_token_is_masked_across_any_chunk_boundary(cut: int) -> None:
    redactor = Redactor(Token("s3cret-token", "test"))
    text = b"abc s3cret-token def s3cret-token"
    out = redactor.feed(text[:cut]) + redactor.feed(text[cut:]) + redactor.close()
    assert out == b"abc ************ def ************" and len(out) == len(text)


def test_links_go_through_the_server_under_jupyter_and_direct_outside() -> None:
    hub = links.JupyterContext("/user/alice/", "test")
    url, session = "http://127.0.0.1:8265", "session_2026_1"
    assert links.dashboard_link(url, session, "lab", context=hub, detect=False) == (
        "/user/alice/castray/dashboard/session_2026_1/"
    )
    assert links.dashboard_link(url, session, "lab", detect=False) == url
    assert links.dashboard_link(None, session, "lab", context=hub, detect=False) is None
    template = "https://hub.example{base_url}proxy/{port}/#{name}"
    assert links.dashboard_link(url, session, "lab", context=hub, template=template, detect=False) == (
        "https://hub.example/user/alice/proxy/8265/#lab"
    )


def test_the_kernel_learns_the_base_url_from_hub_or_from_its_server(tmp_path) -> None:
    assert links.jupyter_context({"JUPYTERHUB_SERVICE_PREFIX": "/user/bob"}).base_url == "/user/bob/"
    (tmp_path / "jpserver-4242.json").write_text(json.dumps({"base_url": "/lab/base/", "port": 8888}))
    env = {"JPY_PARENT_PID": "4242", "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    found = links.jupyter_context(env)
    assert found is not None and found.base_url == "/lab/base/" and "jpserver-4242.json" in found.how
    assert links.jupyter_context({"JUPYTER_RUNTIME_DIR": str(tmp_path)}) is None  # not a kernel
    assert links.jupyter_context({**env, "JPY_PARENT_PID": "1"}) is None  # no such server file


def test_a_template_with_an_unknown_field_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown field"):
        load_settings(env={"CASTRAY_DASHBOARD_LINK": "{nope}/x"}, path=tmp_path / "none.json")
    settings = load_settings(env={"CASTRAY_DASHBOARD_LINK": "{base_url}x/{port}", "CASTRAY_DASHBOARD_WRITES": "yes"},
                             path=tmp_path / "none.json")  # fmt: skip
    assert settings.dashboard_link == "{base_url}x/{port}" and settings.dashboard_writes


def test_registrations_are_private_and_go_with_their_kernel(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    mine = registry.KernelRegistry()
    mine.write([("session_a", "a", "http://127.0.0.1:1"), (None, "b", "http://127.0.0.1:2"), ("s_c", "c", None)])
    assert oct(registry.registry_dir().stat().st_mode & 0o777) == "0o700"
    assert oct(mine.path.stat().st_mode & 0o777) == "0o600"
    assert [(r.session_name, r.dashboard_url) for r in registry.registrations()] == [
        ("session_a", "http://127.0.0.1:1")
    ]
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = registry.KernelRegistry(pid=int(ended.stdout))
    gone.write([("session_gone", "g", "http://127.0.0.1:3")])
    assert {r.session_name for r in registry.registrations()} == {"session_a"}
    assert not gone.path.exists()  # the ended kernel's file was removed when read
    mine.write([])
    assert registry.registrations() == [] and not mine.path.exists()
    os.chmod(registry.registry_dir(), 0o777)  # not private any more: ignored
    mine.write([("session_a", "a", "http://127.0.0.1:1")])
    assert registry.registrations() == []


def test_the_server_refuses_a_registered_remote_cluster_when_remote_is_off() -> None:
    from castray_nb.core.session import Session

    targets = Targets(Session(Settings(remote=False)))
    with pytest.raises(ApiError) as refused:
        targets._verify("session_x", "http://10.213.0.9:8265", "registered by a kernel")  # refused before any traffic
    assert refused.value.status_code == 403 and refused.value.code == "remote_refused"


def test_cards_and_states_show_the_link_through_jupyter(monkeypatch) -> None:
    from castray_nb.core.session import Session
    from castray_nb.testing.replay import ReplayDashboard

    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/carol/")
    links.refresh_context()
    try:
        with ReplayDashboard(nodes=3) as url, Session(Settings()) as session:
            state = session.connect(url, name="replayed")
            expected = "/user/carol/castray/dashboard/session_2026-01-01_00-00-00_000000_1/"
            assert state.dashboard_link == expected and state.dashboard_url == url
            assert f"href='{expected}'" in state._repr_html_() and url not in state._repr_html_().split("dashboard")[-1]
        monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX")
        links.refresh_context()
        assert links.dashboard_link(url, "s", "n") == url  # outside Jupyter: the direct URL
    finally:
        links.refresh_context()
