"""What an engine does for each remediation action (the effects behind ``engine/commands.py``).

One handler per action name of the remediation registry, each with one job and a real effect:

========================  ==============================================================
``throttle_intake``       pause the shared intake gate (every engine stops taking signals)
``resume_intake``         open it again
``stop_duckdb_writes``    close this engine's DuckDB write gate (results wait in the stream)
``resume_duckdb_writes``  open it again
``resync_state``          the leader restores accounts Redis lost from DuckDB's copy
``retry_result_sync``     the persister re-reads its pending results now
``reconnect_broker``      drop and re-open the broker session between two signals
``reconnect_redis``       drop every layer client's connections, then PING each
``restart_instance``      restart a supervised instance (``params.instance``)
``stop_instance``         stop it and keep it stopped
``demote_leader``         the leader steps down gracefully (the HA coordinator's step-down)
========================  ==============================================================

A handler answers ``not_applicable`` when this engine lacks the thing (a leader-only action on
a follower, an instance it does not supervise) and ``refused`` when the action cannot run in
this process at all (no DuckDB store, no HA coordinator), each with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from redis import Redis

from tradeguard.bus.commands import Command
from tradeguard.bus.keys import Keys
from tradeguard.bus.trade_state import TradeState
from tradeguard.config import Layer
from tradeguard.engine.commands import (
    Handler,
    Outcome,
    done,
    failed,
    not_applicable,
    refused,
)
from tradeguard.engine.control import set_intake_paused
from tradeguard.engine.loop import Engine
from tradeguard.instances.supervisor import InstanceSupervisor
from tradeguard.store.consistency import Verdict, read_verdict, request_resync
from tradeguard.store.persister import ResultPersister

log = logging.getLogger(__name__)

RESYNC_WAIT = 10.0  # seconds the leader waits for its consistency checker to carry out a resync
DRAIN_WAIT = 10.0  # seconds to wait for the signal in hand before a broker reconnect
WRITES_QUIET_WAIT = 5.0  # seconds to wait for the batch in hand when DuckDB writes stop


@dataclass
class EngineParts:
    """What the handlers act on: the parts of one engine replica."""

    keys: Keys
    control: Redis  # the signal layer's client: the intake gate lives there
    clients: Mapping[Layer, Redis]
    engine: Engine
    state: TradeState
    persister: ResultPersister | None
    supervisor: InstanceSupervisor | None
    active: Callable[[], bool]  # this replica leads (writes the shared trade state)
    demote: Callable[[str], bool] | None  # the coordinator's graceful step-down, if any
    resync_wait: float = RESYNC_WAIT
    drain_wait: float = DRAIN_WAIT


def handlers(parts: EngineParts) -> dict[str, Handler]:
    """The handler of every action an engine runs, by action name."""
    return {
        "throttle_intake": lambda c, s: _intake(parts, paused=True),
        "resume_intake": lambda c, s: _intake(parts, paused=False),
        "stop_duckdb_writes": lambda c, s: _stop_writes(parts, c),
        "resume_duckdb_writes": lambda c, s: _resume_writes(parts),
        "resync_state": lambda c, s: _resync_state(parts, c, s),
        "retry_result_sync": lambda c, s: _retry_result_sync(parts),
        "reconnect_broker": lambda c, s: _reconnect_broker(parts),
        "reconnect_redis": lambda c, s: _reconnect_redis(parts),
        "restart_instance": lambda c, s: _restart_instance(parts, c),
        "stop_instance": lambda c, s: _stop_instance(parts, c),
        "demote_leader": lambda c, s: _demote_leader(parts, c),
    }


def _why(command: Command) -> str:
    occurrence = f", occurrence {command.occurrence}" if command.occurrence else ""
    return f"{command.action} command {command.command_id}{occurrence}"


# ---- intake ---------------------------------------------------------------------------------
def _intake(parts: EngineParts, paused: bool) -> Outcome:
    set_intake_paused(parts.control, parts.keys, paused)
    if paused:
        return done("intake paused on every engine: new signals wait in the stream")
    return done("intake resumed on every engine")


# ---- DuckDB ---------------------------------------------------------------------------------
def _no_store(action: str) -> Outcome:
    return refused(f"{action}: this engine keeps no DuckDB store (persistence is off)")


def _stop_writes(parts: EngineParts, command: Command) -> Outcome:
    if parts.persister is None:
        return _no_store(command.action)
    if parts.persister.stop_writes(_why(command), WRITES_QUIET_WAIT):
        return done("DuckDB writes stopped; results wait in the result stream")
    return done(
        "DuckDB writes stopped; results wait in the result stream (the batch in hand was "
        f"still being written after {WRITES_QUIET_WAIT:.0f}s: the store refuses it, it is "
        "re-read on resume)"
    )


def _resume_writes(parts: EngineParts) -> Outcome:
    if parts.persister is None:
        return _no_store("resume_duckdb_writes")
    parts.persister.resume_writes()
    return done("DuckDB writes resumed; the results that waited are being persisted")


def _retry_result_sync(parts: EngineParts) -> Outcome:
    persister = parts.persister
    if persister is None:
        return _no_store("retry_result_sync")
    if persister.writes_stopped:
        return refused("retry_result_sync: DuckDB writes are stopped; resume them first")
    pending = persister.results.redis.xpending(persister.results.keys.results, persister.group)
    persister.retry_pending()
    return done(f"re-reading the {int(pending['pending'])} pending result(s) now")


def _resync_state(parts: EngineParts, command: Command, stop: threading.Event) -> Outcome:
    if not parts.active():
        return not_applicable("resync_state: not the leader (the leader writes the trade state)")
    persister = parts.persister
    if persister is None or persister.checker is None:
        return _no_store("resync_state")
    if persister.writes_stopped:
        return refused(
            "resync_state: DuckDB writes are stopped, so its copy of the trade state is stale; "
            "resume them first"
        )
    request = request_resync(parts.state.redis, parts.keys)
    deadline = time.monotonic() + parts.resync_wait
    while not stop.is_set():  # the checker polls the request twice a second; no event to await
        verdict = read_verdict(parts.state.redis, parts.keys)
        if verdict is not None and verdict.resync_done == request:
            return _resync_outcome(verdict)
        if time.monotonic() >= deadline:
            break
        stop.wait(0.1)
    return failed(
        f"resync_state: the consistency checker did not answer within {parts.resync_wait:.0f}s "
        "(the request stays queued for it)"
    )


def _resync_outcome(verdict: Verdict) -> Outcome:
    """Done when every lost account was rebuilt (or none was lost); failed, saying why, when
    one is still lost: the alert stays firing, and the guard's budget ends the retries."""
    restored = ", ".join(verdict.restored) or "none (no account was missing from Redis)"
    still = f"; still mismatched: {'; '.join(verdict.mismatches)}" if verdict.mismatches else ""
    if verdict.resync_problem:
        return failed(f"resync_state: {verdict.resync_problem} (restored: {restored}{still})")
    return done(f"rebuilt from DuckDB's fills: {restored}{still}")


# ---- connections ----------------------------------------------------------------------------
def _reconnect_broker(parts: EngineParts) -> Outcome:
    if parts.engine.reconnect_broker(parts.drain_wait):
        return done("broker session re-opened between two signals")
    return failed("reconnect_broker: the broker did not reconnect")


def _reconnect_redis(parts: EngineParts) -> Outcome:
    errors = []
    for client in parts.clients.values():
        client.connection_pool.disconnect()  # in-use ones too: their users see a reset
    for layer, client in parts.clients.items():
        try:
            client.ping()
        except Exception as exc:  # every layer is tried; the answer names each that failed
            errors.append(f"{layer.value}: {type(exc).__name__}: {exc}")
    layers = ", ".join(layer.value for layer in parts.clients)
    if errors:
        return failed(f"reconnect_redis: PING failed after the reconnect: {'; '.join(errors)}")
    return done(f"Redis connections re-opened and answering: {layers}")


# ---- instances ------------------------------------------------------------------------------
def _instance(parts: EngineParts, command: Command) -> tuple[str, Outcome | None]:
    """The instance a command names, or the answer when this engine cannot act on it."""
    instance = command.params.get("instance", "")
    if not instance:
        return instance, refused(f"{command.action}: no instance named (params.instance)")
    if parts.supervisor is None or not parts.supervisor.supervises(instance):
        return instance, not_applicable(f"instance {instance} is not supervised by this engine")
    return instance, None


def _restart_instance(parts: EngineParts, command: Command) -> Outcome:
    instance, cannot = _instance(parts, command)
    if cannot is not None:
        return cannot
    assert parts.supervisor is not None
    if parts.supervisor.restart(instance, _why(command)):
        pid = parts.supervisor.process(instance).pid
        return done(f"instance {instance} restarted (pid {pid})")
    if parts.supervisor.gave_up(instance):
        return failed(
            f"instance {instance} was crashing: this restart was its last recovery attempt "
            "and it is stopped; a later restart starts it afresh"
        )
    return failed(f"instance {instance} did not start again; see its log")


def _stop_instance(parts: EngineParts, command: Command) -> Outcome:
    instance, cannot = _instance(parts, command)
    if cannot is not None:
        return cannot
    assert parts.supervisor is not None
    parts.supervisor.stop(instance, _why(command))
    return done(f"instance {instance} stopped; not restarted until restart_instance")


# ---- leadership -----------------------------------------------------------------------------
def _demote_leader(parts: EngineParts, command: Command) -> Outcome:
    if parts.demote is None:
        return refused("demote_leader: no HA coordinator in this process")
    if not parts.active():
        return not_applicable("demote_leader: not the leader")
    if parts.demote(_why(command)):
        return done("stepped down after draining the signal in hand; a successor takes over")
    return not_applicable("demote_leader: no longer the leader")
