"""At most once against a broker that forgives nothing, across real replica processes.

Every replica's paper broker is strict (the default): a resent order is a second fill. So a
successor that resends an order its predecessor already has in flight, or a stale leader that
sends after its term, shows as two fills for one signal in the shared book. The scenarios are
the ones a review of the engine found: SIGTERM while an order is in flight at a slow broker, a
broker reconnect that blocks past the lease, a poison entry with every replica running, and a
Redis that answers READONLY. About mechanics, so the timing is lowered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tradeguard.engine.control import reset_broker_knobs, set_broker_knobs
from tradeguard.process import free_port, wait_until

from .harness import FAST, KEYS, Cluster, Publisher, jepsen_check

MARGIN = 1.0


def fill_count(cluster: Cluster, signal_id: str) -> int:
    return Counter(f.client_order_id for f in cluster.book_fills())[signal_id]


@pytest.mark.parametrize("latency", [0.6, 1.6], ids=["drained", "drain-timed-out"])
def test_sigterm_of_the_leader_with_an_order_in_flight_at_a_slow_broker(
    latency: float,
    tmp_path: Path,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    """The leader stops taking work and waits for the order in flight before it releases the
    lease (drained: the successor finds it done). When the broker is slower than the drain
    allows (the renew deadline), the successor waits out the broker's in-flight time before
    it looks the order up: it finds the fill and sends nothing."""
    cluster = make_cluster(
        f"sqlite:///{tmp_path / 'ledger.sqlite'}", size=2, timing=FAST, broker_latency=latency
    )
    leader = cluster["r1"].start()
    cluster.wait_leader(10, among=[leader])
    successor = cluster["r2"].start()
    publisher = make_publisher(rate=0.5)
    assert publisher.publish("slow-1") == "slow-1"
    wait_until(lambda: "slow-1" in cluster.attempts(), 10, "the order to reach the broker")
    leader.stop(timeout=15)  # SIGTERM with the order in flight
    assert leader.proc.returncode == 0
    cluster.wait_leader(FAST.failover_bound + MARGIN, among=[successor])
    wait_until(lambda: "slow-1" in cluster.done(), 15, "slow-1 settled")
    assert fill_count(cluster, "slow-1") == 1
    assert len(cluster.attempts()["slow-1"]) == 1
    report = jepsen_check(cluster, publisher)
    report.assert_clean()


def test_a_leader_whose_broker_reconnect_blocks_past_its_lease_sends_nothing(
    pg_ledger_url: str,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    """r1's broker drops the line with the order out (no fill), so r1 must reconnect before it
    can send again, and the reconnect blocks for 6 s. Meanwhile r1 is cut from the database:
    its term ends, r2 takes over, waits out the in-flight time, finds no fill and sends. When
    r1's reconnect returns, its term is over: it must send nothing (a check made before the
    blocking reconnect would let it send a second, filled, order)."""
    cluster = make_cluster(pg_ledger_url, size=2, timing=FAST)
    r1 = cluster["r1"].start()
    cluster.wait_leader(10, among=[r1])
    r2 = cluster["r2"].start()
    publisher = make_publisher(rate=0.5)
    set_broker_knobs(cluster.redis_client, KEYS, disconnect_rate=1, reconnect_block=6)
    time.sleep(2.5)  # the engines poll the control hash once a second
    assert publisher.publish("block-1") == "block-1"
    wait_until(lambda: "block-1" in cluster.attempts(), 10, "r1's first order, cut off")
    first = cluster.attempts()["block-1"][0]
    # From now on orders go through: only r1's reconnect (after its in-flight wait) blocks.
    set_broker_knobs(cluster.redis_client, KEYS, disconnect_rate=0, reconnect_block=6)
    wait_until(lambda: time.time() > first + 2.0, 5, "r1 to be inside its blocking reconnect")
    assert r1.db_proxy is not None
    r1.db_proxy.set_mode("drop")
    cluster.wait_leader(FAST.failover_bound + 3 * MARGIN, among=[r2])
    reset_broker_knobs(cluster.redis_client, KEYS)
    wait_until(lambda: "block-1" in cluster.done(), 20, "r2 to settle block-1")
    wait_until(lambda: time.time() > first + 9.0, 15, "r1's reconnect to have returned")
    r1.heal()
    time.sleep(1.0)  # a negative: give r1 the time to (not) send after its reconnect
    assert fill_count(cluster, "block-1") == 1
    assert len(cluster.attempts()["block-1"]) == 2  # r1's cut-off order, r2's order
    assert cluster.ledger.actions()["block-1"][:2] == ("done", "filled")
    report = jepsen_check(cluster, publisher)
    report.assert_clean()


def test_a_poison_entry_does_not_stop_trading_with_both_replicas_running(
    tmp_path: Path,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    """An entry whose handling raises (on every replica) stays with the leader: it is retried,
    dead-lettered as poison after 3 deliveries, and trading never stops; no replica's engine
    thread dies and leadership does not move."""
    hook = {"TRADEGUARD_CRASH_AT": "poison:poison-"}
    cluster = make_cluster(
        f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        size=2,
        timing=FAST,
        env={"r1": hook, "r2": hook},
    ).start()
    leader = cluster.wait_leader(15)
    epoch = cluster.epoch()
    publisher = make_publisher(rate=10).start()
    publisher.wait_executed(cluster, 5, 15)

    assert publisher.publish("poison-1") == "poison-1"
    after = publisher.publish("after-poison")
    assert after is not None
    # Trading goes on within one lease TTL, poison or not.
    wait_until(lambda: after in cluster.fills(), FAST.ttl, "the next signal executed")
    wait_until(lambda: "poison-1" in cluster.dead_letters(), 15, "the poison entry dead-lettered")
    assert cluster.dead_letters()["poison-1"] == "poison"
    [detail] = [
        f[b"detail"].decode()
        for _id, f in cluster.redis_client.xrange(KEYS.signals_dead)
        if f[b"signal_id"] == b"poison-1"
    ]
    assert "RuntimeError" in detail and "3 deliveries" in detail
    assert cluster.epoch() == epoch and leader.leads()
    for replica in cluster:
        status = replica.status()
        assert status is not None and status["engine_problem"] is None, replica.id
    assert "poison-1" not in cluster.attempts()
    publisher.accepted.remove("poison-1")  # promised nothing: it was dead-lettered
    report = jepsen_check(cluster, publisher)
    report.assert_clean()


def test_redis_answering_readonly_pauses_nothing_for_good(
    tmp_path: Path,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    """Redis turns into a replica (as after a Sentinel failover, before clients follow): every
    write answers READONLY. The lease, the engine and the control poller back off; none of
    their threads ends, and trading resumes once Redis takes writes again."""
    cluster = make_cluster(f"sqlite:///{tmp_path / 'ledger.sqlite'}", size=2, timing=FAST)
    cluster.start()
    leader = cluster.wait_leader(15)
    publisher = make_publisher(rate=10).start()
    publisher.wait_executed(cluster, 10, 15)
    publisher.pause()
    admin = cluster.redis_client
    admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
    try:
        wait_until(
            lambda: (leader.metric("tradeguard_errors_total", reason="redis") or 0) > 0,
            10,
            "the leader's engine to meet READONLY",
        )
        time.sleep(FAST.ttl)  # hold the fault past a lease TTL
    finally:
        admin.execute_command("REPLICAOF", "NO", "ONE")
    publisher.resume()
    publisher.wait_executed(cluster, len(publisher.accepted) + 10, 20)
    for replica in cluster:
        status = replica.status()
        assert status is not None and status["engine_problem"] is None, replica.id
    report = jepsen_check(cluster, publisher)
    report.assert_clean()


def test_a_new_leader_sweeps_open_intents_whose_stream_entry_is_gone(
    tmp_path: Path,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    """The leader dies between the fill and its record, and the stream entry is lost with it
    (a Redis that lost data). Nothing is pending any more, but the ledger still holds the open
    intent with its signal: the successor sweeps it, finds the fill and records it."""
    cluster = make_cluster(
        f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        size=2,
        timing=FAST,
        env={"r1": {"TRADEGUARD_CRASH_AT": "after_fill:sweep-"}},
    )
    victim = cluster["r1"].start()
    cluster.wait_leader(10, among=[victim])
    successor = cluster["r2"].start()
    publisher = make_publisher(rate=10).start()
    publisher.wait_executed(cluster, 5, 15)
    publisher.pause()
    assert publisher.publish("sweep-1") == "sweep-1"
    wait_until(lambda: not victim.running, 10, "the leader to crash after the fill")
    admin = cluster.redis_client
    [entry_id] = [
        eid
        for eid, fields in admin.xrange(KEYS.signals)
        if b'"sweep-1"' in fields.get(b"signal", b"")
    ]
    admin.xack(KEYS.signals, "engine", entry_id)
    admin.xdel(KEYS.signals, entry_id)
    assert cluster.ledger.actions()["sweep-1"][0] == "intent"
    cluster.wait_leader(FAST.failover_bound + MARGIN, among=[successor])
    wait_until(lambda: "sweep-1" in cluster.done(), 10, "the successor to sweep sweep-1")
    assert cluster.ledger.actions()["sweep-1"][:2] == ("done", "filled")
    # The result follows the fenced completion.
    wait_until(lambda: cluster.results()["sweep-1"] == 1, 5, "the swept result written")
    assert fill_count(cluster, "sweep-1") == 1
    publisher.resume()
    report = jepsen_check(cluster, publisher)
    report.assert_clean()
