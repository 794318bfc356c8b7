"""The trade history survives a failover: every replica's DuckDB file holds every result.

Each replica persists the result stream through a consumer group of its own
(``store:<replica id>``), leader or follower, so the history does not end up split between the
files of whoever happened to lead. Three replicas with their stores on, the leader SIGKILLed
under a steady load, a successor takes over, the killed replica comes back under the same id
(its group remembers where it was: it re-reads its own pending entries, then catches up), more
load, the final read; then the replicas stop and each file is read: one row per signal id, for
every signal with a result. About mechanics, so the timing is lowered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb

from tradeguard.bus.connection import as_text
from tradeguard.process import wait_until
from tradeguard.store.persister import store_group

from .harness import FAST, KEYS, Cluster, Publisher, Replica, jepsen_check

MARGIN = 1.0


def stored(path: Path) -> tuple[Counter[str], set[str]]:
    """(rows per signal id, engines that executed them) of a DuckDB file no process holds."""
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute("SELECT signal_id, engine FROM results").fetchall()
    return Counter(str(r[0]) for r in rows), {str(r[1]) for r in rows}


def store_caught_up(cluster: Cluster, replica: Replica) -> bool:
    """The replica's own group has read every result and acknowledged it (Redis' view and the
    replica's own ``/metrics``)."""
    client = cluster.redis_client
    last = as_text(client.xinfo_stream(KEYS.results)["last-generated-id"])
    groups = {as_text(g["name"]): g for g in client.xinfo_groups(KEYS.results)}
    group = groups.get(store_group(replica.id))
    return (
        group is not None
        and int(group["pending"]) == 0
        and as_text(group["last-delivered-id"]) == last
        and replica.metric("tradeguard_stream_pending", stream="results") == 0
        and replica.metric("tradeguard_stream_lag", stream="results") == 0
    )


def test_every_replica_keeps_the_whole_history_through_a_leader_kill_and_restart(
    tmp_path: Path,
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    cluster = make_cluster(f"sqlite:///{tmp_path / 'ledger.sqlite'}", timing=FAST, persist=True)
    cluster.start()
    leader = cluster.wait_leader(15)
    epoch = cluster.epoch()
    publisher = make_publisher(rate=20).start()
    publisher.wait_executed(cluster, 30, 20)

    leader.kill()  # SIGKILL: whatever its store held pending stays pending in its group
    others = [r for r in cluster if r is not leader]
    successor = cluster.wait_leader(FAST.failover_bound + MARGIN + 5, among=others)
    assert cluster.epoch() == epoch + 1
    publisher.wait_executed(cluster, len(publisher.accepted) + 30, 20)

    leader.start()  # back under the same id, as a follower: it catches up on what it missed
    publisher.wait_executed(cluster, len(publisher.accepted) + 30, 20)

    report = jepsen_check(cluster, publisher)  # stops publishing, waits until caught up
    print(report.summary())
    report.assert_clean()
    results = cluster.results()
    done = cluster.done()
    assert done <= set(results)
    groups = {as_text(g["name"]) for g in cluster.redis_client.xinfo_groups(KEYS.results)}
    assert groups == {store_group(r.id) for r in cluster}  # one group per replica, no other
    for replica in cluster:
        wait_until(
            lambda r=replica: store_caught_up(cluster, r),
            30,
            f"{replica.id}'s store to read and acknowledge every result",
            interval=0.1,
        )

    started = time.monotonic()
    for replica in cluster:  # DuckDB allows one process per file: read it once they are gone
        replica.stop()
    assert not any(r.running for r in cluster), f"stopping took {time.monotonic() - started}"

    for replica in cluster:
        assert replica.duckdb_path is not None and replica.duckdb_path.exists(), replica.id
        rows, engines = stored(replica.duckdb_path)
        missing = (set(results) | done) - set(rows)
        assert not missing, f"{replica.id} lacks {len(missing)}: {sorted(missing)[:10]}"
        assert set(rows) <= set(results), f"{replica.id} holds results never emitted"
        assert max(rows.values()) == 1, f"{replica.id} stored a signal twice"
        # The history spans both terms: what the killed leader and its successor executed.
        assert {leader.id, successor.id} <= engines, (replica.id, engines)
