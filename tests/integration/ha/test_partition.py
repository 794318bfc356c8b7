"""Network partitions of one replica, through its own proxies.

Cut from Redis only, the leader keeps leading in DB-only mode (the ledger decides, the lease is
only a failure detector). Cut from the database too, it stops taking work within the renew
deadline, a follower takes over when the ledger lease expires, and the epoch rises exactly once.
A SQLite ledger is a local file with no network path to cut: the database cuts run on
PostgreSQL only.

About mechanics, so the timing is lowered (TTL 2 s, renew 0.25 s, deadline 1 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from tcp_proxy import TcpProxy

from tradeguard.ha.ledger import PostgresLedger
from tradeguard.process import wait_until
from tradeguard.process.services import PostgresServer

from .harness import FAST, Cluster, Publisher, Replica, jepsen_check, via

MARGIN = 0.5  # scheduling on two busy cores, the status poll


def _mode(replica: Replica) -> str | None:
    st = replica.status()
    return None if st is None else str(st["mode"])


def cut_from_redis_and_check_it_keeps_leading(cluster: Cluster, leader: Replica) -> None:
    """Drop the leader's Redis path: DB-only mode, same leader, same epoch, for a whole TTL."""
    epoch = cluster.epoch()
    leader.redis_proxy.drop()
    wait_until(lambda: _mode(leader) == "db_only", 2, "the leader to switch to DB-only mode")
    figures = leader.figures()
    assert figures is not None and figures["fallback_mode"] is True
    assert leader.metric("tradeguard_ha_mode", state="db_only") == 1
    # The condition under test: a whole lease period without Redis changes nothing.
    time.sleep(FAST.failover_bound + MARGIN)
    assert leader.leads()
    assert cluster.epoch() == epoch and cluster.holder() == leader.id
    assert [r.id for r in cluster.leaders()] == [leader.id]
    figures = leader.figures()
    assert figures is not None and figures["leadership_changes"] == 1


def test_leader_cut_from_redis_keeps_the_lead_in_db_only_mode(
    ledger_url: str,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    cluster = make_cluster(ledger_url, timing=FAST).start()
    leader = cluster.wait_leader(15)
    epoch = cluster.epoch()
    publisher = make_publisher(rate=10).start()
    publisher.wait_executed(cluster, 10, 15)

    cut_from_redis_and_check_it_keeps_leading(cluster, leader)

    leader.redis_proxy.pass_through()
    wait_until(lambda: _mode(leader) == "normal", 3, "the leader back in normal mode")
    # Its Redis key expired meanwhile: back in touch, the ledger's leader takes it back.
    assert (leader.metric("tradeguard_ha_split_brain_detected_total") or 0) >= 1
    publisher.wait_executed(cluster, len(publisher.accepted) + 10, 20)
    assert cluster.epoch() == epoch and leader.leads()
    report = jepsen_check(cluster, publisher)
    print(report.summary())
    report.assert_clean()


@pytest.mark.parametrize("db_fault", ["drop", "blackhole"])
def test_leader_cut_from_redis_then_from_the_db_stops_within_the_deadline_and_epoch_rises_once(
    db_fault: str,
    pg_ledger_url: str,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    cluster = make_cluster(pg_ledger_url, timing=FAST).start()
    leader = cluster.wait_leader(15)
    epoch = cluster.epoch()
    publisher = make_publisher(rate=10).start()
    publisher.wait_executed(cluster, 10, 15)
    cut_from_redis_and_check_it_keeps_leading(cluster, leader)

    assert leader.db_proxy is not None
    cut_at = time.monotonic()
    leader.db_proxy.set_mode(db_fault)
    wait_until(
        lambda: (st := leader.status()) is not None and not st["may_execute"],
        FAST.renew_deadline + MARGIN,
        "the leader to stop taking work",
        interval=0.01,
    )
    stopped = time.monotonic() - cut_at
    others = [r for r in cluster if r is not leader]
    successor = cluster.wait_leader(FAST.failover_bound + 2 * MARGIN, among=others)
    took_over = time.monotonic() - cut_at
    print(f"{db_fault}: stopped after {stopped:.2f}s, {successor.id} led after {took_over:.2f}s")
    assert stopped <= FAST.renew_deadline + MARGIN
    assert took_over >= stopped  # never two replicas allowed to work at once
    assert cluster.epoch() == epoch + 1

    leader.heal()
    wait_until(lambda: leader.role() == "follower", 5, "the cut-off leader to demote")
    wait_until(
        lambda: (st := leader.status()) is not None and st["epoch"] == epoch + 1,
        3,
        "the old leader to see the new epoch",
    )
    time.sleep(FAST.ttl)  # the condition under test: no further change once healed
    assert cluster.epoch() == epoch + 1 and successor.leads()
    publisher.wait_executed(cluster, len(publisher.accepted) + 10, 20)
    report = jepsen_check(cluster, publisher)
    print(report.summary())
    report.assert_clean()


def test_a_writer_partitioned_inside_a_fenced_transaction_does_not_block_the_cluster(
    pg_ledger_url: str,
    postgres_server: PostgresServer,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    """A replica cut off between two statements of a fenced write leaves a session idle in a
    transaction that holds the leadership row's share lock. On a real network the server would
    notice only through its TCP keepalive (two hours by default); until it does, no renewal and
    no takeover can pass the lock. The ledger's sessions must not outlive their client's silence.
    """
    cluster = make_cluster(pg_ledger_url, timing=FAST).start()
    leader = cluster.wait_leader(15)
    publisher = make_publisher(rate=10).start()
    publisher.wait_executed(cluster, 10, 15)

    with TcpProxy(postgres_server.port, name="stale-writer") as path:
        stale = PostgresLedger(via(pg_ledger_url, path.port), timeout=1.0)  # a replica's options
        conn = stale._conn()
        conn.execute("SELECT epoch FROM leadership WHERE id = 1 FOR SHARE")  # as begin_action
        path.blackhole()  # ... and the network fails before the rest of the transaction
        cut_at = time.monotonic()
        # The condition under test: the partition lasts three lease periods.
        ok_until = cut_at + 3 * FAST.ttl
        lapses: list[float] = []
        lapse_started: float | None = None
        while time.monotonic() < ok_until:
            if cluster.leaders():
                if lapse_started is not None:
                    lapses.append(time.monotonic() - lapse_started)
                    lapse_started = None
            elif lapse_started is None:
                lapse_started = time.monotonic()
            time.sleep(0.05)
        if lapse_started is not None:
            lapses.append(time.monotonic() - lapse_started)
        print(f"leaderless spells during the partition: {[round(x, 2) for x in lapses]}")
        assert cluster.leaders(), "no leader while a partitioned session holds the lock"
        assert sum(lapses) < FAST.ttl
        closer = threading.Thread(target=stale.close, daemon=True)  # may block: do not wait
        closer.start()
    assert leader.running
    report = jepsen_check(cluster, publisher)
    print(report.summary())
    report.assert_clean()
