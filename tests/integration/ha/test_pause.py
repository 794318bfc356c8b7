"""SIGSTOP of the leader past its TTL, then SIGCONT: the stale leader's fenced writes are refused
by the ledger and it demotes on its first tick.

About mechanics (who may write), so the timing is lowered (TTL 2 s, renew 0.25 s, deadline 1 s).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import pytest

from tradeguard.process import wait_until

from .harness import FAST, Cluster, Publisher, jepsen_check

MARGIN = 0.5  # scheduling on two busy cores and the status poll
BROKER_LATENCY = 0.5  # long enough that the leader can be frozen with an order in flight


def sqlite_locked(path: str) -> bool:
    """Whether a SQLite file's write lock stays taken for 0.2 s (a frozen holder)."""
    conn = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def test_a_leader_frozen_past_its_ttl_is_fenced_off_and_demotes_on_its_first_tick(
    ledger_url: str,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    cluster = make_cluster(ledger_url, timing=FAST, broker_latency=BROKER_LATENCY).start()
    leader = cluster.wait_leader(15)
    epoch = cluster.epoch()
    publisher = make_publisher(rate=1.5).start()
    publisher.wait_executed(cluster, 2, 15)

    # Freeze the leader while one of its orders is in flight: it has committed the intent and
    # reached the broker, and will try to record the result when it wakes up.
    in_flight: list[str] = []

    def order_in_flight() -> bool:
        in_flight[:] = sorted(set(cluster.attempts()) - set(cluster.fills()))
        return bool(in_flight)

    sqlite_files = [str(cluster.book_path)]
    if ledger_url.startswith("sqlite:///"):
        sqlite_files.append(ledger_url.removeprefix("sqlite:///"))
    for _attempt in range(10):
        wait_until(order_in_flight, 10, "an order in flight at the leader", interval=0.01)
        leader.pause()
        frozen = in_flight[0]
        if frozen not in cluster.fills() and not any(map(sqlite_locked, sqlite_files)):
            break
        # Frozen too late (the order filled) or inside a transaction on a SQLite file (the
        # ledger, or the paper broker's book while it books the fill), which would freeze every
        # replica with it (one file, one lock): thaw at once, try the next. A real venue is not
        # stopped by a frozen client; the shared book file is the simulation's artefact.
        leader.resume()
    else:
        pytest.fail("could not freeze the leader with an order in flight")

    # The condition under test: stay frozen for longer than the TTL plus one renew interval.
    time.sleep(FAST.failover_bound + MARGIN)
    others = [r for r in cluster if r is not leader]
    successor = cluster.wait_leader(5, among=others)
    assert cluster.epoch() == epoch + 1
    wait_until(lambda: frozen in cluster.done(), 10, f"the successor to finish {frozen}")

    resumed_at = time.monotonic()
    leader.resume()
    wait_until(
        lambda: leader.role() == "follower",
        FAST.renew_interval + MARGIN,
        "the old leader to demote on its first tick",
        interval=0.01,
    )
    print(f"demoted {time.monotonic() - resumed_at:.3f}s after SIGCONT")
    wait_until(
        lambda: (leader.metric("tradeguard_ha_fenced_rejections_total") or 0) >= 1,
        5,
        "the ledger to refuse the stale leader's completion",
    )
    figures = leader.figures()
    assert figures is not None and figures["leadership_changes"] == 2  # promoted, demoted
    assert figures["is_leader"] is False
    state, status, action_epoch = cluster.ledger.actions()[frozen]
    assert (state, status, action_epoch) == ("done", "filled", epoch + 1)
    assert successor.leads() and cluster.epoch() == epoch + 1

    report = jepsen_check(cluster, publisher)
    print(report.summary())
    report.assert_clean()
    # The frozen order's outcome was unknown to the successor, so it re-sent it under the
    # same client order id; the broker executed it once.
    assert report.resent <= {frozen}
