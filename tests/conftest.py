"""Shared fixtures: real services on free loopback ports, always cleaned up.

Also the suite's two honesty rules: every test carries the marker of its kind, taken from where
it lives (so ``-m "not e2e"`` or ``-m "not soak"`` selects exactly what it says), and a missing
external tool fails the test that needs it instead of skipping it quietly.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tradeguard.config import Settings, load_settings
from tradeguard.metrics.catalog import Metrics
from tradeguard.process.services import RedisServer

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# The marker of each test directory (relative to tests/). A test's kind follows from where it
# lives, so it is set here once rather than by a ``pytestmark`` line that a new file can forget.
KIND_OF_DIRECTORY = {"unit": "unit", "integration": "integration", "e2e": "e2e"}
# Files that carry an extra marker on top of their directory's.
EXTRA_MARKERS = {Path("integration/ha/test_soak.py"): ("soak",)}

# binary -> the Debian package that ships it, as scripts/setup.sh installs them (make setup).
DEBIAN_PACKAGE_OF = {
    "redis-server": "redis-server",
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "initdb": "postgresql",
    "wrk": "wrk",
}

RequireBinary = Callable[[str], str]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/ by its directory: unit, integration or e2e (and soak).

    A test under tests/ outside those directories is a collection error: it would carry no
    kind, so ``-m "not e2e"`` and ``-m integration`` could no longer be trusted to select
    exactly the tests they name. Items from outside tests/ are not ours and are left alone.
    """
    unplaced: list[str] = []
    for item in items:
        try:
            where = Path(item.path).resolve().relative_to(TESTS)
        except ValueError:
            continue
        kind = KIND_OF_DIRECTORY.get(where.parts[0]) if len(where.parts) > 1 else None
        if kind is None:
            unplaced.append(item.nodeid)
            continue
        item.add_marker(kind)
        for extra in EXTRA_MARKERS.get(where, ()):
            item.add_marker(extra)
    if unplaced:
        raise pytest.UsageError(
            "tests outside tests/unit, tests/integration and tests/e2e have no kind marker; "
            f"move them or map their directory in tests/conftest.py: {', '.join(unplaced)}"
        )


def require_binary_on_path(name: str) -> str:
    """Absolute path of ``name``, or fail the test saying what is missing and how to get it.

    A failure, never a skip: the external tools are part of the project's requirements
    (``make setup`` installs them), and a skipped check reads as a passed run in CI.
    """
    path = shutil.which(name)
    if path is None:
        package = DEBIAN_PACKAGE_OF.get(name)
        source = f"Debian package {package}" if package else "see scripts/setup.sh"
        pytest.fail(f"{name} is not installed: run make setup ({source})", pytrace=False)
    return path


@pytest.fixture
def require_binary() -> RequireBinary:
    """The path of a required external tool, failing the test (not skipping it) when absent."""
    return require_binary_on_path


MakeRedis = Callable[..., RedisServer]
LOCKED_REDIS_PASSWORD = "right-horse-battery"


@pytest.fixture
def make_redis(tmp_path: Path) -> Iterator[MakeRedis]:
    """Start a throwaway redis-server on a free port (``name`` its directory under the test's
    tmp_path; ``durable``: append-only file, fsync always; ``password``: required); every one
    started is stopped at teardown, whatever the test did to it (killed, paused, restarted)."""
    started: list[RedisServer] = []

    def make(name: str = "redis", **options: Any) -> RedisServer:
        server = RedisServer(tmp_path / name, **options)
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def redis_server(make_redis: MakeRedis) -> RedisServer:
    """A throwaway redis-server (no persistence) that the test may kill, pause or restart."""
    return make_redis()


@pytest.fixture
def durable_redis(make_redis: MakeRedis) -> RedisServer:
    """A redis-server with the append-only file on, so a restart keeps acknowledged writes."""
    return make_redis("redis-aof", durable=True)


@pytest.fixture
def locked_redis(make_redis: MakeRedis) -> RedisServer:
    """A redis-server that requires LOCKED_REDIS_PASSWORD."""
    return make_redis("redis-auth", password=LOCKED_REDIS_PASSWORD)


@pytest.fixture
def metrics() -> Metrics:
    """A fresh metric set on its own registry, so tests do not see each other's counts."""
    return Metrics(CollectorRegistry())


@pytest.fixture
def settings(redis_server: RedisServer, tmp_path: Path) -> Settings:
    return load_settings(
        redis_url=redis_server.url,
        duckdb_path=tmp_path / "store.duckdb",
        metrics_port=0,
        reclaim_idle_seconds=1.0,
    )
