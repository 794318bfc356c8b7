"""Fixtures of the HA fault suite: PostgreSQL with a fresh database per test, a ledger URL per
dialect, a durable Redis, and factories for clusters and publishers that always clean up."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tradeguard.process import wait_until
from tradeguard.process.services import PostgresServer, RedisServer

from .harness import Cluster, Publisher


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "soak: bounded, seeded fault soak (part of the normal run; deselect with -m)"
    )


def _pg_answers(url: str) -> bool:
    with psycopg.connect(url, connect_timeout=1) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session; each test gets its own database in it."""
    server = PostgresServer(tmp_path_factory.mktemp("pg")).start()
    try:
        wait_until(lambda: _pg_answers(server.url), 30, "PostgreSQL to accept connections")
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """CREATE DATABASE for one test, dropped (connections and all) afterwards."""
    name = f"tg_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The ledger on each dialect, for the tests that apply to both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        return
    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture
def pg_ledger_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A PostgreSQL ledger only: for faults on the network path to the database, which a local
    SQLite file does not have."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture
def ha_redis(make_redis: Callable[..., RedisServer]) -> RedisServer:
    """The shared Redis, durable (AOF, fsync always), so a restart keeps accepted signals."""
    return make_redis("redis", durable=True)


@pytest.fixture
def make_cluster(tmp_path: Path, ha_redis: RedisServer) -> Iterator[Callable[..., Cluster]]:
    """Build (not start) a cluster on this test's Redis and the given ledger; closed at
    teardown, with each replica's log tail printed (pytest shows it when the test failed)."""
    clusters: list[Cluster] = []

    def build(ledger_url: str, **kwargs: Any) -> Cluster:
        cluster = Cluster(tmp_path, ha_redis, ledger_url, **kwargs)
        clusters.append(cluster)
        return cluster

    yield build
    for cluster in clusters:
        for replica in cluster:
            print(f"---- {replica.id} (exit {replica.proc.returncode}) ----")
            print(replica.proc.log_tail(40))
        cluster.close()


@pytest.fixture
def make_publisher(ha_redis: RedisServer) -> Iterator[Callable[..., Publisher]]:
    publishers: list[Publisher] = []

    def build(**kwargs: Any) -> Publisher:
        publisher = Publisher(ha_redis.url, **kwargs)
        publishers.append(publisher)
        return publisher

    yield build
    for publisher in publishers:
        publisher.stop()
