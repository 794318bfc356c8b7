"""Failover with the shipped timing (TTL 5 s, renew every 1 s, renew deadline 3 s).

These two tests measure time against the defaults, so they never lower the timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .harness import DEFAULTS, Cluster, Publisher, jepsen_check

# On top of the bound: the successor's status poll (20 ms), one ledger commit, and scheduling
# on two cores shared by three replicas, Redis, the database and this test.
MARGIN = 1.0


def test_sigkill_of_the_leader_fails_over_within_ttl_plus_one_renew_interval(
    ledger_url: str,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    cluster = make_cluster(ledger_url, timing=DEFAULTS).start()
    leader = cluster.wait_leader(15)
    epoch = cluster.epoch()
    publisher = make_publisher(rate=20).start()
    publisher.wait_executed(cluster, 20, 15)
    others = [r for r in cluster if r is not leader]

    killed_at = time.monotonic()
    leader.kill()
    successor = cluster.wait_leader(DEFAULTS.failover_bound + MARGIN + 5, among=others)
    took = time.monotonic() - killed_at
    print(
        f"failover after SIGKILL: {took:.2f}s to {successor.id} "
        f"(bound TTL + renew interval = {DEFAULTS.failover_bound:.0f}s, margin {MARGIN}s)"
    )
    assert took <= DEFAULTS.failover_bound + MARGIN
    # Nobody took over while the dead leader's ledger lease could still be valid.
    assert took >= DEFAULTS.ttl - DEFAULTS.renew_interval - 0.5
    assert cluster.epoch() == epoch + 1
    status = successor.status()
    assert status is not None and status["epoch"] == epoch + 1

    publisher.wait_executed(cluster, len(publisher.accepted) + 20, 20)  # work goes on
    report = jepsen_check(cluster, publisher)
    print(report.summary())
    report.assert_clean()


def test_sigterm_of_the_leader_hands_over_within_one_renew_interval(
    ledger_url: str,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    cluster = make_cluster(ledger_url, timing=DEFAULTS).start()
    leader = cluster.wait_leader(15)
    epoch = cluster.epoch()
    publisher = make_publisher(rate=20).start()
    publisher.wait_executed(cluster, 20, 15)
    others = [r for r in cluster if r is not leader]

    asked_at = time.monotonic()
    leader.stop()  # SIGTERM: the leader releases its lease before it exits
    successor = cluster.wait_leader(DEFAULTS.renew_interval + MARGIN + 5, among=others)
    took = time.monotonic() - asked_at
    print(f"graceful switchover: {took:.2f}s to {successor.id}")
    assert leader.proc.returncode == 0
    assert took <= DEFAULTS.renew_interval + MARGIN
    assert cluster.epoch() == epoch + 1

    publisher.wait_executed(cluster, len(publisher.accepted) + 20, 20)
    report = jepsen_check(cluster, publisher)
    print(report.summary())
    report.assert_clean()
