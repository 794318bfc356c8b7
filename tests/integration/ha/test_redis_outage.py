"""Redis down for everyone: DB-only mode, no leadership change. Redis back *empty* (the lease key
and the streams gone): the ledger's leader counts a split-brain, takes its key back, and the
epoch never moved.

About mechanics, so the timing is lowered (TTL 2 s, renew 0.25 s, deadline 1 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tradeguard.process import wait_until
from tradeguard.process.services import RedisServer

from .harness import FAST, Cluster, Publisher, jepsen_check

MARGIN = 0.5


def test_redis_down_is_db_only_and_an_empty_restart_is_a_counted_split_brain(
    ledger_url: str,
    tmp_path: Path,
    ha_redis: RedisServer,
    make_redis: Callable[..., RedisServer],
    make_cluster: Callable[..., Cluster],
    make_publisher: Callable[..., Publisher],
) -> None:
    cluster = make_cluster(ledger_url, timing=FAST).start()
    leader = cluster.wait_leader(15)
    epoch = cluster.epoch()
    publisher = make_publisher(rate=10).start()
    publisher.wait_executed(cluster, 10, 15)
    # An empty restart loses whatever Redis holds: let the cluster finish what it was given,
    # and keep the results it wrote, so the final read can still see them.
    publisher.pause()
    publisher.wait_caught_up(cluster, 15)
    cluster.remember_results()

    def changes() -> dict[str, int]:
        out = {}
        for r in cluster:
            figures = r.figures()
            assert figures is not None, f"{r.id} does not answer"
            out[r.id] = int(figures["leadership_changes"])
        return out

    before = changes()
    ha_redis.kill()
    wait_until(
        lambda: all((st := r.status()) is not None and st["mode"] == "db_only" for r in cluster),
        3,
        "every replica to switch to DB-only mode",
    )
    # The condition under test: a whole lease period and more without Redis.
    time.sleep(FAST.failover_bound + MARGIN)
    assert leader.leads() and cluster.epoch() == epoch
    assert [r.id for r in cluster.leaders()] == [leader.id]
    assert changes() == before
    for r in cluster:
        figures = r.figures()
        assert figures is not None and figures["fallback_mode"] is True
        assert r.metric("tradeguard_ha_fallback_mode") == 1

    # Back, on the same port, with nothing in it.
    make_redis("redis-empty", port=ha_redis.port, durable=True)
    wait_until(
        lambda: (leader.metric("tradeguard_ha_split_brain_detected_total") or 0) >= 1,
        3,
        "the leader to count the vanished lease as split-brain",
    )
    wait_until(
        lambda: all((st := r.status()) is not None and st["mode"] == "normal" for r in cluster),
        3,
        "every replica back in normal mode",
    )
    raw = cluster.redis_client.get("tg:leader")
    assert raw is not None and raw.decode().startswith(f"{leader.id}|")
    assert leader.leads() and cluster.epoch() == epoch
    assert changes() == before

    publisher.resume()
    publisher.wait_executed(cluster, len(publisher.accepted) + 10, 20)
    report = jepsen_check(cluster, publisher)
    print(report.summary())
    report.assert_clean()
    assert cluster.epoch() == epoch
