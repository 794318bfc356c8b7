"""Corrupt position rows at start-up: every replica refuses to lead and reports the code; signals
wait (pending, not lost) until an operator repairs the rows and restarts a replica.

About mechanics, so the timing is lowered (TTL 2 s, renew 0.25 s, deadline 1 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tradeguard.ha.ledger import expected_risk_margin, open_ledger
from tradeguard.process import wait_until

from .harness import FAST, Cluster, Publisher, jepsen_check

MARGIN = 0.5
INSERT = (
    "INSERT INTO positions (account, symbol, volume, avg_price, leverage, risk, margin, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, NOW())"
)
GOOD = ("acct-9", "US500", 1.0, 100.0, 10.0, *expected_risk_margin(1.0, 100.0, 10.0))
CORRUPTIONS = {
    # a volume that is not a number (SQLite stores NaN as NULL; PostgreSQL keeps NaN)
    "DATA_CORRUPT": ("acct-9", "EURUSD", float("nan"), 1.1, 10.0, 0.0, 0.0),
    # numbers, but risk and margin do not match volume x price / leverage
    "VALIDATION_FAILED": ("acct-9", "GBPUSD", 2.0, 100.0, 10.0, 50.0, 999.0),
}


@pytest.mark.parametrize("code", sorted(CORRUPTIONS))
def test_corrupt_positions_keep_every_replica_from_leading_until_repaired(
    code: str,
    ledger_url: str,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    ledger = open_ledger(ledger_url)
    ledger.setup()
    ledger.execute_raw(INSERT, GOOD)
    bad = CORRUPTIONS[code]
    ledger.execute_raw(INSERT, bad)
    ledger.close()

    cluster = make_cluster(ledger_url, size=2, timing=FAST).start()
    for replica in cluster:
        st = replica.status()
        assert st is not None
        assert (st["recovery"], st["eligible"], st["role"]) == (code, False, "follower")
        assert bad[0] in st["recovery_detail"] and bad[1] in st["recovery_detail"]
        assert replica.metric("tradeguard_recovery_error", reason=code.lower()) == 1
        assert replica.metric("tradeguard_recovery_total", status="failure") == 1

    publisher = make_publisher(rate=10).start()
    # The condition under test: a whole lease period and more, and nobody leads.
    time.sleep(FAST.failover_bound + MARGIN)
    assert cluster.leaders() == [] and cluster.epoch() == 0
    assert cluster.fills() == {}
    assert len(publisher.accepted) > 0

    # The operator repairs the row and restarts one replica: it recovers and leads.
    cluster.ledger.execute_raw(
        "DELETE FROM positions WHERE account = ? AND symbol = ?", (bad[0], bad[1])
    )
    repaired = cluster["r1"]
    repaired.proc.restart()
    st = repaired.status()
    assert st is not None and (st["recovery"], st["eligible"]) == ("OK", True)
    assert st["positions_recovered"] == 1
    assert repaired.metric("tradeguard_recovery_error", reason=code.lower()) == 0
    cluster.wait_leader(FAST.failover_bound + MARGIN, among=[repaired])
    assert cluster.epoch() == 1
    still_refusing = cluster["r2"].status()
    assert still_refusing is not None and still_refusing["eligible"] is False

    publisher.wait_executed(cluster, len(publisher.accepted) + 10, 20)
    report = jepsen_check(cluster, publisher, opening={(GOOD[0], GOOD[1]): GOOD[2]})
    print(report.summary())
    report.assert_clean()
    wait_until(lambda: cluster.pending() == 0, 5, "the backlog acknowledged")
