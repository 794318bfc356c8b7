"""Every replica keeps the whole trade history: results persisted by leader and followers alike.

Two engine services share one redis-server, each with its own DuckDB file and its own consumer
name; only one of them may execute. Each persister follows the result stream through its own
consumer group (``store:<consumer>``), so both files end up with every result, one row per
signal id, while only the executing replica snapshots account state.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from prometheus_client import CollectorRegistry

from tradeguard.bus import Keys, ResultStream, Signal, SignalStream, TradeResult
from tradeguard.bus.connection import as_text, make_client
from tradeguard.bus.results import RESULT_FIELD
from tradeguard.config import Settings
from tradeguard.engine.fencing import LocalFence
from tradeguard.engine.paper import BrokerKnobs, MemoryBook, PaperBroker
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.metrics.catalog import Metrics
from tradeguard.process import wait_until
from tradeguard.store.duck import DuckStore
from tradeguard.store.persister import LEGACY_GROUP, ResultPersister, store_group

KEYS = Keys()


class Standby(LocalFence):
    """A follower's fence: never allowed to take work (the HA coordinator's, while following)."""

    def may_execute(self) -> bool:
        return False


def replica_settings(settings: Settings, tmp_path: Path, rid: str) -> Settings:
    return settings.model_copy(update={"duckdb_path": tmp_path / f"{rid}.duckdb"})


@contextmanager
def replica(
    settings: Settings, tmp_path: Path, rid: str, leader: bool, book: MemoryBook | None = None
) -> Iterator[EngineService]:
    fence = None if leader else Standby(make_client(settings.redis_url), KEYS)
    active: Callable[[], bool] = (lambda: True) if leader else (lambda: False)
    broker = PaperBroker(BrokerKnobs(latency=0.0005), book=book or MemoryBook())
    svc = EngineService(
        replica_settings(settings, tmp_path, rid),
        EngineOptions(consumer=rid, metrics_port=0),
        broker=broker,
        fence=fence,
        active=active,
    )
    with svc:
        yield svc


def publish(settings: Settings, ids: list[str]) -> None:
    stream = SignalStream(make_client(settings.redis_url), KEYS)
    for i, sid in enumerate(ids):
        stream.publish(
            Signal(account=f"acct-{i % 3}", symbol="EURUSD", action="buy", volume=1, signal_id=sid)
        )


def stream_results(settings: Settings) -> Counter[str]:
    entries = make_client(settings.redis_url).xrange(KEYS.results)
    return Counter(json.loads(f[RESULT_FIELD])["signal_id"] for _id, f in entries)


def stored(svc: EngineService) -> list[str]:
    assert svc.store is not None
    return svc.store.result_ids()


def groups(settings: Settings) -> dict[str, dict[str, object]]:
    info = make_client(settings.redis_url).xinfo_groups(KEYS.results)
    return {as_text(g["name"]): g for g in info}


def sample(svc: EngineService, name: str, **labels: str) -> float | None:
    return svc.registry.get_sample_value(name, labels)


def rows_per_signal(path: Path) -> Counter[str]:
    """The results table of a DuckDB file no process holds any more."""
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute("SELECT signal_id FROM results").fetchall()
    return Counter(str(r[0]) for r in rows)


def test_leader_and_follower_both_persist_every_result(settings: Settings, tmp_path: Path) -> None:
    ids = [f"h-{i:04d}" for i in range(200)]
    with (
        replica(settings, tmp_path, "r1", leader=True) as leader,
        replica(settings, tmp_path, "r2", leader=False) as follower,
    ):
        publish(settings, ids)
        wait_until(lambda: set(stream_results(settings)) == set(ids), 30, "200 results emitted")
        for svc in (leader, follower):
            wait_until(lambda s=svc: set(stored(s)) == set(ids), 30, "every result in DuckDB")
        assert follower.engine.stats.processed == 0  # the follower executed nothing
        assert set(groups(settings)) == {store_group("r1"), store_group("r2")}
        for svc in (leader, follower):
            wait_until(
                lambda s=svc: (
                    sample(s, "tradeguard_stream_pending", stream="results") == 0
                    and sample(s, "tradeguard_stream_lag", stream="results") == 0
                ),
                10,
                "each replica's own group drained, as its /metrics reports it",
            )
        # The trade state is the leader's: only it snapshots accounts (and checks them).
        wait_until(lambda: bool(leader.store and leader.store.states()), 10, "snapshots")
        assert follower.store is not None and follower.store.states() == {}
    engines = {json.loads(f[RESULT_FIELD])["engine"] for _i, f in _entries(settings)}
    assert engines == {"r1"}
    for rid in ("r1", "r2"):
        rows = rows_per_signal(tmp_path / f"{rid}.duckdb")
        assert set(rows) == set(ids) and max(rows.values()) == 1, rid


def _entries(settings: Settings) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return list(make_client(settings.redis_url).xrange(KEYS.results))


def test_late_and_restarted_replicas_back_fill_once_and_the_old_group_stays_still(
    settings: Settings, tmp_path: Path
) -> None:
    client = make_client(settings.redis_url)
    first = [f"a-{i:03d}" for i in range(50)]
    more = [f"b-{i:03d}" for i in range(30)]
    book = MemoryBook()
    with replica(settings, tmp_path, "r1", leader=True, book=book) as leader:
        assert leader.persister is not None
        publish(settings, first)
        wait_until(lambda: leader.persister.persisted == 50, 30, "50 results persisted on r1")

        # The group every replica shared before this change, left behind holding 5 pending.
        client.xgroup_create(KEYS.results, LEGACY_GROUP, id="0")
        client.xreadgroup(LEGACY_GROUP, "old-r1-store", {KEYS.results: ">"}, count=5)

        # A result repeated for the same signal with the same content (an engine re-emitting
        # a recorded result after a crash): still one row, not counted again.
        _eid, fields = _entries(settings)[0]
        client.xadd(KEYS.results, {RESULT_FIELD: fields[RESULT_FIELD]})
        assert stream_results(settings).most_common(1)[0][1] == 2
        wait_until(
            lambda: sample(leader, "tradeguard_stream_lag", stream="results") == 0,
            10,
            "r1 to read the repeated result",
        )
        wait_until(
            lambda: sample(leader, "tradeguard_stream_pending", stream="results") == 0, 10, "ack"
        )
        assert leader.persister.persisted == 50
        assert sample(leader, "tradeguard_result_processing_duration_seconds_count") == 50

        # A replica starting for the first time back-fills what the stream still holds.
        with replica(settings, tmp_path, "r2", leader=False) as late:
            assert late.persister is not None
            wait_until(lambda: set(stored(late)) == set(first), 30, "r2 back-filled")
            assert late.persister.persisted == 50
            # Back-fill is not processing latency: it was all in the stream before r2 started.
            assert sample(late, "tradeguard_result_processing_duration_seconds_count") == 0

        # r2 is down while r1 executes more; r2 restarts under the same id and catches up
        # from where its group left off.
        publish(settings, more)
        wait_until(lambda: set(stored(leader)) == set(first + more), 30, "80 results on r1")
        with replica(settings, tmp_path, "r2", leader=False) as restarted:
            assert restarted.persister is not None
            wait_until(lambda: set(stored(restarted)) == set(first + more), 30, "r2 caught up")
            assert restarted.persister.persisted == 30  # only what it had not read yet
            wait_until(
                lambda: sample(restarted, "tradeguard_stream_pending", stream="results") == 0,
                10,
                "r2's own group drained",
            )
        legacy = groups(settings)[LEGACY_GROUP]
        assert legacy["pending"] == 5  # nobody reads the old group: its pending list is still
        # The collector reports this replica's group, not the old one.
        assert sample(leader, "tradeguard_stream_pending", stream="results") == 0
    assert set(book.fills()) <= set(first + more)
    for rid in ("r1", "r2"):
        rows = rows_per_signal(tmp_path / f"{rid}.duckdb")
        assert set(rows) == set(first + more) and max(rows.values()) == 1, rid


def test_a_follower_turning_leader_snapshots_the_accounts_it_saw_trade(
    settings: Settings, tmp_path: Path
) -> None:
    leading = threading.Event()  # the follower's term: set when it takes over
    fast = settings.model_copy(update={"state_check_interval_seconds": 0.2})
    with replica(fast, tmp_path, "r1", leader=True) as leader:
        follower = EngineService(
            replica_settings(fast, tmp_path, "r2"),
            EngineOptions(consumer="r2", metrics_port=0),
            fence=Standby(make_client(settings.redis_url), KEYS),
            active=leading.is_set,
        )
        with follower:
            assert follower.store is not None and leader.store is not None
            publish(settings, [f"c-{i}" for i in range(9)])
            wait_until(lambda: len(stored(follower)) == 9, 20, "the follower to persist all 9")
            wait_until(lambda: len(leader.store.states()) == 3, 10, "the leader's snapshots")
            assert follower.store.states() == {}
            checks = sample(follower, "tradeguard_state_consistency_checks_total", status="ok")
            assert not checks  # the check reads and repairs the shared state: leader only
            leading.set()
            wait_until(
                lambda: follower.store.states() == leader.store.states(),
                10,
                "the new leader's first snapshot to cover every account that traded",
            )
            wait_until(
                lambda: sample(follower, "tradeguard_state_consistency_checks_total", status="ok"),
                10,
                "the new leader to check its snapshots against Redis",
            )


def test_results_trimmed_before_one_replica_stored_them_are_counted_by_that_replica_only(
    settings: Settings, tmp_path: Path
) -> None:
    """The trimmed-before-persisted accounting is per group: a replica whose DuckDB refuses
    writes for longer than the stream's cap counts its own losses; the other loses nothing."""
    results = ResultStream(make_client(settings.redis_url), KEYS, maxlen=100)
    stores = {rid: DuckStore(tmp_path / f"{rid}.duckdb") for rid in ("r1", "r2")}
    metrics = {rid: Metrics(CollectorRegistry()) for rid in stores}
    persisters = {
        rid: ResultPersister(
            results,
            stores[rid],
            metrics=metrics[rid],
            consumer=f"{rid}-store",
            group=store_group(rid),
        )
        for rid in stores
    }
    stop = threading.Event()
    loops = [threading.Thread(target=p.run, args=(stop,), daemon=True) for p in persisters.values()]
    for loop in loops:
        loop.start()

    def dropped(rid: str) -> float:
        value = metrics[rid].registry.get_sample_value(
            "tradeguard_results_dropped_total", {"reason": "trimmed_unpersisted"}
        )
        return value or 0.0

    try:
        for i in range(50):
            results.append(trade_result(i))
        for p in persisters.values():
            wait_until(lambda p=p: p.persisted == 50 and p.watching_trims, 10, "a baseline")
        stores["r2"].set_writes_enabled(False)
        for chunk in range(1, 13):  # in steps r1 keeps up with: only r2 falls behind the cap
            for i in range(chunk * 50, chunk * 50 + 50):
                results.append(trade_result(i))
            n = chunk * 50 + 50
            wait_until(lambda n=n: persisters["r1"].persisted == n, 10, f"r1 to store {n}")
        failures = metrics["r2"].registry.get_sample_value
        wait_until(
            lambda: (failures("tradeguard_result_sync_failures_total") or 0) >= 1,
            10,
            "r2 to hit its outage",
        )
        stores["r2"].set_writes_enabled(True)
        wait_until(
            lambda: persisters["r2"].persisted + dropped("r2") == 650,
            20,
            "every result stored or counted as dropped by r2",
        )
        assert dropped("r1") == 0
        assert dropped("r2") >= 650 - 100 - 100
    finally:
        stop.set()
        for loop in loops:
            loop.join(5)
    assert len(stores["r1"].result_ids()) == 650
    assert len(stores["r2"].result_ids()) == persisters["r2"].persisted
    for store in stores.values():
        store.close()


def trade_result(i: int) -> TradeResult:
    return TradeResult(
        f"t{i}", "a", "EURUSD", "buy", 1.0, "filled", 1.0, 1.0001, 0.0001, 0.002, 1.0, 2.0, "r1"
    )
