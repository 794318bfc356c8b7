"""Supervises terminal/worker instances: starts them, watches them, restarts them a bounded
number of times, and keeps their state (RIS) and figures (``tradeguard_instance_*``) current.

Each instance is a child process (a MetaTrader terminal bridge, a broker gateway, a worker)
described by an :class:`InstanceSpec`. Once a second the supervisor moves each one through the
RIS state machine (seed 001):

- ``starting``/``recovering`` -> ``running`` once it has stayed up for ``stable_seconds``: a
  process that dies right after each restart never counts as recovered, so its recovery
  attempts add up instead of resetting;
- ``running`` <-> ``degraded`` on its memory budget (over 80 %);
- any live state -> ``failed`` when the process exits;
- ``failed`` -> ``recovering`` (one more attempt, counted) and a restart after a backoff that
  doubles with each attempt (1 s, 2 s, 4 s by default), until the attempts
  exceed ``max_recovery_attempts`` (3, seed 001: "recovery_attempts > 3: stop instance and
  notify"): then ``stopped``, for a human, and the InstanceRecoveryFailed alert fires.

Remediation reaches an instance through its supervisor only (``restart`` and ``stop``, run by
the engine's command handlers): a restart stops the process and starts it afresh, with a full
set of recovery attempts; a stop leaves it ``stopped`` and unrestarted until a restart.

What only the instance knows, its order queue and its round trip to the broker, it reports
itself into its RIS hash (``HSET {prefix}instance:{id} queue_length N network_latency_seconds
S``); the supervisor copies those into the metrics with what it measures from /proc.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redis.exceptions import RedisError

from tradeguard.bus.connection import CONNECTION_ERRORS
from tradeguard.bus.instance_state import (
    IllegalTransition,
    InstanceEvent,
    InstanceRegistry,
    InstanceState,
)
from tradeguard.config import InstanceSpec
from tradeguard.errors import TradeguardError
from tradeguard.instances.probe import Sample, cpu_ratio, sample
from tradeguard.metrics.catalog import Metrics
from tradeguard.process.managed import ManagedProcess

log = logging.getLogger(__name__)
S = InstanceState
DEGRADED_MEMORY_RATIO = 0.8
# Figures an instance reports into its own RIS hash.
REPORTED_FIGURES = ("queue_length", "network_latency_seconds")
# A tick that meets one of these for an instance logs it and tries again at the next tick.
STEP_ERRORS: tuple[type[Exception], ...] = (TradeguardError, RedisError, *CONNECTION_ERRORS)


@dataclass
class _Tracked:
    spec: InstanceSpec
    process: ManagedProcess
    started_at: float = -math.inf
    failed_at: float = -math.inf
    last_sample: Sample | None = None
    had_sockets: bool = False
    gave_up: bool = False
    held: bool = False  # stopped on request (stop_instance): not started until a restart
    figures: dict[str, float] = field(default_factory=dict)


class InstanceSupervisor:
    """Drives every configured instance through the RIS state machine, once per ``interval``."""

    def __init__(
        self,
        specs: Sequence[InstanceSpec],
        registry: InstanceRegistry,
        workdir: Path,
        metrics: Metrics | None = None,
        max_recovery_attempts: int = 3,
        stable_seconds: float = 5.0,
        interval: float = 1.0,
        restart_backoff: float = 1.0,
    ) -> None:
        ids = [s.id for s in specs]
        if len(set(ids)) != len(ids):
            raise TradeguardError(f"instance ids must be unique, got {ids}")
        self.registry = registry
        self.metrics = metrics
        self.max_recovery_attempts = max_recovery_attempts
        self.stable_seconds = stable_seconds
        self.interval = interval
        self.restart_backoff = restart_backoff
        self._tracked = {
            s.id: _Tracked(
                s,
                ManagedProcess(
                    f"instance-{s.id}", s.command, workdir / s.id, env=s.env, start_timeout=5
                ),
            )
            for s in specs
        }
        for instance in self._tracked:
            if metrics is not None:
                metrics.instances.add(instance)
        # One instance is moved by one thread at a time: the loop's tick, or a remediation.
        self._lock = threading.RLock()

    # ---- loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Supervise until ``stop`` is set, then stop every instance."""
        while not stop.is_set():
            self.tick()
            stop.wait(self.interval)
        self.stop_all()

    def tick(self) -> None:
        for tracked in self._tracked.values():
            try:
                with self._lock:
                    self._step(tracked)
            except STEP_ERRORS as exc:
                log.warning("instance %s: %s; trying again next tick", tracked.spec.id, exc)

    def stop_all(self) -> None:
        for tracked in self._tracked.values():
            with self._lock:
                tracked.process.stop()
                try:
                    self._move(tracked, S.STOPPED)
                except STEP_ERRORS as exc:
                    log.warning("instance %s: could not record the stop: %s", tracked.spec.id, exc)

    def process(self, instance: str) -> ManagedProcess:
        """The child process of ``instance`` (for tests and chaos scenarios)."""
        return self._tracked[instance].process

    def supervises(self, instance: str) -> bool:
        return instance in self._tracked

    # ---- on request (remediation) ----------------------------------------------------------
    def restart(self, instance: str, why: str = "restart requested") -> bool:
        """Stop ``instance``'s process and start it again; whether it is running after.

        An instance given up on, stopped on request, or running starts afresh (``starting``,
        recovery attempts back to 0). One the supervisor is recovering (``failed`` or
        ``recovering``) is restarted as one of its own attempts: a restart from outside (the
        responder's for InstanceFailed, say) must not hand a crash loop a fresh set of attempts
        each time, or the limit would never end it; over the limit it is stopped, as by the
        supervisor itself.

        KeyError for an instance this supervisor does not run; a Redis error if its state
        cannot be recorded (the next tick then finds the process gone and recovers it as after
        a crash)."""
        t = self._tracked[instance]
        with self._lock:
            log.warning("instance %s: restarting (%s)", instance, why)
            t.process.stop()
            state = self.registry.state(t.spec.id)
            if not (t.gave_up or t.held) and state in (S.FAILED, S.RECOVERING):
                if state is S.RECOVERING:
                    self._move(t, S.FAILED, reason=why)
                t.failed_at = time.monotonic()
                self._recover(t)
                return t.process.running
            self._move(t, S.STOPPED, reason=why)
            t.gave_up = t.held = False
            if self.metrics is not None:
                self.metrics.instances.increment_restarts(instance)
            self._launch(t, fresh=True)
            return t.process.running

    def gave_up(self, instance: str) -> bool:
        """Whether the supervisor stopped ``instance`` after too many recovery attempts."""
        return self._tracked[instance].gave_up

    def stop(self, instance: str, why: str = "stop requested") -> None:
        """Stop ``instance``'s process and keep it ``stopped`` (not restarted) until
        :meth:`restart`. KeyError for an instance this supervisor does not run."""
        t = self._tracked[instance]
        with self._lock:
            log.warning("instance %s: stopping, not to be restarted (%s)", instance, why)
            t.held = True
            t.process.stop()
            self._move(t, S.STOPPED, reason=why)

    # ---- one instance, one tick ------------------------------------------------------------
    def _step(self, t: _Tracked) -> None:
        state = self.registry.state(t.spec.id)
        if t.started_at == -math.inf and state not in (None, S.STOPPED):
            # Left by an earlier supervisor, whose children died with it: start from stopped.
            self._move(t, S.STOPPED, reason="supervisor restarted")
            state = S.STOPPED
        alive = t.process.running
        now = time.monotonic()
        if state in (None, S.STOPPED):
            if not (t.gave_up or t.held):
                self._launch(t, fresh=True)
        elif state in (S.STARTING, S.RECOVERING):
            if not alive:
                self._fail(t)
            else:
                self._measure(t)
                if now - t.started_at >= self.stable_seconds:
                    self._move(t, S.RUNNING)
        elif state in (S.RUNNING, S.DEGRADED):
            if not alive:
                self._fail(t)
                return
            ratio = self._measure(t)
            if state is S.RUNNING and ratio > DEGRADED_MEMORY_RATIO:
                self._move(t, S.DEGRADED, reason="memory")
            elif state is S.DEGRADED and ratio <= DEGRADED_MEMORY_RATIO:
                self._move(t, S.RUNNING)
        elif state is S.FAILED:
            attempts = int(self.registry.info(t.spec.id).get("recovery_attempts", "0"))
            if now - t.failed_at >= self.restart_backoff * 2**attempts:  # 1 s, 2 s, 4 s, ...
                self._recover(t)

    def _launch(self, t: _Tracked, fresh: bool) -> None:
        if fresh:
            # A (re)started supervisor gives every instance a full set of attempts.
            self._move(t, S.STARTING, recovery_attempts=0)
            self._figures(t, recovery_attempts=0.0)
        try:
            t.process.start()
        except (TradeguardError, OSError) as exc:  # exits at once, not executable, ...
            log.error("instance %s did not start: %s", t.spec.id, exc)
        t.started_at = time.monotonic()
        t.last_sample = None
        t.had_sockets = False  # a new process has yet to open its connections

    def _fail(self, t: _Tracked) -> None:
        code = t.process.returncode
        log.error("instance %s exited with code %s", t.spec.id, code)
        self._move(t, S.FAILED, exit_code=-1 if code is None else code)
        t.failed_at = time.monotonic()

    def _recover(self, t: _Tracked) -> None:
        self._move(t, S.RECOVERING)  # counts the attempt
        attempts = int(self.registry.info(t.spec.id).get("recovery_attempts", "0"))
        if attempts > self.max_recovery_attempts:
            log.error(
                "instance %s: %d recovery attempts, more than %d: stopped until a human looks",
                t.spec.id,
                attempts,
                self.max_recovery_attempts,
            )
            t.gave_up = True
            self._move(t, S.STOPPED, reason="recovery attempts exhausted")
            return
        log.warning("instance %s: recovery attempt %d, restarting", t.spec.id, attempts)
        if self.metrics is not None:
            self.metrics.instances.increment_restarts(t.spec.id)
        self._launch(t, fresh=False)

    def _move(self, t: _Tracked, new: InstanceState, **fields: str | int | float) -> None:
        """Transition if the state machine allows it from where the instance is; else nothing
        (already there, or a move the current state rules out)."""
        try:
            self.registry.transition(t.spec.id, new, **fields)
        except IllegalTransition:
            return

    # ---- figures ---------------------------------------------------------------------------
    def _measure(self, t: _Tracked) -> float:
        """Sample the process and publish its figures; the memory ratio."""
        pid = t.process.pid
        now = sample(pid) if pid is not None else None
        if now is None:
            return 0.0
        memory = now.rss_bytes / t.spec.memory_budget_bytes
        cpu = cpu_ratio(t.last_sample, now) if t.last_sample is not None else 0.0
        t.last_sample = now
        if t.had_sockets and now.sockets == 0:
            self.registry.report(t.spec.id, InstanceEvent.SOCKET_FAILURE, "no open sockets")
        t.had_sockets = now.sockets > 0
        reported = self.registry.info(t.spec.id)
        own = {}
        for name in REPORTED_FIGURES:
            try:
                own[name] = float(reported.get(name, 0.0))
            except ValueError:
                own[name] = 0.0  # a malformed report must not stop supervision
        self._figures(
            t,
            cpu_ratio=cpu,
            memory_ratio=memory,
            socket_connections=float(now.sockets),
            load_average=os.getloadavg()[0],
            **own,
        )
        return memory

    def _figures(self, t: _Tracked, **values: float) -> None:
        t.figures.update(values)
        if self.metrics is not None:
            self.metrics.instances.update(t.spec.id, **values)
