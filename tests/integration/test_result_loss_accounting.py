"""A DuckDB outage longer than the result stream's cap: every result is persisted or counted.

The stream keeps about ``maxlen`` results; while DuckDB refuses writes the engine keeps
appending, and trimming removes results the store has not persisted, some already handed to the
persister (pending), some never read. Both kinds must show up in
``tradeguard_results_dropped_total{reason="trimmed_unpersisted"}``: persisted + dropped equals
appended, exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradeguard.bus import Keys, ResultStream, TradeResult
from tradeguard.bus.connection import make_client
from tradeguard.metrics.catalog import Metrics
from tradeguard.process import wait_until
from tradeguard.process.services import RedisServer
from tradeguard.store.duck import DuckStore
from tradeguard.store.persister import ResultPersister


def result(i: int) -> TradeResult:
    return TradeResult(
        f"r{i}", "a", "EURUSD", "buy", 1.0, "filled", 1.0, 1.0001, 0.0001, 0.002, 1.0, 2.0, "e1"
    )


@pytest.fixture
def store(tmp_path: Path, metrics: Metrics) -> Iterator[DuckStore]:
    duck = DuckStore(tmp_path / "store.duckdb", metrics)
    yield duck
    duck.close()


def dropped(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "tradeguard_results_dropped_total", {"reason": "trimmed_unpersisted"}
    )
    return value or 0.0


def test_results_trimmed_during_a_store_outage_are_counted_not_lost(
    redis_server: RedisServer, store: DuckStore, metrics: Metrics
) -> None:
    results = ResultStream(make_client(redis_server.url), Keys(), maxlen=100, metrics=metrics)
    persister = ResultPersister(results, store, metrics=metrics)
    stop = threading.Event()
    loop = threading.Thread(target=persister.run, args=(stop,), daemon=True)
    loop.start()
    try:
        for i in range(50):
            results.append(result(i))
        wait_until(lambda: persister.persisted == 50, 10, "the first 50 results in DuckDB")
        wait_until(lambda: persister.watching_trims, 5, "the persister to take its baseline")
        assert dropped(metrics) == 0

        store.set_writes_enabled(False)  # DuckDB refuses writes: results pile up in the stream
        for i in range(50, 650):
            results.append(result(i))
        wait_until(
            lambda: (
                (metrics.registry.get_sample_value("tradeguard_result_sync_failures_total") or 0)
                >= 1
            ),
            10,
            "the persister to hit the outage",
        )
        store.set_writes_enabled(True)

        wait_until(
            lambda: persister.persisted + dropped(metrics) == 650,
            20,
            "every result persisted or counted as dropped "
            f"(persisted {persister.persisted}, dropped {dropped(metrics)})",
        )
    finally:
        stop.set()
        loop.join(5)
    persisted = store.result_ids()
    assert len(persisted) == len(set(persisted)) == persister.persisted  # none twice
    assert dropped(metrics) >= 650 - 100 - 100  # the cap kept at most ~100 (+ one node)
    # What survived is the newest: trimming takes the oldest first.
    assert f"r{649}" in persisted
