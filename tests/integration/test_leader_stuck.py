"""A leader whose engine loop hangs while its coordinator lives on, and the demotion that cures it.

Two real HA replicas (``CoordinatorService``: engine + coordinator, one SQLite ledger, one real
redis-server). The runtime control stalls the leader's engine loop (the chaos knob of a hung
broker call): its progress gauge stops, its lease is still renewed and nothing fails over by
itself, signals wait. ``demote_leader``, issued on the command stream as the responder issues
it, makes it step down; the hold-off keeps it from winning the lease straight back, so the
other replica leads and executes what waited. Then the knob itself: one engine or all, always
ending, and a stalled loop holding nothing a drain or a broker reconnect waits on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tradeguard.bus import Keys, Signal, SignalStream
from tradeguard.bus.commands import ANY_ENGINE, Command, CommandAnswer, CommandBus
from tradeguard.bus.connection import make_client
from tradeguard.config import Layer, Settings
from tradeguard.engine.control import (
    ControlPoller,
    clear_engine_stall,
    intake_key,
    set_engine_stall,
)
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.ha.coordinator import HAConfig
from tradeguard.process import wait_until
from tradeguard.replica import CoordinatorService

KEYS = Keys()
HA = {"ttl": 3.0, "renew_deadline": 2.0}  # hold-off: 2 TTLs = 6 s
# r2 ticks three times slower than r1: without the hold-off, r1 would usually see the lease it
# released free first and take it straight back.
RENEW_INTERVAL = {"r1": 0.2, "r2": 0.6}
HEARTBEAT = "tradeguard_engine_loop_heartbeat_timestamp_seconds"


@pytest.fixture
def replicas(settings: Settings, tmp_path: Path) -> Iterator[dict[str, CoordinatorService]]:
    """r1 (started first, so it leads) and r2, each with its command listener joined."""
    ledger = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    started: dict[str, CoordinatorService] = {}
    try:
        for rid in ("r1", "r2"):
            own = settings.model_copy(update={"duckdb_path": tmp_path / f"{rid}.duckdb"})
            svc = CoordinatorService(
                own,
                HAConfig(rid, renew_interval=RENEW_INTERVAL[rid], **HA),
                ledger,
                EngineOptions(metrics_port=0, persist=False),
            ).start()
            started[rid] = svc
            assert svc.engine.commands.joined.wait(10), f"{rid} did not join the command stream"
            if rid == "r1":
                wait_until(svc.coordinator.may_execute, 15, "r1 to lead")
        yield started
    finally:
        stoppers = [threading.Thread(target=r.stop) for r in started.values()]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(30)


def heartbeat(svc: CoordinatorService) -> float:
    value = svc.metrics.registry.get_sample_value(HEARTBEAT)
    assert value is not None
    return value


def processed(svc: CoordinatorService) -> int:
    return svc.engine.engine.stats.processed


def publish(settings: Settings, *ids: str) -> None:
    client = make_client(settings.redis_url)
    try:
        producer = SignalStream(client, KEYS)
        for sid in ids:
            producer.publish(
                Signal(account="acct", symbol="EURUSD", action="buy", volume=1, signal_id=sid)
            )
    finally:
        client.close()


def demote(bus: CommandBus) -> dict[str, CommandAnswer]:
    """demote_leader for any engine, as the responder sends it (Scope.LEADER): every replica's
    final answer, by replica."""
    command = Command("demote_leader", ANY_ENGINE)
    bus.issue(command)

    def final() -> dict[str, CommandAnswer]:
        return {a.replica: a for a in bus.answers(command.command_id) if a.answer != "acknowledged"}

    wait_until(lambda: len(final()) == 2, 20, "both replicas to answer demote_leader")
    return final()


def test_a_stuck_leader_keeps_its_lease_until_demoted_then_the_other_replica_trades(
    replicas: dict[str, CoordinatorService], settings: Settings
) -> None:
    r1, r2 = replicas["r1"], replicas["r2"]
    control = make_client(settings.redis_url)
    bus = CommandBus(control, KEYS)
    try:
        # Both loops make progress; the leader trades.
        publish(settings, "before-1")
        wait_until(lambda: processed(r1) == 1, 15, "r1 to execute a signal")
        assert r1.coordinator.is_leader and not r2.coordinator.is_leader
        # One registry per replica: the heartbeat and the leader gauge share a /metrics page,
        # hence a scrape target (job, instance), which is what LeaderEngineStuck joins on.
        page = httpx.get(r1.metrics_url, timeout=5).text
        assert f"\n{HEARTBEAT} " in page and "\ntradeguard_ha_is_leader 1.0" in page

        set_engine_stall(control, KEYS, time.time() + 120, replica="r1")
        wait_until(lambda: r1.engine.engine.stalled, 5, "r1's engine loop to stall")
        stalled_at = heartbeat(r1)
        follower_beat = heartbeat(r2)
        renewed = r1.coordinator.last_db_ok
        publish(settings, "during-1", "during-2", "during-3")

        # Longer than the lease TTL: the stuck leader keeps renewing, nobody takes over,
        # nothing is executed, and only the follower's loop moves on.
        time.sleep(HA["ttl"] + 1.0)
        assert heartbeat(r1) == stalled_at
        assert heartbeat(r2) > follower_beat
        assert r1.coordinator.is_leader and r1.coordinator.may_execute()
        assert r1.coordinator.last_db_ok > renewed  # the lease is renewed all along
        assert not r2.coordinator.is_leader
        assert processed(r1) == 1 and processed(r2) == 0

        # demote_leader: done by the leader (the drain does not wait on the stalled loop, which
        # holds no signal), not applicable on the follower.
        epoch = r1.coordinator.epoch
        started = time.monotonic()
        answers = demote(bus)
        assert answers["r1"].answer == "done", answers
        assert answers["r2"].answer == "not_applicable", answers
        assert time.monotonic() - started < 10
        assert not r1.coordinator.is_leader

        # The other replica takes the lease within the hold-off; the stuck one, which ticks
        # more often and usually sees it free first, never wins it back meanwhile.
        hold_off = r1.coordinator.config.hold_off_seconds
        deadline = time.monotonic() + hold_off
        while not r2.coordinator.is_leader:
            assert not r1.coordinator.is_leader, "r1 took the lease back during its hold-off"
            assert time.monotonic() < deadline, f"r2 did not take over within {hold_off}s"
            time.sleep(0.02)
        assert r2.coordinator.epoch == epoch + 1
        # It executes what waited during the stall (and what comes next).
        publish(settings, "after-1")
        wait_until(lambda: processed(r2) == 4, 15, "r2 to execute the 4 waiting signals")
        assert processed(r1) == 1
        # Seeing r2 lead ended r1's hold-off: should r2 fail, r1 is an ordinary candidate.
        wait_until(lambda: r1.coordinator.hold_until == float("-inf"), 5, "r1's hold-off to end")
        assert heartbeat(r1) == stalled_at and not r1.coordinator.is_leader
    finally:
        clear_engine_stall(control, KEYS, replica="r1")
        control.close()


def test_the_stall_knob_targets_one_engine_or_all_and_always_ends(settings: Settings) -> None:
    client = make_client(settings.redis_url)
    poller = ControlPoller(client, KEYS, None)
    try:
        now = time.time()
        set_engine_stall(client, KEYS, now + 30, replica="r1")
        poller.poll()
        assert 29 < poller.stall_remaining("r1") <= 30
        assert poller.stall_remaining("r2") == 0.0
        set_engine_stall(client, KEYS, now + 10)  # every engine; r1's longer stall stands
        poller.poll()
        assert 9 < poller.stall_remaining("r2") <= 10 and poller.stall_remaining("r1") > 29
        clear_engine_stall(client, KEYS)
        poller.poll()
        assert poller.stall_remaining("r2") == 0.0 and poller.stall_remaining("r1") > 29
        clear_engine_stall(client, KEYS, replica="r1")
        set_engine_stall(client, KEYS, now - 1, replica="r2")  # over already
        poller.poll()
        assert poller.stall_remaining("r1") == poller.stall_remaining("r2") == 0.0
        # A value that could stall forever is refused, on both ends.
        with pytest.raises(ValueError, match="must end"):
            set_engine_stall(client, KEYS, float("inf"))
        client.hset(intake_key(KEYS), mapping={"stall_until": "inf", "stall_until:r1": "soon"})
        poller.poll()
        assert poller.stall_remaining("r1") == 0.0
        assert not poller.paused  # the intake gate reads the same hash, undisturbed
    finally:
        client.delete(intake_key(KEYS))
        client.close()


def test_a_stalled_loop_stops_its_heartbeat_and_holds_nothing_a_drain_waits_on(
    settings: Settings,
) -> None:
    with EngineService(settings, EngineOptions(consumer="solo", metrics_port=0)) as svc:
        engine = svc.engine

        def beat() -> float:
            value = svc.registry.get_sample_value(HEARTBEAT)
            assert value is not None
            return value

        wait_until(lambda: beat() > 0, 10, "the loop's first heartbeat")
        set_engine_stall(svc.clients[Layer.SIGNAL_STREAM], KEYS, time.time() + 60, "solo")
        wait_until(lambda: engine.stalled, 5, "the loop to stall")
        stalled_at = beat()
        assert engine.wait_idle(0.0)  # a graceful step-down's drain goes through at once
        assert engine.reconnect_broker(0.0)  # and so does a broker reconnect
        time.sleep(0.5)
        assert beat() == stalled_at
        clear_engine_stall(svc.clients[Layer.SIGNAL_STREAM], KEYS, "solo")
        wait_until(lambda: beat() > stalled_at, 5, "the loop to move again")
        assert not engine.stalled
