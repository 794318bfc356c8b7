"""Shared fixtures: real services on free loopback ports, always cleaned up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tradeguard.config import Settings, load_settings
from tradeguard.metrics.catalog import Metrics
from tradeguard.process.services import RedisServer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server (no persistence) that the test may kill, pause or restart."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server with the append-only file on, so a restart keeps acknowledged writes."""
    server = RedisServer(tmp_path / "redis-aof", durable=True).start()
    try:
        yield server
    finally:
        server.stop()


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
