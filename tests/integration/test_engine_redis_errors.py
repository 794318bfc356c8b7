"""Redis refusing writes (READONLY) makes the engine back off and retry; no thread ends.

After a failover the old primary comes back as a replica, and every write the engine sends it
is answered with a READONLY error reply. That reply is not a connection error: a loop that
only rides out lost connections would let it escape and end the engine thread (or the DuckDB
persister's) while the process, its /metrics endpoint and its HA lease live on: a replica that
looks healthy and trades nothing. The engine promises that error replies about the server's
state (READONLY, OOM, MISCONF, ...) are counted as Redis errors and retried with backoff.

Here a real redis-server is turned into a replica of a port nothing listens on: it keeps its
dataset and refuses every write with READONLY, as a demoted primary does. For about two
seconds the engine must keep counting Redis errors with every worker thread alive; once the
server is a primary again, signals published before, during the execution of which the fault
came, and after it are each executed (once at the broker), and the persister stores them.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from redis import Redis
from redis.exceptions import ReadOnlyError

from tradeguard.bus import Keys, Signal, SignalStream
from tradeguard.bus.connection import make_client
from tradeguard.bus.results import RESULT_FIELD
from tradeguard.config import Settings
from tradeguard.engine.paper import BrokerKnobs, MemoryBook, PaperBroker
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.process import free_port, wait_until
from tradeguard.process.services import RedisServer

READONLY_HOLD_SECONDS = 2.0  # how long the server refuses writes: the fault's duration


def errors(svc: EngineService, reason: str) -> float:
    return svc.registry.get_sample_value("tradeguard_errors_total", {"reason": reason}) or 0.0


def results_by_signal(client: Redis, keys: Keys) -> Counter[str]:
    return Counter(
        json.loads(f[RESULT_FIELD])["signal_id"] for _id, f in client.xrange(keys.results)
    )


def publish(producer: SignalStream, prefix: str, n: int) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(n)]
    for sid in ids:
        producer.publish(
            Signal(account="acct", symbol="SYM", action="buy", volume=1, signal_id=sid)
        )
    return ids


def test_readonly_redis_is_ridden_out_and_trading_resumes(
    redis_server: RedisServer, settings: Settings
) -> None:
    keys = Keys()
    admin = make_client(redis_server.url)
    producer = SignalStream(make_client(redis_server.url), keys)
    book = MemoryBook()
    # Slow enough that the fault lands while a batch is being executed.
    broker = PaperBroker(BrokerKnobs(latency=0.02, jitter=0.0), book=book)
    with EngineService(settings, EngineOptions(metrics_port=0), broker=broker) as svc:
        persister = svc.persister
        assert persister is not None
        warmup = publish(producer, "warmup", 5)
        wait_until(
            lambda: set(warmup) <= set(results_by_signal(admin, keys)),
            15,
            "the warm-up signals to be executed",
        )
        in_flight = publish(producer, "in-flight", 30)
        wait_until(
            lambda: any(sid.startswith("in-flight") for sid in results_by_signal(admin, keys)),
            15,
            "the engine to start executing the in-flight batch",
        )

        errors_before = errors(svc, "redis")
        internal_before = errors(svc, "internal")
        admin.config_set("replica-read-only", "yes")
        admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        try:
            # The fault is real: writes are refused with READONLY (which redis-py raises as
            # ReadOnlyError, the code stripped from the message).
            with pytest.raises(ReadOnlyError):
                admin.set("tg:probe", "1")
            wait_until(
                lambda: errors(svc, "redis") > errors_before,
                10,
                "the engine to count the READONLY refusals as Redis errors",
            )
            hold_until = time.monotonic() + READONLY_HOLD_SECONDS
            while time.monotonic() < hold_until:
                assert svc.problem() is None, f"while Redis refused writes: {svc.problem()}"
                time.sleep(0.05)
            errors_during = errors(svc, "redis")
            assert errors_during > errors_before + 1, (
                f"the engine stopped retrying: {errors_during - errors_before} Redis errors"
                f" counted in {READONLY_HOLD_SECONDS}s of READONLY"
            )
            assert svc.engine.stats.redis_errors > 0
            # A refusal is the server's state, not the entry's: not an internal error, and no
            # step towards dead-lettering the entry that was being handled as poison.
            assert errors(svc, "internal") == internal_before
        finally:
            admin.execute_command("REPLICAOF", "NO", "ONE")

        after = publish(producer, "after", 10)
        everything = warmup + in_flight + after
        wait_until(
            lambda: set(everything) <= set(results_by_signal(admin, keys)),
            20,
            "every signal (before, during and after the READONLY spell) to be executed",
        )
        wait_until(
            lambda: int(admin.xpending(keys.signals, "engine")["pending"]) == 0,
            10,
            "every signal entry to be acknowledged",
        )
        wait_until(
            lambda: persister.persisted >= len(everything),
            20,
            f"the persister to store all {len(everything)} results after READONLY",
        )
        assert svc.problem() is None, f"after Redis accepted writes again: {svc.problem()}"
        twice = {sid: n for sid, n in book.attempts().items() if n > 1}
        assert twice == {}, f"orders sent more than once across the READONLY spell: {twice}"
        assert set(book.fills()) == set(everything)
        dead = admin.xrange(keys.signals_dead)
        assert dead == [], f"signals dead-lettered across the READONLY spell: {dead}"
