"""Named fault scenarios: a fault, the way to undo it, and the alert it must raise.

Each works on a running local :class:`~tradeguard.stack.stack.Stack` (the demo's and the
end-to-end tests'): processes are killed and restarted through the stack's supervised
children, engine behaviour is changed through the engines' Redis control channel, and the
DuckDB disk is made to look full through an override file instead of filling a real disk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import httpx

from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.bus.signal_stream import SignalStream
from tradeguard.bus.trade_state import TradeState
from tradeguard.config import Layer
from tradeguard.engine.control import (
    clear_engine_stall,
    reset_broker_knobs,
    set_broker_knobs,
    set_engine_stall,
    set_intake_paused,
)
from tradeguard.engine.generator import GeneratorConfig, SignalGenerator
from tradeguard.errors import TradeguardError
from tradeguard.net import LOOPBACK
from tradeguard.process import wait_until
from tradeguard.responder.client import ResponderUnavailable
from tradeguard.stack.render import ensure_token
from tradeguard.stack.stack import Stack
from tradeguard.stack.status import read_responder_health, responder_client
from tradeguard.store.consistency import read_verdict, request_resync

LOW_DISK_BYTES = 512 * 1024 * 1024  # below DuckDBDiskSpaceLow's 1 GiB threshold


class ChaosError(TradeguardError):
    """A scenario could not be injected or undone."""


@dataclass
class Scenario:
    name: str
    description: str
    alert: str  # the alert that must reach the responder (or the bypass sink)
    inject: Callable[[Stack], None]
    undo: Callable[[Stack], None]
    needs_for_profile: bool = False  # its alert's `for` is above 30 s: fast profile only
    notes: list[str] = field(default_factory=list)
    # Where the alert shows: the responder's history, or, for alerts about the responder
    # itself, the sink Alertmanager routes them to around the responder.
    observed_at: Literal["responder", "bypass"] = "responder"
    # Checked before the fault goes in (bounded wait): a scenario whose alert is still firing
    # from the one before cannot fire again, so it waits until the stack has recovered.
    ready: Callable[[Stack], bool] | None = None
    # A fault the responder's remediation heals with this action, nobody undoing it: the
    # runner leaves it in place after the alert fires (``undo`` then only tidies up).
    heals_with: str | None = None
    # A fault remediation contains but cannot end (a full disk): the runner waits for this
    # action to be done before a person undoes the fault, and for its undo after.
    contained_by: str | None = None
    # A fault the rule's action cannot help: the runner waits for the responder to give up on
    # this action (RemediationExhausted after its budget) before a person undoes the fault.
    exhausts: str | None = None


def _knobs(**values: float) -> Callable[[Stack], None]:
    def inject(stack: Stack) -> None:
        set_broker_knobs(make_client(stack.layout.redis_url(Layer.SIGNAL_STREAM)), Keys(), **values)

    return inject


def _kill_broker_sessions(stack: Stack) -> None:
    """The venue drops every open session without telling the clients: each engine's orders
    fail on it until the engine connects again."""
    _knobs(dead_sessions_before=time.time())(stack)


VENUE_DOWN_SECONDS = 3600.0  # far longer than any scenario: only the undo ends it


def _venue_refuses_every_session(stack: Stack) -> None:
    """The venue refuses every order on every session, new ones too: reconnecting cannot help."""
    _knobs(dead_sessions_before=time.time() + VENUE_DOWN_SECONDS)(stack)


def _reset_knobs(stack: Stack) -> None:
    reset_broker_knobs(make_client(stack.layout.redis_url(Layer.SIGNAL_STREAM)), Keys())


def _intake(paused: bool) -> Callable[[Stack], None]:
    def act(stack: Stack) -> None:
        set_intake_paused(make_client(stack.layout.redis_url(Layer.SIGNAL_STREAM)), Keys(), paused)

    return act


BURST = 300  # above SignalBacklog's 200


def _pause_with_burst(stack: Stack) -> None:
    """Pause intake, then a strategy bursts: the backlog is over the threshold at once."""
    client = make_client(stack.layout.redis_url(Layer.SIGNAL_STREAM))
    set_intake_paused(client, Keys(), True)
    gen = SignalGenerator(SignalStream(client, Keys()), GeneratorConfig(rate=0, seed=99))
    gen.run(threading.Event(), limit=BURST)
    _bursts.setdefault(id(stack), []).extend(gen.report.published)


_bursts: dict[int, list[str]] = {}


def burst_ids(stack: Stack) -> list[str]:
    """Signal ids published by backlog bursts on this stack (for the final audit)."""
    return list(_bursts.get(id(stack), []))


def _signal_redis_name(stack: Stack) -> str:
    return "redis" if stack.layout.shared_redis else f"redis-{Layer.SIGNAL_STREAM.value}"


def _kill_redis(stack: Stack) -> None:
    stack.kill_child(_signal_redis_name(stack))


def _start_redis(stack: Stack) -> None:
    stack.start_child(_signal_redis_name(stack))


def leader_of(stack: Stack) -> str:
    """The replica whose /coordinator/status says it leads."""
    for replica, port in stack.layout.engine_ports.items():
        try:
            status = httpx.get(f"http://{LOOPBACK}:{port}/coordinator/status", timeout=1).json()
        except (httpx.HTTPError, ValueError):
            continue
        if status.get("role") == "leader":
            return replica
    raise ChaosError("no replica reports itself leader")


_killed: dict[int, str] = {}


def _kill_leader(stack: Stack) -> None:
    replica = leader_of(stack)
    _killed[id(stack)] = replica
    stack.kill_child(replica)


def _restart_leader(stack: Stack) -> None:
    replica = _killed.pop(id(stack), None)
    if replica is not None:
        stack.start_child(replica)


STALL_SECONDS = 600.0  # far longer than any scenario: only a demotion gets trading going again
_stalled: dict[int, str] = {}


def _stall_leader(stack: Stack) -> None:
    """The leader's engine loop hangs (a broker call that never returns) while its coordinator
    keeps the lease: no failover happens by itself."""
    replica = leader_of(stack)
    _stalled[id(stack)] = replica
    client = make_client(stack.layout.redis_url(Layer.SIGNAL_STREAM))
    set_engine_stall(client, Keys(), time.time() + STALL_SECONDS, replica=replica)


def _unstall(stack: Stack) -> None:
    replica = _stalled.pop(id(stack), None)
    if replica is not None:
        client = make_client(stack.layout.redis_url(Layer.SIGNAL_STREAM))
        clear_engine_stall(client, Keys(), replica=replica)


def _crash_instance(stack: Stack) -> None:
    from tradeguard.chaos.instance_faults import crash_until_stopped

    crash_until_stopped(stack)


def _clear_instance_crash(stack: Stack) -> None:
    from tradeguard.chaos.instance_faults import clear_instance_crash

    clear_instance_crash(stack)


def _disk(low: bool) -> Callable[[Stack], None]:
    def act(stack: Stack) -> None:
        marker = stack.layout.duckdb_dir / "disk-free-override"
        if low:
            marker.write_text(str(LOW_DISK_BYTES))
        else:
            marker.unlink(missing_ok=True)

    return act


def _trade_state(stack: Stack) -> TradeState:
    return TradeState(make_client(stack.layout.redis_url(Layer.TRADE_STATE)), Keys())


def _lose_account_state(stack: Stack) -> None:
    """Redis loses the busiest account's hash (an eviction, a flush by hand); trading goes on,
    so the engine's next fills land on a fresh, nearly empty hash."""
    state = _trade_state(stack)
    accounts = [(s.trades, a) for a in state.accounts() if (s := state.get(a)) is not None]
    if not accounts:
        raise ChaosError("no account has trade state in Redis yet")
    _, account = max(accounts)
    state.redis.delete(state.keys.state(account))


RESYNC_ANSWER_SECONDS = 15.0


def _resync_by_hand(stack: Stack) -> None:
    """What a person does (``tradeguard state resync``): ask the writing engine to rebuild what
    Redis lost, and wait for its answer, as the command does. After a remediation that did it
    already there is nothing left to rebuild; a request left pending would instead rebuild
    the next scenario's loss before its alert could fire."""
    state = _trade_state(stack)
    request = request_resync(state.redis, state.keys)

    def answered() -> bool:
        verdict = read_verdict(state.redis, state.keys)
        return verdict is not None and verdict.resync_done == request

    try:
        wait_until(answered, RESYNC_ANSWER_SECONDS, "the writing engine to answer", interval=0.2)
    except TimeoutError:
        raise ChaosError(
            f"no engine carried out the resync within {RESYNC_ANSWER_SECONDS:.0f}s"
        ) from None


def _not_firing(alert: str) -> Callable[[Stack], bool]:
    """Ready when ``alert`` does not fire (an earlier scenario's occurrence has resolved)."""

    def ready(stack: Stack) -> bool:
        try:
            with responder_client(stack.layout, ensure_token(stack.layout)) as client:
                return all(a.get("alertname") != alert for a in client.firing())
        except ResponderUnavailable:
            return False

    return ready


def alert_path_ok(stack: Stack) -> bool:
    """The responder hears Watchdog again (its dead man's switch reports the path ok)."""
    try:
        health = read_responder_health(stack.layout)
    except ResponderUnavailable:
        return False
    path = health.get("alert_path")
    return isinstance(path, dict) and path.get("state") == "ok"


def _alertmanagers(stack: Stack) -> list[str]:
    return [name for name in stack.children if name.startswith("alertmanager")]


def _kill_alertmanagers(stack: Stack) -> None:
    for name in _alertmanagers(stack):
        stack.kill_child(name)


def _start_alertmanagers(stack: Stack) -> None:
    for name in _alertmanagers(stack):
        stack.start_child(name)


def _kill(name: str) -> Callable[[Stack], None]:
    def act(stack: Stack) -> None:
        stack.kill_child(name)

    return act


def _start(name: str) -> Callable[[Stack], None]:
    def act(stack: Stack) -> None:
        stack.start_child(name)

    return act


def _pause(name: str, paused: bool) -> Callable[[Stack], None]:
    def act(stack: Stack) -> None:
        child = stack.child(name)
        if paused:
            child.pause()
        else:
            child.resume()

    return act


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "duckdb-disk-low",
            "The DuckDB volume reports 512 MiB free (override file).",
            "DuckDBDiskSpaceLow",
            _disk(True),
            _disk(False),
            contained_by="stop_duckdb_writes",
            notes=["writes stop on the responder's command and resume when space is back"],
        ),
        # Faults remediation heals: nobody undoes them; the alert's action does.
        Scenario(
            "broker-session-dead",
            "The venue drops the engines' broker sessions silently: every order fails until "
            "an engine reconnects; nobody restarts anything.",
            "TradeExecutionFailures",
            _kill_broker_sessions,
            _reset_knobs,
            heals_with="reconnect_broker",
            ready=_not_firing("TradeExecutionFailures"),
            notes=["resolves once its 1 m failure window has passed after the reconnect"],
        ),
        Scenario(
            "broker-venue-down",
            "The venue refuses every order on every session, however often the engines "
            "reconnect, until a person acts: the rule's action cannot help.",
            "TradeExecutionFailures",
            _venue_refuses_every_session,
            _reset_knobs,
            exhausts="reconnect_broker",
            ready=_not_firing("TradeExecutionFailures"),
            notes=[
                "remediation reconnects, waits for the alert to resolve, and after its budget "
                "raises RemediationExhausted; a person's undo resolves it"
            ],
        ),
        Scenario(
            "instance-crash",
            "The leader's terminal crashes at every start until its supervisor gives up after "
            "three recoveries; then the cause passes, and nobody restarts it.",
            "InstanceRecoveryFailed",
            _crash_instance,
            _clear_instance_crash,
            heals_with="restart_instance",
            ready=_not_firing("InstanceRecoveryFailed"),
            notes=["healed by a fresh restart once the crash cause has passed"],
        ),
        Scenario(
            "account-state-lost",
            "Redis loses one account's trade state while trading goes on; nobody repairs it.",
            "TradeStateInconsistent",
            _lose_account_state,
            _resync_by_hand,
            heals_with="resync_state",
            ready=_not_firing("TradeStateInconsistent"),
            notes=["healed by rebuilding the account from its fills in DuckDB"],
        ),
        Scenario(
            "leader-engine-stuck",
            "The leading replica's engine loop hangs while its coordinator keeps the lease; "
            "nobody restarts it.",
            "LeaderEngineStuck",
            _stall_leader,
            _unstall,
            heals_with="demote_leader",
            notes=["healed by a graceful switchover to the other replica"],
        ),
        Scenario(
            "redis-down",
            "SIGKILL the signal layer's redis-server; restart it (AOF keeps "
            "every acknowledged signal).",
            "RedisDown",
            _kill_redis,
            _start_redis,
        ),
        Scenario(
            "signal-backlog",
            f"Every engine pauses intake and a strategy bursts {BURST} signals.",
            "SignalBacklog",
            _pause_with_burst,
            _intake(False),
        ),
        Scenario(
            "execution-failures",
            "The broker fails 80 % of orders.",
            "TradeExecutionFailures",
            _knobs(failure_rate=0.8),
            _reset_knobs,
        ),
        Scenario(
            "broker-disconnect",
            "The broker connection drops on 40 % of orders.",
            "BrokerConnectionFailure",
            _knobs(disconnect_rate=0.4),
            _reset_knobs,
        ),
        Scenario(
            "slippage-spike",
            "Half the fills slip by 10-30 %.",
            "TradeSlippageSpike",
            _knobs(slippage_spike_rate=0.5),
            _reset_knobs,
            notes=["resolves only when the 5 m window has passed"],
        ),
        Scenario(
            "broker-slow",
            "Every order takes 6 s at the broker.",
            "TradeLatencySpike",
            _knobs(latency=6.0, jitter=0.0),
            _reset_knobs,
            notes=["the p99 over 1 m needs about a minute to fall back"],
        ),
        Scenario(
            "leader-kill",
            "SIGKILL the leading engine replica; the other takes over; the "
            "killed one is restarted.",
            "TradingBotDown",
            _kill_leader,
            _restart_leader,
            needs_for_profile=True,
        ),
        # The alert path itself: nothing Prometheus evaluates can get out, so the responder's
        # dead man's switch must notice that Watchdog stopped, and say so on its own channels.
        Scenario(
            "alertmanager-down",
            "SIGKILL every Alertmanager peer; restart them.",
            "AlertPathBroken",
            _kill_alertmanagers,
            _start_alertmanagers,
            notes=["raised by the responder's dead man's switch, not by a rule"],
            ready=alert_path_ok,
        ),
        Scenario(
            "prometheus-down",
            "SIGKILL Prometheus; restart it.",
            "AlertPathBroken",
            _kill("prometheus"),
            _start("prometheus"),
            notes=["raised by the responder's dead man's switch, not by a rule"],
            ready=alert_path_ok,
        ),
        Scenario(
            "responder-down",
            "SIGSTOP the responder; SIGCONT it (Alertmanager retries what it could not send).",
            "ResponderDown",
            _pause("responder", True),
            _pause("responder", False),
            observed_at="bypass",
            notes=["routed around the responder, to the bypass sink"],
            ready=alert_path_ok,
        ),
    ]
}
