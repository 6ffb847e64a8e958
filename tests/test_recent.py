"""The user's store and the rules for other machines, in milliseconds: recent attachments
(remembered, seen, forgotten; several processes writing at once; a store that is not the
user's own), the hosts setting, where a cluster is, and which hosts get no Ray token.
No cluster and no traffic: the namespaces of test_other_machines.py prove the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from castray_nb.core import auth
from castray_nb.core.discovery import ClusterInfo, DiscoveryReport, _not_to_probe, _token_policy, location_of
from castray_nb.core.errors import ConfigError, UnknownCluster
from castray_nb.core.session import Session
from castray_nb.core.settings import Settings, load_settings
from castray_nb.core.sources import Candidate
from castray_nb.core.store import Recent, Store
from tests.test_session_logic import FakeReader

TEST_NET = "198.51.100"  # documentation addresses (RFC 5737): nothing here ever sends to them


def found(port: int, host: str = f"{TEST_NET}.7") -> ClusterInfo:
    return ClusterInfo(f"session_2026-12-02_00-00-00_000000_{port}", f"{host}:{port}", None, "2.60.0", None, 1,
                       False, ("hosts",))  # fmt: skip


@pytest.fixture
def recent(tmp_path: Path) -> Recent:
    return Recent(Store(tmp_path / "castray_nb" / "castray.sqlite3", clock=iter(range(1000, 2000)).__next__))


def session_with(recent: Recent) -> tuple[Session, FakeReader]:
    reader = FakeReader()
    return Session(Settings(), reader=lambda info, settings, token: reader, recent=recent), reader


def test_every_attachment_is_remembered_with_its_name_address_and_last_seen(recent: Recent) -> None:
    session, _ = session_with(recent)
    session.attach(found(6379), "gpu")
    session.attach(found(6390), "lab")
    session.detach("gpu")
    entries = {e.name: e for e in recent.entries()}
    assert set(entries) == {"gpu", "lab"}
    assert entries["gpu"].address == f"{TEST_NET}.7:6379" and entries["gpu"].sources == ("hosts",)
    assert entries["gpu"].session_name == "session_2026-12-02_00-00-00_000000_6379" and entries["gpu"].token
    assert entries["gpu"].last_seen > entries["gpu"].first_attached  # seen at its last good read
    assert [e.name for e in recent.entries()] == ["gpu", "lab"]  # the most recently seen first
    # attached again under another name: one entry, renamed, first attached kept
    session.attach(found(6379), "gpu-box")
    again = {e.address: e for e in recent.entries()}[f"{TEST_NET}.7:6379"]
    assert again.name == "gpu-box" and again.first_attached == entries["gpu"].first_attached


def test_forget_drops_by_name_or_address_and_names_what_it_knows_otherwise(recent: Recent) -> None:
    session, _ = session_with(recent)
    session.attach(found(6379), "gpu")
    session.attach(found(6390), "lab")
    assert [e.name for e in session.forget("gpu")] == ["gpu"]
    assert [e.name for e in session.forget(f"{TEST_NET}.7:6390")] == ["lab"]
    with pytest.raises(UnknownCluster, match=r"no remembered cluster is called 'gpu' \(remembered: none\)"):
        session.forget("gpu")
    assert session.clusters() and recent.entries() == []  # forgetting detaches nothing


def test_the_store_is_the_users_alone_and_one_that_is_not_is_not_used(tmp_path: Path, caplog) -> None:
    path = tmp_path / "castray_nb" / "castray.sqlite3"
    recent = Recent(Store(path))
    recent.remember("a", f"{TEST_NET}.7:6379", session_name=None, sources=(), token=True)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    path.chmod(0o666)  # others could write it: they could make discovery probe what they like
    stranger = Recent(Store(path))
    assert stranger.entries() == []
    stranger.remember("b", f"{TEST_NET}.8:6379", session_name=None, sources=(), token=True)  # logged, not raised
    assert "not a file of this user's alone" in caplog.text
    with pytest.raises(UnknownCluster, match="cannot be forgotten"):
        stranger.forget("a")


def test_a_broken_store_never_breaks_an_attach(tmp_path: Path) -> None:
    path = tmp_path / "castray.sqlite3"
    path.write_bytes(b"not a database at all" * 100)
    path.chmod(0o600)
    session, _ = session_with(Recent(Store(path)))
    assert session.attach(found(6379), "gpu").name == "gpu" and session.remembered() == []


WRITER = """
import sys
from pathlib import Path
from castray_nb.core.store import Recent, Store
recent = Recent(Store(Path(sys.argv[1])))
for i in range(int(sys.argv[3])):
    recent.remember(f"{sys.argv[2]}-{i}", f"198.51.100.{sys.argv[2]}:{6000 + i}", session_name=None, sources=(),
                    token=True)
    recent.seen(f"198.51.100.{sys.argv[2]}:{6000 + i}")
"""


def test_several_processes_remember_at_once_and_no_write_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "castray.sqlite3"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n), "40"]) for n in (1, 2, 3, 4)]
    assert [w.wait(120) for w in writers] == [0, 0, 0, 0]
    entries = Recent(Store(path)).entries()
    assert len(entries) == 160 and len({e.address for e in entries}) == 160


def test_the_hosts_setting_names_machines_never_ranges() -> None:
    settings = load_settings({"CASTRAY_HOSTS": f"gpu-box, {TEST_NET}.7:6380,http://head:8265"}, path=Path("/none"))
    assert settings.hosts == ("gpu-box", f"{TEST_NET}.7:6380", "http://head:8265")
    for bad in (f"{TEST_NET}.0/24", "auto", "ray://head:10001", "a b", f"{TEST_NET}.*"):
        with pytest.raises(ConfigError, match="CASTRAY_HOSTS"):
            load_settings({"CASTRAY_HOSTS": bad}, path=Path("/none"))


def test_the_cli_refuses_a_bad_host_in_one_line_before_any_traffic() -> None:
    done = subprocess.run([sys.executable, "-m", "castray_nb.cli", "discover", "--host", f"{TEST_NET}.0/24"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("castray-nb: error: --host: invalid address")


def test_where_a_cluster_is() -> None:
    here, there = "127.0.0.1:6379", f"{TEST_NET}.7:6379"
    assert location_of(here, ("processes",)) == "this-machine"
    assert location_of(f"http://{here}", ("hosts",)) == "this-machine"
    assert location_of(there, ("hosts", "recent")) == "listed-host"
    assert location_of(there, ("config",)) == location_of(there, ("address",)) == "address"
    assert location_of(f"http://{TEST_NET}.7:8265", ("team",)) == "plug-in"
    assert location_of(there, ("recent",)) == "recent"
    assert found(6379).to_json()["location"] == "listed-host"


def test_what_is_probed_where() -> None:
    remote = f"{TEST_NET}.7:6379"
    raylet_here = [Candidate(source="processes", gcs_address=remote, local_node_ids=("n",))]
    assert "not on this machine" in str(_not_to_probe(raylet_here, Settings()))
    for source in ("env", "config", "current_cluster"):  # meant for attaching, or plantable: not probed
        assert "hosts setting" in str(_not_to_probe([Candidate(source=source, gcs_address=remote)], Settings()))
    named = [*raylet_here, Candidate(source="hosts", gcs_address=remote)]
    assert _not_to_probe(named, Settings()) is None
    assert "remote addresses are off" in str(_not_to_probe(named, Settings(remote=False)))
    assert _not_to_probe([Candidate(source="processes", gcs_address="127.0.0.1:6379")], Settings()) is None


def test_a_host_only_a_plugin_named_gets_no_token_unless_the_plugin_means_it(monkeypatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t" * 40)
    plugin_only, meant, listed = f"{TEST_NET}.21", f"{TEST_NET}.22", f"{TEST_NET}.23"
    try:
        _token_policy([
            Candidate(source="team", gcs_address=f"{plugin_only}:6379"),
            Candidate(source="team", dashboard_url=f"http://{meant}:8265", token_meant=True),
            Candidate(source="team", host=listed),
            Candidate(source="hosts", host=listed),  # also listed by the user: the user's word wins
        ])  # fmt: skip
        grant = auth.token_for(plugin_only, 6379)
        assert grant.token is None and grant.held_back
        assert "only the discovery plug-in team named" in str(grant.refusal(f"{plugin_only}:6379"))
        assert auth.token_for(meant, 8265).token is not None
        assert auth.token_for(listed, 6379).token is not None
        assert auth.token_for(plugin_only, 6379, auth.Token("given", "on purpose")).token is not None
        _token_policy([Candidate(source="hosts", gcs_address=f"{plugin_only}:6379")])  # the user lists it
        assert auth.token_for(plugin_only, 6379).token is not None
    finally:
        for host in (plugin_only, meant, listed):
            auth.release(host)


def test_a_remembered_plugin_cluster_attached_again_still_gets_no_token(recent: Recent, monkeypatch) -> None:
    host = f"{TEST_NET}.31"
    recent.remember("team-box", f"{host}:6379", session_name=None, sources=("team",), token=False)
    session, _ = session_with(recent)
    monkeypatch.setattr("castray_nb.core.connector.resolve", lambda *a, **k: found(6379, host))
    try:
        session.connect(f"{host}:6379")  # the sidebar's Recent, or a server's restore
        assert auth.withheld(host) and auth.token_for(host, 6379).token is None
        assert {e.address: e.token for e in recent.entries()}[f"{host}:6379"] is False  # remembered so again
    finally:
        auth.release(host)


def test_the_magics_list_and_forget(recent: Recent) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from castray_nb import api

    previous = api._default
    api._default, _ = session_with(recent)
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "castray_nb")
    try:
        api._default.attach(found(6379), "gpu")
        frame = shell.run_line_magic("castray", "recent")
        assert list(frame["name"]) == ["gpu"] and list(frame["address"]) == [f"{TEST_NET}.7:6379"]
        assert shell.run_line_magic("castray", "forget gpu") == ["gpu"]
        with pytest.raises(UsageError, match="no remembered cluster is called 'gpu'"):
            shell.run_line_magic("castray", "forget gpu")
    finally:
        api._default.close()
        api._default = previous


def test_the_discovery_report_json_keeps_its_contract_fields() -> None:
    report = DiscoveryReport(clusters=(found(6379),))
    data = json.loads(json.dumps([c.to_json() for c in report.clusters]))[0]
    assert {"name", "gcs_address", "dashboard_url", "ray_version", "session_dir", "num_nodes", "auth_required",
            "sources", "owner", "other_user", "location"} <= set(data)  # fmt: skip
    assert os.environ.get("CASTRAY_HOSTS") is None  # the tests' own environment names no host


def test_the_panel_says_where_each_cluster_is(recent: Recent) -> None:
    from castray_nb.core.render import discovered_list, render_status

    session, _ = session_with(recent)
    session.attach(found(6379), "gpu")
    session.refresh()
    status = render_status(session.clusters(), [])
    assert "data-location='listed-host'" in status and "on a listed host (hosts setting)" in status
    assert "data-location='listed-host'" in discovered_list([found(6379)], {})


def test_the_store_keeps_the_most_recently_seen_and_discovery_probes_fewer(tmp_path: Path, monkeypatch) -> None:
    from castray_nb.core import sources, store
    from castray_nb.core.sources import SourceContext, recent_attachments

    monkeypatch.setattr(store, "MAX_RECENT", 5)
    recent = Recent(Store(tmp_path / "castray.sqlite3", clock=iter(range(1000, 2000)).__next__))
    for i in range(8):
        recent.remember(f"c{i}", f"{TEST_NET}.{i}:6379", session_name=None, sources=(), token=True)
    assert [e.name for e in recent.entries()] == ["c7", "c6", "c5", "c4", "c3"]
    monkeypatch.setattr(sources, "RECENT_PROBED", 2)
    monkeypatch.setattr("castray_nb.core.store.Recent", lambda: recent)
    offered = list(recent_attachments(SourceContext(Settings())))
    assert [c.gcs_address for c in offered] == [f"{TEST_NET}.7:6379", f"{TEST_NET}.6:6379"]
    assert all(c.source == "recent" and c.token_meant for c in offered)
