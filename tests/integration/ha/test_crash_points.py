"""The leader dies at the two dangerous points of a signal, then the successor reconciles:

- after its intent is committed and before the order is sent: the successor finds the intent,
  asks the broker (nothing there) and sends the order once;
- after the broker filled the order and before the result is recorded: the successor finds the
  intent, asks the broker (filled) and records that fill without sending anything.

Either way the broker gets exactly one order for the signal. And when the successor only gets
to the signal after its TTL, an order the broker already filled is still recorded, not
dead-lettered as "expired" as if it had never run. The crash is deterministic: the tests' crash
hook (``TRADEGUARD_CRASH_AT``, see tests/integration/engine_crash_hook.py) makes r1 exit with
code 137 at that point for the signal ``crash-1``. About mechanics, so the timing is lowered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tradeguard.bus.results import RESULT_FIELD
from tradeguard.process import wait_until

from .harness import FAST, KEYS, Cluster, Publisher, jepsen_check

MARGIN = 1.0
SIGNAL_TTL = 30.0  # the settings' default signal_ttl_seconds


@pytest.mark.parametrize("point", ["after_intent", "after_fill"])
def test_a_leader_killed_mid_signal_leaves_exactly_one_broker_order(
    point: str,
    ledger_url: str,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    cluster = make_cluster(
        ledger_url, timing=FAST, env={"r1": {"TRADEGUARD_CRASH_AT": f"{point}:crash-"}}
    )
    victim = cluster["r1"].start()
    cluster.wait_leader(10, among=[victim])  # the replica with the hook leads first
    cluster.start("r2", "r3")
    epoch = cluster.epoch()
    publisher = make_publisher(rate=10).start()
    publisher.wait_executed(cluster, 10, 15)

    assert publisher.publish("crash-1") == "crash-1"
    wait_until(lambda: not victim.running, 10, "the leader to crash at the hook")
    assert victim.proc.returncode == 137
    action = cluster.ledger.actions()["crash-1"]
    assert action[0] == "intent"  # committed, never completed
    if point == "after_intent":
        assert "crash-1" not in cluster.attempts()
    else:
        assert len(cluster.attempts()["crash-1"]) == 1 and "crash-1" in cluster.fills()
    assert "crash-1" not in cluster.results()

    others = [r for r in cluster if r is not victim]
    successor = cluster.wait_leader(FAST.failover_bound + MARGIN, among=others)
    wait_until(lambda: "crash-1" in cluster.done(), 10, "the successor to settle crash-1")
    assert cluster.epoch() == epoch + 1

    assert len(cluster.attempts()["crash-1"]) == 1  # exactly one broker order
    state, status, action_epoch = cluster.ledger.actions()["crash-1"]
    assert (state, status, action_epoch) == ("done", "filled", epoch + 1)
    assert cluster.results()["crash-1"] == 1
    # after_fill: the successor found the fill at the broker and recorded it as reconciled.
    reconciled = successor.metric("tradeguard_broker_orders_reconciled_total", status="matched")
    assert reconciled == (1 if point == "after_fill" else 0)
    [result] = [
        json.loads(f[RESULT_FIELD])
        for _id, f in cluster.redis_client.xrange(KEYS.results)
        if json.loads(f[RESULT_FIELD])["signal_id"] == "crash-1"
    ]
    assert result["engine"] == successor.id
    assert (result["detail"] == "reconciled") == (point == "after_fill")

    report = jepsen_check(cluster, publisher)
    print(report.summary())
    report.assert_clean()
    assert report.resent == set()  # nothing crashed with an order in flight


def test_a_fill_found_after_the_signal_expired_is_recorded_not_dropped(
    tmp_path: Path,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    # The engine's logic, not the ledger's: SQLite only.
    cluster = make_cluster(
        f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        size=2,
        timing=FAST,
        env={"r1": {"TRADEGUARD_CRASH_AT": "after_fill:crash-"}},
    )
    victim = cluster["r1"].start()
    cluster.wait_leader(10, among=[victim])
    successor = cluster["r2"].start()
    publisher = make_publisher(rate=10).start()
    publisher.wait_executed(cluster, 5, 15)

    # Fresh enough for the victim (28.5 s old, TTL 30 s); the successor cannot get to it
    # before the victim's lease runs out (>= TTL - renew interval = 1.75 s): expired by then.
    old = time.time() - SIGNAL_TTL + 1.5
    assert publisher.publish("crash-old", created_at=old) == "crash-old"
    wait_until(lambda: not victim.running, 10, "the leader to crash after the fill")
    assert "crash-old" in cluster.fills() and "crash-old" not in cluster.done()
    cluster.wait_leader(FAST.failover_bound + MARGIN, among=[successor])
    wait_until(lambda: "crash-old" in cluster.done(), 10, "the successor to record crash-old")

    assert time.time() - old > SIGNAL_TTL
    assert "crash-old" not in cluster.dead_letters()
    assert len(cluster.attempts()["crash-old"]) == 1
    assert cluster.ledger.actions()["crash-old"][:2] == ("done", "filled")
    report = jepsen_check(cluster, publisher)
    print(report.summary())
    report.assert_clean()


def test_a_leader_whose_engine_thread_dies_hands_over_and_says_so(
    tmp_path: Path,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    """A bug kills the leader's engine thread while its process (lease, HTTP) lives on: it must
    not keep a useless lease. It steps down at its next tick, /healthz says why, and the
    successor executes the signal the dead thread had begun, once."""
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"  # about the replica, not the dialect
    cluster = make_cluster(
        ledger_url,
        timing=FAST,
        env={"r1": {"TRADEGUARD_CRASH_AT": "thread_after_intent:crash-"}},
    )
    victim = cluster["r1"].start()
    cluster.wait_leader(10, among=[victim])
    cluster.start("r2", "r3")
    epoch = cluster.epoch()
    publisher = make_publisher(rate=10).start()
    publisher.wait_executed(cluster, 10, 15)

    assert publisher.publish("crash-1") == "crash-1"
    others = [r for r in cluster if r is not victim]
    # Within one renew interval of the death, not after the lease TTL: it hands over itself.
    cluster.wait_leader(FAST.renew_interval + MARGIN, among=others)
    assert victim.running and victim.role() == "follower"
    health = httpx.get(f"{victim.base}/healthz", timeout=2)
    assert health.status_code == 503 and "engine" in health.text
    status = victim.status()
    assert status is not None and "engine" in str(status["engine_problem"])
    wait_until(lambda: "crash-1" in cluster.done(), 10, "the successor to settle crash-1")
    assert cluster.epoch() == epoch + 1
    assert len(cluster.attempts()["crash-1"]) == 1
    report = jepsen_check(cluster, publisher)
    report.assert_clean()

    # With the healthy replicas gone the lease falls free, and the sick one still must not lead.
    for replica in others:
        replica.kill()
    wait_until(lambda: cluster.holder() is None, FAST.failover_bound + MARGIN, "the lease to lapse")
    time.sleep(4 * FAST.renew_interval)  # a negative: give it several ticks to (not) take it
    assert cluster.holder() is None and victim.role() == "follower"
