"""Shared helpers for the benchmarks: a throwaway redis-server and timing summaries."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tradeguard.process.services import RedisServer


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="tradeguard-bench-") as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            yield server
        finally:
            server.stop()


def quantile(samples: list[float], q: float) -> float:
    data = sorted(samples)
    return data[min(len(data) - 1, int(q * len(data)))]


def median(values: list[float]) -> float:
    return statistics.median(values)
