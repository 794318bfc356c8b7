"""RTSS against a real redis-server: publish, dedup, consume, dead-letter, reclaim, trim."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace

import pytest
from redis import Redis

from tradeguard.bus import DuplicateSignal, Keys, PublishError, Signal, SignalStream
from tradeguard.bus.connection import make_client
from tradeguard.bus.signals import SIGNAL_FIELD
from tradeguard.metrics.catalog import Metrics
from tradeguard.process.services import RedisServer


@pytest.fixture
def client(redis_server: RedisServer) -> Redis:
    return make_client(redis_server.url)


@pytest.fixture
def stream(client: Redis, metrics: Metrics) -> SignalStream:
    s = SignalStream(client, Keys(), metrics=metrics)
    s.ensure_group()
    return s


def sig(i: int = 1, **kw: object) -> Signal:
    return Signal(
        account="acct-1", symbol="EURUSD", action="buy", volume=1.0, signal_id=f"sig-{i}", **kw
    )  # type: ignore[arg-type]


def value(metrics: Metrics, name: str, **labels: str) -> float:
    v = metrics.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_publish_read_ack(stream: SignalStream, metrics: Metrics) -> None:
    stream.publish(sig(1))
    entries = stream.read("c1", block_ms=None)
    assert len(entries) == 1
    assert json.loads(entries[0].fields[SIGNAL_FIELD])["signal_id"] == "sig-1"
    assert stream.redis.xpending(stream.keys.signals, "engine")["pending"] == 1
    stream.ack(entries[0].entry_id)
    assert stream.redis.xpending(stream.keys.signals, "engine")["pending"] == 0
    assert value(metrics, "tradeguard_signals_published_total", action="buy") == 1
    assert (
        value(
            metrics,
            "tradeguard_redis_operation_duration_seconds_count",
            layer="signal_stream",
            op="xadd",
        )
        == 1
    )


def test_same_id_is_accepted_once(stream: SignalStream, metrics: Metrics) -> None:
    seven = sig(7)
    first = stream.publish(seven)
    # The same signal again (a retry after a lost reply) is the entry already made...
    assert stream.publish(seven) == first
    # ...another signal under that id is refused.
    with pytest.raises(DuplicateSignal):
        stream.publish(replace(seven, volume=2.0))
    assert stream.redis.xlen(stream.keys.signals) == 1
    assert value(metrics, "tradeguard_signal_publish_errors_total", reason="duplicate") == 1


def test_dead_letter_keeps_reason_payload_and_counts(
    stream: SignalStream, metrics: Metrics
) -> None:
    stream.publish_raw({SIGNAL_FIELD: b'{"signal_id": "x-1", "action": "hold"}'})
    [entry] = stream.read("c1", block_ms=None)
    stream.dead_letter(entry, "bad_action", "action hold is unknown")
    [(_, record)] = stream.redis.xrange(stream.keys.signals_dead)
    assert record[b"reason"] == b"bad_action"
    assert record[b"signal_id"] == b"x-1"
    assert b"hold" in record[b"payload"]
    assert stream.redis.xpending(stream.keys.signals, "engine")["pending"] == 0
    assert value(metrics, "tradeguard_signals_dropped_total", reason="bad_action") == 1


def test_reclaim_takes_entries_from_a_silent_consumer(stream: SignalStream) -> None:
    stream.publish(sig(1))
    stream.read("dead-consumer", block_ms=None)  # delivered, never acknowledged
    assert stream.reclaim("survivor", min_idle_ms=60_000) == []  # not idle long enough yet
    time.sleep(0.05)  # the idle threshold below is 20 ms: this is the condition under test
    [entry] = stream.reclaim("survivor", min_idle_ms=20)
    consumers = {
        c["name"]: c["pending"] for c in stream.redis.xinfo_consumers(stream.keys.signals, "engine")
    }
    assert consumers[b"survivor"] == 1
    stream.ack(entry.entry_id)


def test_publish_to_a_dead_redis_raises_and_counts(
    redis_server: RedisServer, metrics: Metrics
) -> None:
    stream = SignalStream(
        make_client(redis_server.url, socket_timeout=0.3), Keys(), metrics=metrics
    )
    redis_server.stop()
    with pytest.raises(PublishError):
        stream.publish(sig(1))
    assert value(metrics, "tradeguard_signal_publish_errors_total", reason="redis_error") == 1
    assert value(metrics, "tradeguard_redis_connection_errors_total", layer="signal_stream") == 1


def test_an_unreadable_reply_is_an_unknown_outcome(metrics: Metrics) -> None:
    """A reply torn mid-way (a protocol error) may follow a command Redis ran: not a refusal."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def garble() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"?not a reply\r\n")

    threading.Thread(target=garble, daemon=True).start()
    stream = SignalStream(
        make_client(f"redis://127.0.0.1:{port}/0", socket_timeout=2), Keys(), metrics=metrics
    )
    try:
        with pytest.raises(PublishError) as caught:
            stream.publish(sig(1))
    finally:
        server.close()
    assert caught.value.maybe_queued
    assert value(metrics, "tradeguard_signal_publish_errors_total", reason="redis_error") == 1


def test_trim_never_removes_unacknowledged_entries(stream: SignalStream) -> None:
    for i in range(300):
        stream.publish(sig(i))
    entries = stream.read("c1", count=300, block_ms=None)
    stream.ack(*[e.entry_id for e in entries[100:]])  # the first 100 stay pending
    stream.trim_acknowledged(keep_seconds=0)
    remaining = {eid for eid, _ in stream.redis.xrange(stream.keys.signals)}
    assert {e.entry_id for e in entries[:100]} <= remaining
