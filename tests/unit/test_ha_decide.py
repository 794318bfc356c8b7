"""The HA state machine: ``decide`` on hand-made snapshots, and ``Coordinator.tick()`` against an
in-memory ledger and Redis lease on a clock the test moves. No processes, no sleeps."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from tradeguard.errors import ConfigError
from tradeguard.ha.coordinator import Coordinator
from tradeguard.ha.decide import (
    Action,
    Decision,
    HAConfig,
    KeyAction,
    Mode,
    Role,
    Snapshot,
    decide,
    hold_until_after,
    renews,
)
from tradeguard.ha.lease import LeaseUnavailable
from tradeguard.ha.ledger import LedgerUnavailable
from tradeguard.ha.records import Leadership
from tradeguard.metrics.catalog import Metrics

CFG = HAConfig("a", ttl=5.0, renew_interval=1.0, renew_deadline=3.0)
NOW = 1000.0


# ---- decide ----------------------------------------------------------------------------------
def row(
    holder: str | None, epoch: int = 4, left: float = 2.0, token: str | None = "t"
) -> Leadership:
    """A leadership row whose lease has ``left`` seconds to run on the database's clock."""
    return Leadership(epoch, holder, token, lease_until=50.0 + left, db_now=50.0)


def leader(**kw: object) -> Snapshot:
    """A leader whose last renewal was a second ago and whose renews both succeeded."""
    base: dict[str, object] = {
        "replica": "a",
        "role": Role.LEADER,
        "now": NOW,
        "last_db_ok": NOW - 1.0,
        "epoch": 4,
        "token": "t",
        "renewed": True,
        "redis_holder": "a",
        "redis_renewed": True,
    }
    return Snapshot(**(base | kw))  # type: ignore[arg-type]


def follower(**kw: object) -> Snapshot:
    """A follower that read a running lease held by b, and b's Redis key."""
    base: dict[str, object] = {
        "replica": "a",
        "role": Role.FOLLOWER,
        "now": NOW,
        "last_db_ok": NOW - 1.0,
        "epoch": 4,
        "token": "mine",
        "row": row("b", token="theirs"),
        "redis_holder": "b",
    }
    return Snapshot(**(base | kw))  # type: ignore[arg-type]


def test_leader_that_renewed_both_keeps_leading() -> None:
    d = decide(leader(), CFG)
    assert d == Decision(Action.LEAD, KeyAction.KEEP, Mode.NORMAL, split_brain=False)
    assert str(d) == "lead"


def test_follower_acquires_an_expired_lease_when_eligible_and_able() -> None:
    d = decide(follower(row=row("b", left=-0.1), redis_holder=None), CFG)
    assert d.action is Action.ACQUIRE and d.key is KeyAction.KEEP and d.mode is Mode.NORMAL
    # The lease ends exactly at the database's NOW(): expired.
    assert decide(follower(row=row("b", left=0.0)), CFG).action is Action.ACQUIRE
    # Acquiring claims the key anyway: one we hold is not dropped first.
    assert decide(follower(row=row(None, left=-1), redis_holder="a"), CFG).key is KeyAction.KEEP


def test_follower_follows_a_running_lease() -> None:
    d = decide(follower(), CFG)
    assert d == Decision(Action.FOLLOW, KeyAction.KEEP, Mode.NORMAL, split_brain=False)
    # Our own lease from before a demotion still running: we wait for it like anyone's.
    assert decide(follower(row=row("a", token="old")), CFG).action is Action.FOLLOW


@pytest.mark.parametrize(
    ("eligible", "able"), [(False, True), (True, False), (False, False)], ids=str
)
def test_no_leader_when_the_lease_expired_but_we_may_not_take_it(
    eligible: bool, able: bool
) -> None:
    s = follower(row=row("b", left=-1), redis_holder=None, eligible=eligible, able=able)
    assert decide(s, CFG) == Decision(Action.NO_LEADER, mode=Mode.NORMAL, split_brain=False)


@pytest.mark.parametrize("age", [3.0, 3.5, 60.0], ids=["at", "past", "long-frozen"])
def test_leader_demotes_once_the_renew_deadline_passed(age: float) -> None:
    # Past the deadline the tick only reads: whatever the row says, the term is over.
    s = leader(last_db_ok=NOW - age, renewed=None, row=row("a"), redis_renewed=None)
    d = decide(s, CFG)
    assert d.action is Action.DEMOTE_DEADLINE and d.key is KeyAction.KEEP
    assert not renews(Role.LEADER, True, NOW - age, NOW, CFG)
    # Also when the ledger cannot be reached at all (cut off).
    s = leader(last_db_ok=NOW - age, renewed=None, ledger_error="timeout")
    assert decide(s, CFG) == Decision(Action.DEMOTE_DEADLINE, mode=Mode.NO_DB, split_brain=False)


def test_just_before_the_deadline_a_leader_still_renews() -> None:
    assert renews(Role.LEADER, True, NOW - 2.999, NOW, CFG)
    assert not renews(Role.FOLLOWER, True, NOW - 0.5, NOW, CFG)
    assert not renews(Role.LEADER, False, NOW - 0.5, NOW, CFG)  # an unable leader only reads


def test_leader_demotes_when_the_ledger_says_the_lease_is_no_longer_ours() -> None:
    d = decide(leader(renewed=False, redis_renewed=None, redis_holder="b"), CFG)
    assert d.action is Action.DEMOTE_LOST and d.key is KeyAction.KEEP


def test_engine_problem_steps_down_while_the_lease_is_ours() -> None:
    # An unable leader reads instead of renewing: the row still names it.
    s = leader(able=False, renewed=None, row=row("a"), redis_renewed=None)
    assert decide(s, CFG).action is Action.STEP_DOWN_ENGINE
    # The ledger does not answer: release what we can, the lease expires on its own anyway.
    s = leader(able=False, renewed=None, ledger_error="down", redis_renewed=None)
    assert decide(s, CFG) == Decision(Action.STEP_DOWN_ENGINE, mode=Mode.NO_DB, split_brain=False)


@pytest.mark.parametrize(
    "theirs",
    [row("b", epoch=5, token="x"), row("a", token="other"), row("a", left=-0.5)],
    ids=["new-epoch", "other-token", "expired"],
)
def test_engine_problem_with_a_lease_no_longer_ours_releases_nothing(theirs: Leadership) -> None:
    s = leader(able=False, renewed=None, row=theirs, redis_renewed=None)
    assert decide(s, CFG).action is Action.DEMOTE_LOST


def test_redis_unavailable_is_db_only_and_keeps_the_role() -> None:
    d = decide(leader(redis_renewed=None, redis_holder=None, redis_error="refused"), CFG)
    assert d == Decision(Action.LEAD, KeyAction.KEEP, Mode.DB_ONLY, split_brain=None)
    assert str(d) == "lead [db_only]"
    d = decide(follower(redis_holder=None, redis_error="refused"), CFG)
    assert d == Decision(Action.FOLLOW, KeyAction.KEEP, Mode.DB_ONLY, split_brain=None)


def test_ledger_unavailable_leader_holds_until_the_deadline_nobody_acquires() -> None:
    d = decide(leader(renewed=None, ledger_error="timeout"), CFG)
    assert d == Decision(Action.NO_DB, KeyAction.KEEP, Mode.NO_DB, split_brain=False)
    assert "2.00s more" in d.why
    late = leader(renewed=None, ledger_error="timeout", last_db_ok=NOW - 3.0)
    assert decide(late, CFG).action is Action.DEMOTE_DEADLINE
    # A follower cannot see that the lease expired, so it never acquires.
    d = decide(follower(row=None, ledger_error="timeout", eligible=True), CFG)
    assert d == Decision(Action.NO_DB, KeyAction.KEEP, Mode.NO_DB, split_brain=False)
    both = decide(follower(row=None, ledger_error="x", redis_holder=None, redis_error="y"), CFG)
    assert both.mode is Mode.NO_DB


@pytest.mark.parametrize("holder", ["b", None], ids=["someone-else", "vanished"])
def test_split_brain_the_ledger_wins_and_we_take_the_key_back(holder: str | None) -> None:
    d = decide(leader(redis_renewed=False, redis_holder=holder), CFG)
    assert d == Decision(Action.LEAD, KeyAction.RECLAIM, Mode.NORMAL, split_brain=True)
    assert "split-brain" in str(d)
    # Also while the ledger is down: until the deadline the lease is still ours.
    d = decide(
        leader(renewed=None, ledger_error="x", redis_renewed=False, redis_holder=holder), CFG
    )
    assert (d.action, d.key, d.mode) == (Action.NO_DB, KeyAction.RECLAIM, Mode.NO_DB)


def test_follower_drops_a_key_it_holds_without_the_ledger() -> None:
    d = decide(follower(redis_holder="a"), CFG)
    assert d == Decision(Action.FOLLOW, KeyAction.DROP, Mode.NORMAL, split_brain=True)
    d = decide(follower(row=row("b", left=-1), redis_holder="a", eligible=False), CFG)
    assert (d.action, d.key) == (Action.NO_LEADER, KeyAction.DROP)
    d = decide(follower(row=None, ledger_error="x", redis_holder="a"), CFG)
    assert (d.action, d.key, d.split_brain) == (Action.NO_DB, KeyAction.DROP, False)


def test_follower_shows_a_mismatch_it_cannot_fix() -> None:
    assert decide(follower(redis_holder="c"), CFG).split_brain is True
    assert decide(follower(redis_holder=None), CFG).split_brain is False
    assert decide(follower(row=row("b", left=-1), redis_holder="b"), CFG).split_brain is None


def test_leaving_beats_everything_else() -> None:
    # Past the deadline with a dead engine and no Redis: the deadline decides, nothing released.
    s = leader(last_db_ok=NOW - 4, able=False, renewed=None, row=row("a"), redis_error="x")
    assert decide(s, CFG) == Decision(Action.DEMOTE_DEADLINE, mode=Mode.DB_ONLY, split_brain=False)


def test_a_replica_that_stepped_down_on_request_holds_off_a_free_lease() -> None:
    held = follower(row=row("b", left=-1), redis_holder=None, hold_until=NOW + 4.0)
    d = decide(held, CFG)
    assert d == Decision(Action.HOLD_OFF, KeyAction.KEEP, Mode.NORMAL, split_brain=False)
    assert "4.00s more" in d.why
    # A Redis key we still hold goes, as for any follower.
    assert decide(replace(held, redis_holder="a"), CFG).key is KeyAction.DROP
    # At the end of the hold-off (availability first) it takes the lease like anyone.
    assert decide(replace(held, now=NOW + 4.0), CFG).action is Action.ACQUIRE
    assert decide(replace(held, hold_until=float("-inf")), CFG).action is Action.ACQUIRE
    # The hold-off changes nothing while someone leads, and is no reason to lead when we may not.
    assert decide(replace(held, row=row("b")), CFG).action is Action.FOLLOW
    assert decide(replace(held, eligible=False), CFG).action is Action.NO_LEADER
    assert decide(replace(held, able=False), CFG).action is Action.NO_LEADER


def test_the_hold_off_ends_once_another_replica_leads() -> None:
    held = follower(row=row("b"), hold_until=NOW + 4.0)
    assert hold_until_after(held) == float("-inf")  # b took over: the demotion did its job
    # Nobody leads yet, our own lease still runs, or the ledger did not answer: it runs on.
    for s in (
        replace(held, row=row("b", left=-1)),
        replace(held, row=row("a", token="old")),
        replace(held, row=None, ledger_error="timeout"),
    ):
        assert hold_until_after(s) == NOW + 4.0


def test_the_hold_off_defaults_to_two_ttls() -> None:
    assert CFG.hold_off is None and CFG.hold_off_seconds == 10.0
    assert HAConfig("a", ttl=3.0, renew_interval=0.2, renew_deadline=1.5).hold_off_seconds == 6.0
    assert HAConfig("a", hold_off=0.0).hold_off_seconds == 0.0
    with pytest.raises(ConfigError, match="hold-off"):
        HAConfig("a", hold_off=-1.0)


def test_decisions_compare_without_their_explanation() -> None:
    one = decide(leader(renewed=None, ledger_error="timeout", now=NOW), CFG)
    two = decide(leader(renewed=None, ledger_error="reset", now=NOW + 0.5), CFG)
    assert one == two and one.why != two.why


# ---- the coordinator on fakes ---------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class FakeLedger:
    """The leadership row and heartbeats, on the test's clock (as the database's)."""

    def __init__(self, clock: Clock, calls: list[str]) -> None:
        self.clock = clock
        self.calls = calls
        self.epoch, self.holder, self.token, self.lease_until = 0, None, None, 0.0
        self.down = False
        self.beats: dict[str, tuple[bool, int, str]] = {}

    def _call(self, name: str) -> None:
        self.calls.append(f"ledger.{name}")
        if self.down:
            raise LedgerUnavailable("ledger down")

    def read(self) -> Leadership:
        self._call("read")
        return Leadership(self.epoch, self.holder, self.token, self.lease_until, self.clock.now)

    def try_acquire(self, replica: str, token: str, seen_epoch: int, ttl: float) -> int | None:
        self._call("try_acquire")
        if self.epoch != seen_epoch or not (
            self.lease_until <= self.clock.now or self.holder == replica
        ):
            return None
        self.epoch, self.holder, self.token = self.epoch + 1, replica, token
        self.lease_until = self.clock.now + ttl
        return self.epoch

    def renew(self, replica: str, token: str, epoch: int, ttl: float) -> bool:
        self._call("renew")
        if (self.epoch, self.holder, self.token) != (epoch, replica, token):
            return False
        self.lease_until = self.clock.now + ttl
        return True

    def release(self, replica: str, token: str, epoch: int) -> bool:
        self._call("release")
        if (self.epoch, self.holder, self.token) != (epoch, replica, token):
            return False
        self.lease_until = self.clock.now
        return True

    def heartbeat(self, replica: str, is_leader: bool, epoch: int, mode: str) -> None:
        self._call("heartbeat")
        self.beats[replica] = (is_leader, epoch, mode)


class FakeRedis:
    def __init__(self) -> None:
        self.value: str | None = None
        self.down = False


class FakeLease:
    def __init__(self, redis: FakeRedis, replica: str, token: str, calls: list[str]) -> None:
        self.redis, self.calls = redis, calls
        self.value = f"{replica}|{token}"

    def _call(self, name: str) -> None:
        self.calls.append(f"redis.{name}")
        if self.redis.down:
            raise LeaseUnavailable("redis down")

    def renew(self) -> bool:
        self._call("renew")
        return self.redis.value == self.value

    def claim(self) -> None:
        self._call("claim")
        self.redis.value = self.value

    def release(self) -> bool:
        self._call("release")
        if self.redis.value != self.value:
            return False
        self.redis.value = None
        return True

    def holder(self) -> str | None:
        self._call("holder")
        return None if self.redis.value is None else self.redis.value.split("|", 1)[0]


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.calls: list[str] = []
        self.ledger = FakeLedger(self.clock, self.calls)
        self.redis = FakeRedis()
        self.metrics = Metrics()
        self.able = True

    def coordinator(self, replica: str = "a", **kw: object) -> Coordinator:
        return Coordinator(
            HAConfig(replica, ttl=5.0, renew_interval=1.0, renew_deadline=3.0),
            self.ledger,  # type: ignore[arg-type]
            lambda token: FakeLease(self.redis, replica, token, self.calls),  # type: ignore[arg-type,return-value]
            self.metrics,
            clock=self.clock,
            able=lambda: self.able,
            **kw,  # type: ignore[arg-type]
        )

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)

    def ticked(self, c: Coordinator, advance: float = 0.0) -> list[str]:
        """Move the clock, tick once, return the calls the tick made."""
        self.clock.now += advance
        self.calls.clear()
        c.tick()
        return list(self.calls)


@pytest.fixture
def world() -> World:
    return World()


def leading(world: World) -> Coordinator:
    c = world.coordinator()
    world.ticked(c)
    assert c.is_leader and c.may_execute()
    return c


def test_follower_acquires_when_the_lease_expires(world: World) -> None:
    world.ledger.epoch, world.ledger.holder, world.ledger.token = 7, "b", "tb"
    world.ledger.lease_until = NOW + 2.5
    world.redis.value = "b|tb"
    c = world.coordinator()
    assert world.ticked(c) == ["ledger.read", "redis.holder", "ledger.heartbeat"]
    assert not c.is_leader and c.epoch == 7 and c.figures.current_leader_db == "b"

    # b vanished: its lease expires on the database's clock, its key expires in Redis.
    world.redis.value = None
    calls = world.ticked(c, advance=3.0)
    assert calls == [
        "ledger.read",
        "redis.holder",
        "ledger.try_acquire",
        "redis.claim",
        "ledger.heartbeat",
    ]
    assert c.is_leader and c.epoch == 8 and c.generation() == 1
    assert c.term_started() == world.clock.now and c.last_db_ok == world.clock.now
    assert world.ledger.holder == "a" and world.redis.value == f"a|{c.token}"
    assert world.ledger.beats["a"] == (True, 8, "normal")
    assert c.may_execute() and world.gauge("tradeguard_ha_is_leader") == 1

    # Leading: a renew of each and a heartbeat, nothing else.
    assert world.ticked(c, 1.0) == ["ledger.renew", "redis.renew", "ledger.heartbeat"]
    assert c.is_leader and c.epoch == 8 and c.last_db_ok == world.clock.now


def test_leader_demotes_when_the_clock_jumps_past_the_renew_deadline(world: World) -> None:
    c = leading(world)
    lease_until = world.ledger.lease_until
    world.clock.now += 3.2  # SIGSTOP for longer than the deadline
    assert not c.may_execute() and not c.holds_term(0.0)
    calls = world.ticked(c)
    assert calls == ["ledger.read", "redis.holder", "redis.release", "ledger.heartbeat"]
    assert not c.is_leader and not c.may_execute()
    assert world.ledger.lease_until == lease_until  # the ledger lease is not released
    assert world.redis.value is None
    assert world.ledger.beats["a"] == (False, 1, "normal")


def test_leader_whose_renew_is_refused_demotes(world: World) -> None:
    c = leading(world)
    world.ledger.epoch, world.ledger.holder, world.ledger.token = 2, "b", "tb"  # b took over
    calls = world.ticked(c, 1.0)
    assert calls == ["ledger.renew", "redis.holder", "redis.release", "ledger.heartbeat"]
    assert not c.is_leader and not c.may_execute()
    assert world.ledger.holder == "b"
    world.ticked(c, 1.0)
    assert c.epoch == 2 and c.figures.current_leader_db == "b"


def test_split_brain_reclaims_the_redis_key_and_sets_the_gauge(world: World) -> None:
    c = leading(world)
    world.redis.value = "b|tb"
    calls = world.ticked(c, 1.0)
    assert calls == [
        "ledger.renew",
        "redis.renew",
        "redis.holder",
        "redis.claim",
        "ledger.heartbeat",
    ]
    assert world.redis.value == f"a|{c.token}" and c.split_brain and c.is_leader
    assert world.gauge("tradeguard_ha_split_brain") == 1
    assert world.gauge("tradeguard_ha_split_brain_detected_total") == 1
    # The next tick renews our key again: the gauge clears, the count stays.
    world.ticked(c, 1.0)
    assert not c.split_brain and world.gauge("tradeguard_ha_split_brain") == 0
    assert world.gauge("tradeguard_ha_split_brain_detected_total") == 1


def test_redis_unavailable_is_db_only_while_keeping_the_lead(world: World) -> None:
    c = leading(world)
    world.redis.down = True
    for _ in range(10):  # longer than a TTL
        world.ticked(c, 1.0)
        assert c.is_leader and c.may_execute() and c.mode == "db_only"
    assert c.epoch == 1 and c.generation() == 1
    assert world.gauge("tradeguard_ha_fallback_mode") == 1
    assert world.gauge("tradeguard_ha_mode", state="db_only") == 1
    assert c.figures.get_metrics()["fallback_mode"] is True
    assert world.ledger.beats["a"] == (True, 1, "db_only")

    world.redis.down = False  # back, empty: the key expired meanwhile
    world.redis.value = None
    world.ticked(c, 1.0)
    assert c.mode == "normal" and c.is_leader and world.redis.value == f"a|{c.token}"
    assert world.gauge("tradeguard_ha_split_brain_detected_total") == 1


def test_ledger_unavailable_leader_stops_at_the_deadline(world: World) -> None:
    c = leading(world)
    world.ledger.down = True
    world.ticked(c, 1.0)
    assert c.mode == "no_db" and c.is_leader and c.may_execute()
    world.ticked(c, 1.0)
    assert c.is_leader and c.may_execute()
    assert c.holds_term(0.5)
    world.clock.now += 1.0  # three seconds since the last renewal that succeeded
    assert not c.may_execute() and not c.holds_term(0.0)
    world.ticked(c)
    assert not c.is_leader and c.mode == "no_db"
    # No ledger, nobody acquires, whatever the clock says.
    world.ticked(c, 10.0)
    assert not c.is_leader
    assert c.figures.get_metrics()["db_sync_failure"] == 4


def test_an_unable_engine_makes_the_leader_step_down_and_release(world: World) -> None:
    drained: list[float] = []
    c = world.coordinator(drain=drained.append)
    world.ticked(c)
    assert c.is_leader
    world.able = False
    calls = world.ticked(c, 1.0)
    assert calls == [
        "ledger.read",
        "redis.holder",
        "ledger.release",
        "redis.release",
        "ledger.heartbeat",
    ]
    assert not c.is_leader and drained == []  # the engine is dead: nothing to drain
    assert world.ledger.lease_until == world.clock.now and world.redis.value is None
    # It does not come back while the engine cannot work, however long the lease is free.
    world.ticked(c, 1.0)
    assert not c.is_leader and "ledger.try_acquire" not in world.calls


def test_step_down_drains_before_it_releases_and_demotes(world: World) -> None:
    seen: list[tuple[bool, bool, bool]] = []

    def drain(timeout: float) -> None:
        assert timeout == 3.0
        world.calls.append("drain")
        seen.append((c.draining, c.is_leader, c.may_execute()))

    c = world.coordinator(drain=drain)
    world.ticked(c)
    world.calls.clear()
    c.step_down("switchover")
    assert world.calls == ["drain", "ledger.release", "redis.release"]
    assert seen == [(True, True, False)]  # drained under our term, taking no new work
    assert not c.draining and not c.is_leader
    assert world.ledger.lease_until == world.clock.now


def test_a_requested_step_down_leaves_the_lease_to_another_replica(world: World) -> None:
    a = leading(world)
    b = world.coordinator("b")
    world.ticked(b)
    assert not b.is_leader
    assert a.step_down("demote_leader command 1")
    assert a.hold_until == world.clock.now + 10.0
    # a ticks first, and again: the free lease is not its to take back.
    for _ in range(2):
        calls = world.ticked(a, 0.1)
        assert "ledger.try_acquire" not in calls and not a.is_leader
    assert a._decision is not None and a._decision.action is Action.HOLD_OFF
    world.ticked(b, 0.1)
    assert b.is_leader and b.epoch == 2 and world.ledger.holder == "b"
    # a sees b lead: the hold-off is over (b failing later is an ordinary failover).
    world.ticked(a, 0.1)
    assert a.hold_until == float("-inf") and not a.is_leader


def test_with_no_other_replica_the_one_that_stepped_down_leads_again(world: World) -> None:
    c = leading(world)
    assert c.step_down("demote_leader command 1")
    stepped_down_at = world.clock.now
    for _ in range(9):
        assert "ledger.try_acquire" not in world.ticked(c, 1.0)
        assert not c.is_leader, world.clock.now - stepped_down_at
    world.ticked(c, 1.0)  # two TTLs later, still nobody else: availability first
    assert world.clock.now == stepped_down_at + 10.0
    assert c.is_leader and c.epoch == 2 and c.may_execute()


def test_an_engine_failure_or_a_follower_step_down_sets_no_hold_off(world: World) -> None:
    c = leading(world)
    world.able = False
    world.ticked(c, 1.0)  # STEP_DOWN_ENGINE: released without a request
    assert not c.is_leader and c.hold_until == float("-inf")
    world.able = True
    world.ticked(c, 1.0)
    assert c.is_leader
    b = world.coordinator("b")
    assert not b.step_down("not the leader") and b.hold_until == float("-inf")


def test_holds_term_needs_the_lease_to_outlast_the_margin(world: World) -> None:
    c = leading(world)
    renewed_at = c.last_db_ok
    world.clock.now = renewed_at + 2.0
    assert c.holds_term(2.9)  # 5 - 2 = 3 s left
    assert not c.holds_term(3.0)  # last_db_ok + ttl - now <= margin
    assert not c.holds_term(3.5)
    world.clock.now = renewed_at + 2.9
    assert c.holds_term(2.05) and not c.holds_term(2.15)


def test_a_tick_that_raises_does_not_end_the_loop(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    c = world.coordinator()
    stop = threading.Event()
    ticks: list[int] = []

    def failing_tick() -> None:
        ticks.append(1)
        if len(ticks) == 3:
            stop.set()
        raise RuntimeError("bug")

    monkeypatch.setattr(c, "tick", failing_tick)
    c.config.renew_interval = 0.001
    c.run(stop)
    assert len(ticks) == 3


def test_decision_changes_are_logged_once(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tradeguard.ha.coordinator")
    c = leading(world)
    for _ in range(5):
        world.ticked(c, 1.0)
    world.redis.down = True
    for _ in range(5):
        world.ticked(c, 1.0)
    decisions = [r.getMessage() for r in caplog.records if r.getMessage().startswith("a: ")]
    assert [m.split(":")[1].strip() for m in decisions if "leader with epoch" not in m] == [
        "acquire",
        "lead",
        "lead [db_only]",
    ]
