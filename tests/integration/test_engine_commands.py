"""Remediation commands, issued as the responder issues them, carried out by a running engine.

Every test runs a real engine (``EngineService``) against a real redis-server, issues commands
with ``CommandBus.issue`` and waits (bounded) for the engine's answers; each action's test then
checks its effect where it shows: the intake hash and the engine's intake, rows in DuckDB, the
trade state hash, Redis's client list, the broker session, the instance's process, leadership.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from tradeguard.bus import InstanceRegistry, InstanceState, Keys, Signal, SignalStream
from tradeguard.bus.commands import ANY_ENGINE, Command, CommandAnswer, CommandBus
from tradeguard.bus.connection import make_client
from tradeguard.config import InstanceSpec, Layer, Settings
from tradeguard.engine.control import intake_key
from tradeguard.engine.paper import BrokerKnobs, PaperBroker
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.ha.coordinator import HAConfig
from tradeguard.process import wait_until
from tradeguard.process.services import RedisServer
from tradeguard.remediation.registry import ENGINE_ACTIONS
from tradeguard.replica import CoordinatorService

REPLICA = "r1"
KEYS = Keys()
JOIN_TIMEOUT = 10.0  # seconds for a listener to join the command stream
ANSWER_TIMEOUT = 20.0  # seconds for an engine's outcome


# ---- harness --------------------------------------------------------------------------------
@pytest.fixture
def issuer(settings: Settings) -> CommandBus:
    """The responder's end of the command stream, on a client of its own."""
    return CommandBus(make_client(settings.redis_url), KEYS)


def started(svc: EngineService) -> EngineService:
    """``svc`` once its listener has joined the command stream (a command issued earlier would
    predate it and be none of its business)."""
    assert svc.commands.joined.wait(JOIN_TIMEOUT), (
        f"the command listener of {svc.options.consumer} did not join within {JOIN_TIMEOUT}s"
    )
    return svc


@pytest.fixture
def engine(settings: Settings) -> Iterator[EngineService]:
    with EngineService(settings, EngineOptions(consumer=REPLICA, metrics_port=0)) as svc:
        yield started(svc)


def outcomes(bus: CommandBus, command_id: str) -> list[CommandAnswer]:
    return [a for a in bus.answers(command_id) if a.answer != "acknowledged"]


def issue(
    bus: CommandBus,
    action: str,
    target: str = REPLICA,
    answers: int = 1,
    **params: str,
) -> list[CommandAnswer]:
    """Issue ``action`` and wait for ``answers`` outcomes (one per engine it reaches); every
    answer given, acknowledgements included, in order."""
    command = Command(action, target, params=params)
    bus.issue(command)
    wait_until(
        lambda: len(outcomes(bus, command.command_id)) >= answers,
        ANSWER_TIMEOUT,
        f"{answers} outcome(s) of {action} (answers so far: {bus.answers(command.command_id)})",
    )
    return bus.answers(command.command_id)


def outcome(bus: CommandBus, action: str, **params: str) -> CommandAnswer:
    """Issue ``action`` to this test's engine; its outcome, after its acknowledgement when it
    ran."""
    answers = issue(bus, action, **params)
    final = answers[-1]
    assert [a.replica for a in answers] == [REPLICA] * len(answers)
    if final.answer in ("done", "failed"):
        assert [a.answer for a in answers] == ["acknowledged", final.answer], answers
    return final


def gauge(svc: EngineService, name: str) -> float | None:
    return svc.registry.get_sample_value(name)


def publish(svc: EngineService, *ids: str, account: str = "acct") -> None:
    client = make_client(svc.settings.redis_url)
    try:
        producer = SignalStream(client, KEYS)
        for sid in ids:
            producer.publish(
                Signal(account=account, symbol="EURUSD", action="buy", volume=1, signal_id=sid)
            )
    finally:
        client.close()


def executed(svc: EngineService, n: int, what: str) -> None:
    wait_until(lambda: svc.engine.stats.processed >= n, 15, f"{n} signals executed ({what})")


def persisted(svc: EngineService) -> int:
    """Results in this engine's DuckDB file, counted there."""
    assert svc.store is not None
    return sum(svc.store.result_counts().values())


# ---- the table ------------------------------------------------------------------------------
def test_the_engine_handles_exactly_the_engine_actions_of_the_registry(
    engine: EngineService,
) -> None:
    assert set(engine.commands.handlers) == set(ENGINE_ACTIONS)


# ---- the listener's rules -------------------------------------------------------------------
def test_an_expired_command_is_refused_and_not_run(
    engine: EngineService, issuer: CommandBus
) -> None:
    late = Command("throttle_intake", REPLICA, issued_at=time.time() - 60, timeout=30)
    issuer.issue(late)
    wait_until(
        lambda: issuer.answers(late.command_id), ANSWER_TIMEOUT, "the expired command's answer"
    )
    (answer,) = issuer.answers(late.command_id)
    assert answer.answer == "refused" and "expired" in answer.detail, answer
    assert issuer.redis.hget(intake_key(KEYS), "paused") is None  # never ran
    assert not engine.control.paused


def test_an_unknown_action_is_refused(engine: EngineService, issuer: CommandBus) -> None:
    answer = outcome(issuer, "reboot_the_datacenter")
    assert answer.answer == "refused" and "unknown action" in answer.detail, answer


def test_a_command_for_another_replica_gets_no_answer_from_this_one(
    engine: EngineService, issuer: CommandBus
) -> None:
    elsewhere = Command("throttle_intake", "r2")
    issuer.issue(elsewhere)
    # The stream is read in order: once the next command is answered, the first was read.
    assert outcome(issuer, "resume_intake").answer == "done"
    assert issuer.answers(elsewhere.command_id) == []
    assert issuer.redis.hget(intake_key(KEYS), "paused") == b"0"  # only resume_intake ran


def test_a_command_delivered_twice_runs_once(engine: EngineService, issuer: CommandBus) -> None:
    command = Command("reconnect_redis", REPLICA)
    issuer.issue(command)
    issuer.issue(command)  # the same id again (a responder retrying its append)
    assert outcome(issuer, "resume_intake").answer == "done"  # read past both
    assert [a.answer for a in issuer.answers(command.command_id)] == ["acknowledged", "done"]
    assert engine.commands.handled == 2  # reconnect_redis once, resume_intake once


def test_the_listener_rides_out_a_redis_restart(
    engine: EngineService, issuer: CommandBus, redis_server: RedisServer
) -> None:
    redis_server.kill()
    redis_server.start()  # empty: the stream and its groups are gone too
    assert outcome(issuer, "throttle_intake").answer == "done"
    assert engine.problem() is None  # no thread died on the way


# ---- intake ---------------------------------------------------------------------------------
def test_throttle_intake_pauses_every_engine_and_resume_intake_reopens_it(
    engine: EngineService, issuer: CommandBus
) -> None:
    publish(engine, "before")
    executed(engine, 1, "before the throttle")

    assert outcome(issuer, "throttle_intake").answer == "done"
    assert issuer.redis.hget(intake_key(KEYS), "paused") == b"1"
    wait_until(
        lambda: gauge(engine, "tradeguard_engine_intake_paused") == 1,
        5,
        "the engine to stop taking signals",
    )
    publish(engine, "during")
    time.sleep(0.5)  # a window for a wrongly taken signal to show (no event says "not taken")
    assert engine.engine.stats.processed == 1
    assert engine.signals.redis.xlen(KEYS.signals) == 2  # it waits in the stream

    assert outcome(issuer, "resume_intake").answer == "done"
    assert issuer.redis.hget(intake_key(KEYS), "paused") == b"0"
    executed(engine, 2, "the signal that waited, after resume_intake")


# ---- DuckDB ---------------------------------------------------------------------------------
def test_stopped_duckdb_writes_keep_results_in_the_stream_until_resumed(
    engine: EngineService, issuer: CommandBus
) -> None:
    persister = engine.persister
    assert persister is not None
    assert outcome(issuer, "stop_duckdb_writes").answer == "done"
    assert persister.writes_stopped
    assert gauge(engine, "tradeguard_duckdb_writes_enabled") == 0

    ids = [f"s{i}" for i in range(20)]
    publish(engine, *ids)
    executed(engine, 20, "while DuckDB writes are stopped")
    wait_until(
        lambda: engine.results.redis.xlen(KEYS.results) == 20, 10, "20 results in the stream"
    )
    time.sleep(0.5)  # a window for a wrongly persisted result to show
    assert persisted(engine) == 0
    assert persister.persisted == 0
    retry = outcome(issuer, "retry_result_sync")  # nothing to retry into while stopped
    assert retry.answer == "refused" and "stopped" in retry.detail, retry

    assert outcome(issuer, "resume_duckdb_writes").answer == "done"
    assert not persister.writes_stopped
    assert gauge(engine, "tradeguard_duckdb_writes_enabled") == 1
    wait_until(lambda: persisted(engine) == 20, 15, "the 20 waiting results in DuckDB")
    assert engine.store is not None and set(engine.store.result_ids()) == set(ids)
    pending = engine.results.redis.xpending(KEYS.results, persister.group)["pending"]
    assert pending == 0


def test_retry_result_sync_re_reads_what_a_failing_store_left_pending(
    engine: EngineService, issuer: CommandBus
) -> None:
    persister, store = engine.persister, engine.store
    assert persister is not None and store is not None
    store.set_writes_enabled(False)  # DuckDB refuses writes (a failing disk): results stay pending
    publish(engine, "p1", "p2", "p3")
    executed(engine, 3, "while DuckDB refuses writes")
    # The store read what came first, failed to write it, and keeps it pending (re-reading it
    # after each failure, before anything newer).
    wait_until(
        lambda: engine.results.redis.xpending(KEYS.results, persister.group)["pending"] >= 1,
        15,
        "results read by the store and left pending",
    )
    assert persisted(engine) == 0
    store.set_writes_enabled(True)
    answer = outcome(issuer, "retry_result_sync")
    assert answer.answer == "done", answer
    assert "pending result(s)" in answer.detail, answer
    wait_until(lambda: persisted(engine) == 3, 15, "the 3 pending results in DuckDB")


# ---- trade state ----------------------------------------------------------------------------
def test_resync_state_restores_an_account_redis_lost_from_duckdb(
    engine: EngineService, issuer: CommandBus
) -> None:
    store = engine.store
    assert store is not None
    publish(engine, "f1", "f2", "f3")

    def snapshot_trades() -> int | None:
        snapshot = store.states().get("acct")
        return None if snapshot is None else snapshot.trades

    wait_until(lambda: snapshot_trades() == 3, 15, "DuckDB's snapshot of the account after 3 fills")
    before = engine.state.get("acct")
    assert before is not None
    engine.state.redis.delete(KEYS.state("acct"))  # Redis loses the account's hash
    assert engine.state.get("acct") is None
    publish(engine, "f4", "f5")  # trading goes on: two fills land on a fresh, empty hash
    executed(engine, 5, "after the loss")
    fresh = engine.state.get("acct")
    assert fresh is not None and fresh.trades == 2

    answer = outcome(issuer, "resync_state")
    assert answer.answer == "done" and "acct" in answer.detail, answer
    restored = engine.state.get("acct")
    # Every fill counts, those after the loss too: not DuckDB's snapshot of 3 trades.
    assert restored is not None and (restored.trades, restored.positions) == (5, {"EURUSD": 5.0})
    assert restored.balance == pytest.approx(before.balance + fresh.balance)
    assert engine.store is not None and engine.store.states()["acct"].trades <= 5


def test_a_loss_stays_seen_after_trading_lifts_redis_past_the_snapshot(
    settings: Settings, issuer: CommandBus
) -> None:
    """The snapshot alone stops showing a loss once the fills after it outnumber it (the
    snapshot then follows Redis again); DuckDB's fills keep showing it until the resync."""
    fast = settings.model_copy(update={"state_check_interval_seconds": 0.2})
    with EngineService(fast, EngineOptions(consumer=REPLICA, metrics_port=0)) as svc:
        started(svc)
        store = svc.store
        assert store is not None
        publish(svc, "h1", "h2")
        wait_until(
            lambda: (s := store.states().get("acct")) is not None and s.trades == 2,
            15,
            "DuckDB's snapshot after 2 fills",
        )
        svc.state.redis.delete(KEYS.state("acct"))
        publish(svc, "h3", "h4", "h5")  # 3 trades on the fresh hash: past the snapshot's 2
        executed(svc, 5, "after the loss")
        wait_until(lambda: persisted(svc) == 5, 15, "the 5 results in DuckDB")
        wait_until(
            lambda: (s := store.states().get("acct")) is not None and s.trades == 3,
            15,
            "the snapshot to follow Redis's count again",
        )
        wait_until(
            lambda: gauge(svc, "tradeguard_state_mismatched_accounts") == 1,
            10,
            "the check to report the account lost",
        )
        answer = outcome(issuer, "resync_state")
        assert answer.answer == "done", answer
        restored = svc.state.get("acct")
        assert restored is not None and (restored.trades, restored.positions) == (
            5,
            {"EURUSD": 5.0},
        )
        wait_until(
            lambda: gauge(svc, "tradeguard_state_mismatched_accounts") == 0,
            10,
            "the next check to find the copies agreeing",
        )


def test_resync_state_refuses_an_account_duckdb_lacks_fills_for(
    engine: EngineService, issuer: CommandBus
) -> None:
    """Results trimmed from the stream before they were stored: DuckDB's fills do not add up
    to the trade count it saw, so the account is left for a person, never written short."""
    store = engine.store
    assert store is not None
    publish(engine, "g1", "g2")
    wait_until(
        lambda: (s := store.states().get("acct")) is not None and s.trades == 2,
        15,
        "DuckDB's snapshot after 2 fills",
    )
    store._conn.execute("DELETE FROM results WHERE signal_id = 'g1'")  # as if never stored
    engine.state.redis.delete(KEYS.state("acct"))

    answer = outcome(issuer, "resync_state")
    assert answer.answer == "failed", answer
    assert "DuckDB holds 1 fill(s) for its 2 trades" in answer.detail, answer
    assert engine.state.get("acct") is None, "nothing written short"


# ---- connections ----------------------------------------------------------------------------
def client_ids(probe: Redis) -> set[int]:
    return {int(c["id"]) for c in probe.client_list()}


def test_reconnect_redis_replaces_every_connection_and_the_engine_goes_on(
    settings: Settings, issuer: CommandBus
) -> None:
    probe = make_client(settings.redis_url)
    issuer.redis.ping()
    others = client_ids(probe)  # the test's own connections (and any the harness left)
    with EngineService(settings, EngineOptions(consumer=REPLICA, metrics_port=0)) as svc:
        started(svc)
        publish(svc, "a1")
        executed(svc, 1, "before the reconnect")
        engines = client_ids(probe) - others
        assert engines, "the engine holds no Redis connection"

        answer = outcome(issuer, "reconnect_redis")
        assert answer.answer == "done", answer
        assert all(layer.value in answer.detail for layer in Layer)
        wait_until(
            lambda: not engines & client_ids(probe),
            5,
            f"the engine's connections of before the reconnect ({sorted(engines)}) to close",
        )
        assert client_ids(probe) - others, "the engine opened no connection again"
        publish(svc, "a2")
        executed(svc, 2, "after the reconnect")
        assert outcome(issuer, "resume_intake").answer == "done"  # commands still flow
        assert svc.problem() is None


def test_reconnect_broker_reopens_the_session_between_signals(
    settings: Settings, issuer: CommandBus
) -> None:
    connect_takes = 0.3
    broker = PaperBroker(BrokerKnobs(latency=0.001, jitter=0, reconnect_block=connect_takes))
    options = EngineOptions(consumer=REPLICA, metrics_port=0, persist=False)
    with EngineService(settings, options, broker=broker) as svc:
        started(svc)
        publish(svc, "b1")
        executed(svc, 1, "before the reconnect")
        answer = outcome(issuer, "reconnect_broker")
        assert answer.answer == "done", answer
        assert answer.duration_seconds >= connect_takes  # connect() ran: it blocks that long
        assert broker.connected
        publish(svc, "b2")
        executed(svc, 2, "after the reconnect")
        assert svc.engine.stats.by_status["filled"] == 2


# ---- instances ------------------------------------------------------------------------------
SLEEPER = "import time; time.sleep(600)"


@pytest.fixture
def supervising(settings: Settings, tmp_path: Path) -> Iterator[EngineService]:
    spec = InstanceSpec(id="term-1", command=[sys.executable, "-c", SLEEPER])
    supervised = settings.model_copy(
        update={
            "instances": [spec],
            "instances_dir": tmp_path / "instances",
            "instance_stable_seconds": 0.2,
        }
    )
    options = EngineOptions(consumer=REPLICA, metrics_port=0, persist=False)
    with EngineService(supervised, options) as svc:
        yield started(svc)


def state_is(svc: EngineService, state: InstanceState) -> Callable[[], bool]:
    registry = InstanceRegistry(svc.clients[Layer.INSTANCE_STATE], KEYS)
    return lambda: registry.state("term-1") is state


def test_restart_and_stop_instance_through_the_supervisor(
    supervising: EngineService, issuer: CommandBus
) -> None:
    svc = supervising
    assert svc.supervisor is not None
    process = svc.supervisor.process("term-1")
    wait_until(state_is(svc, InstanceState.RUNNING), 15, "term-1 to run")
    first = process.pid
    assert first is not None

    answer = outcome(issuer, "restart_instance", instance="term-1")
    assert answer.answer == "done", answer
    assert process.running and process.pid != first
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # the old process is gone
    wait_until(state_is(svc, InstanceState.RUNNING), 15, "term-1 to run again")

    other = outcome(issuer, "restart_instance", instance="term-9")
    assert other.answer == "not_applicable" and "term-9" in other.detail, other
    nameless = outcome(issuer, "restart_instance")
    assert nameless.answer == "refused", nameless

    assert outcome(issuer, "stop_instance", instance="term-1").answer == "done"
    assert not process.running
    assert state_is(svc, InstanceState.STOPPED)()
    time.sleep(1.5)  # more than one supervisor tick (1 s): a stopped instance stays stopped
    assert not process.running and state_is(svc, InstanceState.STOPPED)()

    assert outcome(issuer, "restart_instance", instance="term-1").answer == "done"
    assert process.running
    wait_until(state_is(svc, InstanceState.RUNNING), 15, "term-1 to run after the stop")


CLI = [sys.executable, "-m", "tradeguard.cli"]


def restart_cli(settings: Settings, instance: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "instance", "restart", instance, "--redis-url", settings.redis_url, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_person_restarts_a_stopped_instance_from_the_cli(
    supervising: EngineService, issuer: CommandBus, settings: Settings
) -> None:
    """What the runbook's last step runs: the engine's supervisor restarts the instance it
    stopped, and the CLI prints its answer; a wrong id says that no engine supervises it."""
    svc = supervising
    assert svc.supervisor is not None
    process = svc.supervisor.process("term-1")
    wait_until(state_is(svc, InstanceState.RUNNING), 15, "term-1 to run")
    assert outcome(issuer, "stop_instance", instance="term-1").answer == "done"
    assert state_is(svc, InstanceState.STOPPED)()

    done = restart_cli(settings, "term-1")
    assert done.returncode == 0, done.stderr
    assert f"restarted: {REPLICA}: instance term-1 restarted (pid" in done.stdout
    assert process.running
    wait_until(state_is(svc, InstanceState.RUNNING), 15, "term-1 to run after the restart")

    unknown = restart_cli(settings, "term-9", "--timeout", "2")
    assert unknown.returncode == 1, unknown.stdout
    assert f"no engine supervises term-9 (answered: {REPLICA})" in unknown.stderr
    assert "Traceback" not in unknown.stderr


# ---- leadership -----------------------------------------------------------------------------
def test_demote_leader_without_a_coordinator_is_refused(
    engine: EngineService, issuer: CommandBus
) -> None:
    answer = outcome(issuer, "demote_leader")
    assert answer.answer == "refused", answer
    assert answer.detail == "demote_leader: no HA coordinator in this process"


def test_leader_only_actions_under_ha_run_on_the_leader_only(
    settings: Settings, issuer: CommandBus, tmp_path: Path
) -> None:
    """Two coordinator replicas: a command for any engine is done by the leader and not
    applicable on the follower; demote_leader makes the leader step down."""
    ha = {"ttl": 3.0, "renew_interval": 0.2, "renew_deadline": 1.5}
    ledger = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    replicas: dict[str, CoordinatorService] = {}
    try:
        for rid in ("r1", "r2"):
            own = settings.model_copy(update={"duckdb_path": tmp_path / f"{rid}.duckdb"})
            replicas[rid] = CoordinatorService(
                own, HAConfig(rid, **ha), ledger, EngineOptions(metrics_port=0)
            ).start()
            started(replicas[rid].engine)

        def leaders() -> list[str]:
            return [rid for rid, r in replicas.items() if r.coordinator.may_execute()]

        wait_until(lambda: len(leaders()) == 1, 15, "one of the two replicas to lead")
        (leader,) = leaders()
        (follower,) = set(replicas) - {leader}

        resync = {a.replica: a for a in issue(issuer, "resync_state", ANY_ENGINE, answers=2)}
        assert resync[leader].answer == "done", resync
        assert resync[follower].answer == "not_applicable", resync

        changes = replicas[leader].metrics.registry.get_sample_value
        before = changes("tradeguard_ha_leadership_changes_total") or 0.0
        demote = {a.replica: a for a in issue(issuer, "demote_leader", ANY_ENGINE, answers=2)}
        assert demote[leader].answer == "done", demote
        assert demote[follower].answer == "not_applicable", demote
        # It lost leadership (a change), whoever leads next.
        assert (changes("tradeguard_ha_leadership_changes_total") or 0.0) > before
    finally:
        stoppers = [threading.Thread(target=r.stop) for r in replicas.values()]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(30)
