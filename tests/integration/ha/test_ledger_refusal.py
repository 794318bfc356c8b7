"""A ledger that refuses the fenced statements (a schema this version does not expect, a grant
missing) stops execution like an outage: nothing runs unrecorded, nothing is dead-lettered for a
fault that is not the signal's, and everything runs once the ledger is fixed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tradeguard.process import wait_until

from .harness import FAST, Cluster, Publisher, jepsen_check


def test_a_ledger_refusing_statements_holds_signals_until_it_is_fixed(
    tmp_path: Path,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    # Entries come back quickly: three deliveries (the poison threshold) within a second or two.
    quick = {f"r{i}": {"TRADEGUARD_RECLAIM_IDLE_SECONDS": "0.5"} for i in (1, 2, 3)}
    cluster = make_cluster(
        f"sqlite:///{tmp_path / 'ledger.sqlite'}", timing=FAST, env=quick
    ).start()
    cluster.wait_leader(15)
    publisher = make_publisher(rate=10).start()
    publisher.wait_executed(cluster, 5, 15)

    cluster.ledger.execute_raw("ALTER TABLE actions RENAME TO actions_elsewhere")
    broken_at = len(publisher.accepted)
    wait_until(lambda: len(publisher.accepted) >= broken_at + 20, 15, "20 signals while it refuses")
    # Long enough for an entry treated as failing on its own account to be dead-lettered.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not cluster.dead_letters():
        time.sleep(0.2)
    executed_meanwhile = set(publisher.accepted[broken_at + 5 :]) & set(cluster.fills())
    assert executed_meanwhile == set(), "signals executed while the ledger could not record them"
    assert cluster.dead_letters() == {}, "signals dead-lettered for the ledger's fault"

    cluster.ledger.execute_raw("ALTER TABLE actions_elsewhere RENAME TO actions")
    report = jepsen_check(cluster, publisher)
    print(report.summary())
    report.assert_clean()
