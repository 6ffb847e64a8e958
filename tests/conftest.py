"""Shared fixtures: real Ray clusters, started once per test session, always stopped.

Every test (and every cluster it starts) runs with a HOME of its own, so no token
in the real home changes what a test sees, and nothing a test does leaks out.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

# Where a Ray of another version is installed for the version tests, kept between runs:
# in the real home, since every test gets a HOME of its own below.
RAY_VENVS = Path(os.environ.get("CASTRAY_TEST_RAY_VENVS") or Path.home() / ".cache" / "castray_nb-tests")
HOME = tempfile.mkdtemp(prefix="castray-test-home-")
os.environ["HOME"] = HOME
os.environ["XDG_CONFIG_HOME"] = os.path.join(HOME, ".config")
for _var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_ADDRESS", "CASTRAY_CONFIG"):
    os.environ.pop(_var, None)
for _var in [v for v in os.environ if v.startswith("CASTRAY_") and not v.startswith("CASTRAY_TEST_")]:
    os.environ.pop(_var)
os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")

from castray_nb.core.settings import Settings  # noqa: E402
from castray_nb.launch import LocalCluster, free_ports, stop_all  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_all()  # whatever a failing test left running
    shutil.rmtree(HOME, ignore_errors=True)


@dataclass
class Clusters:
    head: LocalCluster  # custom temp dir, unusual dashboard port
    headless: LocalCluster  # --include-dashboard=false


@pytest.fixture(scope="session")
def clusters() -> Iterator[Clusters]:
    """Two live heads, started at once and shared by every test that needs one."""
    custom_temp = tempfile.mkdtemp(prefix="castray-custom-temp-")
    (odd_port,) = free_ports(1)
    head = LocalCluster(temp_dir=os.path.join(custom_temp, "raytmp"), dashboard_port=odd_port, home=HOME)
    headless = LocalCluster(dashboard=False, home=HOME)
    launched: list[LocalCluster] = []
    try:
        for cluster in (head, headless):
            launched.append(cluster.launch())
        for cluster in launched:
            cluster.wait_ready()
        yield Clusters(head, headless)
    finally:
        for cluster in launched:
            cluster.stop()
        shutil.rmtree(custom_temp, ignore_errors=True)


# The ends of the Ray range castray_nb supports (pyproject.toml): each environment's tests
# also read a cluster of the other end.
OLDEST_RAY, NEWEST_RAY = "2.40.0", "2.60.0"
INSTALLED_RAY = metadata.version("ray")


def has_token_auth(ray_package: Path) -> bool:
    """Whether a Ray installation has token auth (Ray 2.40 has none), seen from its files."""
    return (ray_package / "_private" / "authentication").is_dir()


def installed_ray_package() -> Path:
    spec = importlib.util.find_spec("ray")  # finds the package; does not import it
    assert spec is not None and spec.origin
    return Path(spec.origin).parent


@pytest.fixture(scope="session")
def other_ray() -> str:
    """The ``ray`` executable of the other end of the supported range: $CASTRAY_TEST_OTHER_RAY
    (CI sets it), else a virtual environment of its own, made on first use (1-2 minutes)."""
    given = os.environ.get("CASTRAY_TEST_OTHER_RAY")
    if given:
        return given
    version = OLDEST_RAY if INSTALLED_RAY != OLDEST_RAY else NEWEST_RAY
    venv = RAY_VENVS / f"ray-{version}"
    ray = venv / "bin" / "ray"
    if not ray.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", f"ray[default]=={version}"],
                       check=True, timeout=1200)  # fmt: skip
    return str(ray)


def other_ray_version(ray: str) -> str:
    python = Path(ray).with_name("python")
    out = subprocess.run([str(python), "-c", "from importlib.metadata import version; print(version('ray'))"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


TOKEN = secrets.token_hex(32)  # the token of this user's token-protected test cluster


@pytest.fixture(scope="session")
def token_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """A head of this user's that requires :data:`TOKEN` (``RAY_AUTH_MODE=token``). Where
    the installed Ray has no token auth (2.40), the head is of the newest Ray: what reads it
    (HTTP headers, gRPC metadata) is castray_nb's, whatever Ray is installed beside it."""
    home = tempfile.mkdtemp(prefix="castray-token-home-")
    ray = None if has_token_auth(installed_ray_package()) else request.getfixturevalue("other_ray")
    cluster = LocalCluster(home=home, token=TOKEN, ray=ray)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def head(clusters: Clusters) -> LocalCluster:
    return clusters.head


@pytest.fixture(scope="session")
def headless(clusters: Clusters) -> LocalCluster:
    return clusters.headless


@pytest.fixture
def settings() -> Settings:
    return Settings(probe_timeout=0.5, http_timeout=3.0, gcs_timeout=5.0)


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.5) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)
