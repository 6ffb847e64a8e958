"""A machine shared with another Unix user: whose cluster is it, and the Ray token only to
the user's own processes.

Another user of the test's own making (``useradd``, removed after) runs a real Ray head
without a token, a real Ray head in token mode, and a spoofing pair (:mod:`tests.spoof_ray`)
that poses as a cluster and writes down every header, gRPC metadata entry and first bytes it
is sent. Our user holds a token in ``~/.ray/auth_token`` and a token-protected cluster of
its own. Every front end is run as users run it; then the spoof's record must hold no token.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import castray_nb
from castray_nb.core.address import split_hostport
from castray_nb.core.auth import Token, token_for, token_for_url
from castray_nb.core.client import ClusterClient
from castray_nb.core.discovery import ClusterInfo, discover_report
from castray_nb.core.errors import AuthRequired
from castray_nb.core.owners import current_user, holder
from castray_nb.core.session import Session
from castray_nb.core.settings import Settings
from castray_nb.launch import LocalCluster
from tests.conftest import TOKEN, wait_until
from tests.jupyter import jupyter_server
from tests.test_server import call
from tests.users import Spoof, User, python_paths, reachable_by_everyone, spoof, unix_user

pytestmark = pytest.mark.slow

THEIR_TOKEN = secrets.token_hex(32)  # the other user's own token, for their token-mode head
SPOOF_SESSION = "session_2026-12-01_03-00-00_000000_4242"
CLI = [sys.executable, "-m", "castray_nb.cli"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "shared"


@dataclass
class Neighbour:
    """Everything the other user runs."""

    user: User
    open: LocalCluster  # no token needed
    guarded: LocalCluster  # token mode, with THEIR_TOKEN
    spoof: Spoof


@pytest.fixture(scope="module")
def other_user() -> Iterator[User]:
    """Another Unix user, who may run this environment's Python for the module's length."""
    with unix_user() as user, reachable_by_everyone(*python_paths(), sys.prefix, castray_nb.__file__):
        yield user


@pytest.fixture(scope="module")
def neighbour(other_user: User, token_cluster: LocalCluster) -> Iterator[Neighbour]:
    """The other user's processes; pytest stops them before it removes the user."""
    homes = [tempfile.mkdtemp(prefix="castray-other-home-") for _ in range(2)]
    clusters = [LocalCluster(home=homes[0], user=other_user.name),
                LocalCluster(home=homes[1], user=other_user.name, token=THEIR_TOKEN)]  # fmt: skip
    launched: list[LocalCluster] = []
    try:
        for cluster in clusters:
            launched.append(cluster.launch())
        with spoof(other_user, SPOOF_SESSION) as posing:
            for cluster in launched:
                cluster.wait_ready()
            yield Neighbour(other_user, clusters[0], clusters[1], posing)
    finally:
        for cluster in launched:
            cluster.stop()
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def our_home(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Our user's HOME, with our token where a plain ``ray.init()`` leaves it."""
    home = Path(tempfile.mkdtemp(prefix="castray-our-home-"))
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(TOKEN)
    monkeypatch.setenv("HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def _the_spoof_never_gets_a_token(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "neighbour" in request.fixturenames:
        request.getfixturevalue("neighbour").spoof.assert_no_token(TOKEN, THEIR_TOKEN)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def by_gcs(found: list[dict[str, Any]] | list[ClusterInfo], address: str) -> Any:
    key = split_hostport(address)[1]
    for entry in found:
        gcs = entry["gcs_address"] if isinstance(entry, dict) else entry.gcs_address
        if gcs and split_hostport(gcs)[1] == key:
            return entry
    return None


# --- who holds a socket ---------------------------------------------------------------


def test_a_listening_socket_is_told_apart_by_its_user(
    neighbour: Neighbour, token_cluster: LocalCluster, our_home: Path
) -> None:
    """The kernel's socket table, not a command line, says whose an endpoint is; only our
    own endpoints and other machines get Ray's token unasked; a token given on purpose goes."""
    other = neighbour.user
    for port in (neighbour.spoof.gcs_port, neighbour.spoof.dashboard_port, neighbour.open.gcs_port):
        held = holder("127.0.0.1", port)
        assert held.uids == {other.uid} and not held.own and held.user == other.name
    ours = holder(*split_hostport(token_cluster.gcs_address))
    assert ours.own and ours.user == current_user()
    assert holder("127.0.0.1", 1).uids == frozenset()

    withheld = token_for("127.0.0.1", neighbour.spoof.dashboard_port)
    assert withheld.token is None and withheld.withheld_from == other.name
    assert token_for_url(f"http://{neighbour.open.host_ip}:{neighbour.open.dashboard_port}").token is None
    assert token_for(*split_hostport(token_cluster.gcs_address)).token == Token(TOKEN, "~/.ray/auth_token")
    # another machine gets Ray's token as Ray's CLI would send it (a decision: nothing is sent)
    assert token_for("10.213.0.9", 6379).token == Token(TOKEN, "~/.ray/auth_token")
    given = Token("on-purpose", "the token given")
    assert token_for("127.0.0.1", neighbour.spoof.dashboard_port, given).token is given


def test_a_cluster_whose_parts_belong_to_two_users_is_taken_as_the_other_users(other_user: User) -> None:
    from castray_nb.core.discovery import _hidden, _owner

    both = {os.geteuid(), other_user.uid}
    owner, note = _owner(both)
    assert owner == other_user.name and note and current_user() in note and other_user.name in note
    assert _hidden(both, Settings()) and other_user.name in str(_hidden(both, Settings()))
    assert _hidden(both, Settings(all_users=True)) is None
    assert _owner({os.geteuid()}) == (current_user(), None) and _hidden({os.geteuid()}, Settings()) is None
    assert ClusterInfo("s", None, None, None, None, None, False, (), owner=owner).other_user


# --- discovery, as the CLI and Python meet it -------------------------------------------


def test_the_cli_lists_our_clusters_and_other_users_only_when_asked(
    neighbour: Neighbour, token_cluster: LocalCluster, our_home: Path
) -> None:
    home = {"HOME": str(our_home)}
    mine = cli("discover", "--json", env=home)
    assert mine.returncode == 0, mine.stderr
    found = json.loads(mine.stdout)
    ours = by_gcs(found, token_cluster.gcs_address)
    assert ours and ours["num_nodes"] == 1 and ours["auth_required"], "our token cluster is read with our token"
    assert ours["owner"] == current_user() and ours["other_user"] is False
    for theirs in (neighbour.open.gcs_address, neighbour.guarded.gcs_address, neighbour.spoof.gcs_address):
        assert by_gcs(found, theirs) is None, f"{theirs} is another user's and was listed by default"

    everyone = cli("discover", "--json", "--all-users", env=home)
    assert everyone.returncode == 0, everyone.stderr
    found = json.loads(everyone.stdout)
    assert by_gcs(found, token_cluster.gcs_address)["num_nodes"] == 1
    open_, guarded, posing = (
        by_gcs(found, c.gcs_address) for c in (neighbour.open, neighbour.guarded, neighbour.spoof)
    )
    for entry in (open_, guarded, posing):
        assert entry["owner"] == neighbour.user.name and entry["other_user"] is True
    assert open_["num_nodes"] == 1 and not open_["auth_required"]
    assert guarded["num_nodes"] is None and guarded["auth_required"], "theirs needs their token, which we lack"
    assert posing["name"] == SPOOF_SESSION

    table = cli("discover", "--all-users", env=home)
    owner_column = [line for line in table.stdout.splitlines() if neighbour.spoof.gcs_address in line]
    assert owner_column and owner_column[0].rstrip().endswith(neighbour.user.name)
    verbose = cli("discover", "-v", env=home)
    assert f"another user's cluster ({neighbour.user.name})" in verbose.stderr and "--all-users" in verbose.stderr


def test_discover_connect_and_nodes_attach_only_our_own(
    neighbour: Neighbour, token_cluster: LocalCluster, our_home: Path
) -> None:
    env = {"HOME": str(our_home), "CASTRAY_ALL_USERS": "true"}
    attached = cli("discover", "--connect", "--json", env=env)
    assert attached.returncode == 0, attached.stderr
    refused = [line for line in attached.stderr.splitlines() if "another user's cluster" in line]
    assert any(SPOOF_SESSION in line for line in refused) and len(refused) >= 3, attached.stderr

    theirs = {n.node_id for n in ClusterClient(None, neighbour.open.dashboard_url, Settings()).read(cluster="x").nodes}
    ours = {n.node_id for n in ClusterClient(token_cluster.gcs_address, None, Settings()).read(cluster="x").nodes}
    rows = cli("nodes", "--json", env=env)
    assert rows.returncode == 0, rows.stderr
    seen = {row["node_id"] for row in json.loads(rows.stdout)}
    assert ours <= seen and not theirs & seen and "f" * 56 not in seen


def test_python_discovery_and_auto_pick_our_own(
    neighbour: Neighbour, token_cluster: LocalCluster, our_home: Path, tmp_path: Path
) -> None:
    """``auto`` means our only cluster, whatever other users run; a ``ray_current_cluster``
    planted by the other user in a temp dir everyone can write points at the spoof."""
    shared = tmp_path / "shared-ray-tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    planted = shared / "ray_current_cluster"
    planted.write_text(neighbour.spoof.gcs_address + "\n")
    shutil.chown(planted, neighbour.user.name)
    temp_dirs = (token_cluster.temp_dir, neighbour.open.temp_dir, neighbour.guarded.temp_dir, str(shared))
    for all_users in (False, True):
        settings = Settings(sources=("current_cluster",), temp_dirs=temp_dirs, all_users=all_users)
        report = discover_report(settings)
        assert by_gcs(list(report.clusters), token_cluster.gcs_address), report
        others = [c for c in report.clusters if c.other_user]
        assert len(others) == (3 if all_users else 0), report
        if not all_users:
            hidden = [why for _, why in report.rejected if "another user's cluster" in why]
            assert len(hidden) == 3, report.rejected
        with Session(settings) as session:
            state = session.connect("auto")
            assert state.info.gcs_address == token_cluster.gcs_address and state.alive_nodes == 1
    assert castray_nb.discover() and all(not c.other_user for c in castray_nb.discover())
    everyone = castray_nb.discover(all_users=True)
    assert by_gcs(everyone, neighbour.spoof.gcs_address).owner == neighbour.user.name


# --- attaching another user's cluster on purpose ----------------------------------------


def test_connecting_to_another_users_open_cluster_works_without_our_token(neighbour: Neighbour, our_home: Path) -> None:
    with Session(Settings()) as session:
        state = session.connect(neighbour.open.gcs_address, name="theirs")
        assert state.reachable and state.alive_nodes == 1 and state.info.owner == neighbour.user.name
        assert session.cluster("theirs").to_json()["other_user"] is True
        by_dashboard = session.connect(neighbour.open.dashboard_url or "", name="theirs-too")
        assert by_dashboard.name == "theirs", "the same cluster, attached once"
        # joining it as a driver would hand it our token (ray.init reads Ray's sources)
        with pytest.raises(AuthRequired, match=f"belongs to user {neighbour.user.name}.*ray.init"):
            session.connect(neighbour.open.gcs_address, driver=True)
        assert castray_nb.core.driver_address() is None


def test_a_token_cluster_of_another_user_is_one_clear_error_unless_a_token_is_given(
    neighbour: Neighbour, our_home: Path
) -> None:
    guarded = neighbour.guarded
    with Session(Settings()) as session:
        for address in (guarded.gcs_address, guarded.dashboard_url or ""):
            with pytest.raises(AuthRequired) as caught:
                session.connect(address)
            message = str(caught.value)
            assert neighbour.user.name in message and "token=" in message and "\n" not in message
            assert TOKEN not in message
        assert session.clusters() == []
        state = session.connect(guarded.dashboard_url or "", name="theirs", token=THEIR_TOKEN)
        assert state.reachable and state.alive_nodes == 1
    token_file = our_home / "their-token"
    token_file.write_text(THEIR_TOKEN)
    read = cli("nodes", "--address", guarded.gcs_address, "--token-file", str(token_file), "--json",
               env={"HOME": str(our_home)})  # fmt: skip
    assert read.returncode == 0, read.stderr
    assert len(json.loads(read.stdout)) == 1 and THEIR_TOKEN not in read.stdout + read.stderr
    refused = cli("nodes", "--address", guarded.gcs_address, env={"HOME": str(our_home)})
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert f"belongs to user {neighbour.user.name}" in refused.stderr


def test_the_spoof_attached_on_purpose_gets_no_token_from_reads_jobs_or_logs(
    neighbour: Neighbour, our_home: Path
) -> None:
    """Named by its address, the spoof attaches (it answers the State API without a token),
    but every request it answers with 401 stays one without our token."""
    with Session(Settings()) as session:
        state = session.connect(neighbour.spoof.dashboard_url, name="spoof")
        assert state.info.owner == neighbour.user.name and state.alive_nodes == 1
        assert any(f"belongs to user {neighbour.user.name}" in w for w in state.warnings), state.warnings  # its usage
        found, skipped = session.jobs()
        assert found == [] and f"belongs to user {neighbour.user.name}" in skipped["spoof"]
    assert any(e.get("path", "").startswith("/api/jobs") for e in neighbour.spoof.seen())


# --- files another user can plant -------------------------------------------------------


def test_registry_and_attachment_files_not_ours_alone_are_ignored(
    neighbour: Neighbour, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from castray_nb.core.registry import KernelRegistry, registrations, registry_dir
    from castray_nb.server import persist

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    ours = KernelRegistry()
    ours.write([("session_ours", "ours", "http://127.0.0.1:1")])
    assert [r.name for r in registrations()] == ["ours"]
    planted = registry_dir() / f"kernel-{os.getppid()}.json"  # a live pid: only ownership can rule it out
    planted.write_text(json.dumps({"clusters": [{"session_name": SPOOF_SESSION, "name": "x",
                                                 "dashboard_url": neighbour.spoof.dashboard_url}]}))  # fmt: skip
    shutil.chown(planted, neighbour.user.name)
    assert [r.name for r in registrations()] == ["ours"], "another user's registry file was read"
    shutil.chown(planted, "root")
    os.chmod(planted, 0o666)
    assert [r.name for r in registrations()] == ["ours"], "a registry file others can write was read"
    ours.remove()

    with Session(Settings()) as session:
        persist.save(session)
    path = persist.attachments_path()
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    path.write_text(json.dumps({"clusters": [{"name": "x", "address": neighbour.spoof.dashboard_url}]}))
    assert persist.saved() != []
    shutil.chown(path, neighbour.user.name)
    assert persist.saved() == [], "another user's attachments file was read"


# --- the server, its proxy and the sidebar ----------------------------------------------


def test_the_server_discovers_ours_lists_theirs_when_set_and_proxies_theirs_only_when_attached(
    neighbour: Neighbour, token_cluster: LocalCluster, our_home: Path
) -> None:
    with jupyter_server(env={"HOME": str(our_home)}) as server:
        status, reply = call(server, "POST", "/cluster/discover-external", {"attach": True})
        assert status == 200, reply
        assert by_gcs(reply["clusters"], token_cluster.gcs_address)["num_nodes"] == 1
        assert not [c for c in reply["clusters"] if c["other_user"]]
    with jupyter_server(env={"HOME": str(our_home), "CASTRAY_ALL_USERS": "true"}) as server:
        status, reply = call(server, "POST", "/cluster/discover-external", {"attach": True})
        assert status == 200, reply
        posing = by_gcs(reply["clusters"], neighbour.spoof.gcs_address)
        assert posing["owner"] == neighbour.user.name and posing["other_user"] is True
        assert SPOOF_SESSION in {e["name"] for e in reply["attach_errors"]}
        status, reply = call(server, "GET", f"/castray/dashboard/{SPOOF_SESSION}/api/jobs/", root="")
        assert status == 404 and reply["error"] == "unknown_cluster", "served a dashboard nobody attached"

        connect = {"cluster_address": neighbour.spoof.dashboard_url, "name": "spoof"}
        status, reply = call(server, "POST", "/cluster/connect-external", connect)
        assert status == 200 and reply["cluster"]["owner"] == neighbour.user.name, reply
        link = reply["cluster"]["dashboard_link"]
        request = urllib.request.Request(f"{server.url}{link}api/jobs/")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        answer = json.loads(refused.value.read())
        assert refused.value.code == 502 and answer["error"] == "cluster_auth_required"
        assert f"belongs to user {neighbour.user.name}" in answer["message"]
    assert any(e.get("path") == "/api/jobs/" for e in neighbour.spoof.seen()), "the proxy did ask the spoof"


def test_the_sidebar_shows_the_owner_and_its_discovery_sends_no_token(neighbour: Neighbour, our_home: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, _needs

    _needs()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = len(neighbour.spoof.seen())
    args = ("--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True")  # fmt: skip
    env = {"HOME": str(our_home), "CASTRAY_ALL_USERS": "true"}
    with jupyter_server("jupyterlab", env=env, args=args) as lab, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(f"{lab.url}/lab/workspaces/shared?token={lab.token}&reset")
            page.locator(".jp-SideBar .lm-TabBar-tab[data-id='castray-sidebar']").click(timeout=60_000)
            posing = page.locator(f"#castray-sidebar .castray-discovered[data-session='{SPOOF_SESSION}']")
            expect(posing).to_be_visible(timeout=60_000)  # discovered when the sidebar opened
            expect(posing.locator(".castray-owner")).to_have_attribute("data-owner", neighbour.user.name)
            expect(posing).to_contain_text(f"owner: {neighbour.user.name}")
            page.screenshot(path=str(ARTIFACTS / "sidebar-other-users.png"))
        finally:
            browser.close()
    wait_until(lambda: len(neighbour.spoof.seen()) > before, 10, 0.2)  # the spoof was probed, tokenless
