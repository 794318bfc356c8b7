"""The responder's long-lived parts behind the HTTP surface, started and stopped together.

A request only stores; everything that takes time or outlives a request runs here: the group
committer's writer thread (inside :class:`~tradeguard.responder.intake.Intake`), the outbox
sender, and a one-second ticker for the dead man's switch, the gauges and history retention
(pruned on the first tick and then hourly: often enough that each run deletes little, rarely
enough that it costs nothing).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError

from tradeguard.bus.commands import CommandBus
from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.errors import ConfigError
from tradeguard.metrics.catalog import Metrics
from tradeguard.responder.channels import Channel
from tradeguard.responder.delivery import DeliverySender
from tradeguard.responder.events import AlertEvent
from tradeguard.responder.history.base import AlertHistory, HistoryError
from tradeguard.responder.intake import Intake
from tradeguard.responder.remediation import RemediationController
from tradeguard.responder.roster import RosterSource
from tradeguard.responder.settings import ResponderSettings
from tradeguard.responder.throttle import Throttle
from tradeguard.responder.watchdog import ALERT_PATH_FINGERPRINT, DeadMansSwitch, broken_since

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0
STALL_SECONDS = 5.0  # a tick this late means the process itself was stopped
PRUNE_INTERVAL = timedelta(hours=1)
# Switch events kept for a store that keeps failing: it raises one per state change, and a
# history down for days while heartbeats come and go must not grow this without bound.
MAX_UNSTORED = 100


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_remediation(
    settings: ResponderSettings,
    history: AlertHistory,
    metrics: Metrics,
    store: Callable[[list[AlertEvent]], object],
    switch: DeadMansSwitch,
    clock: Callable[[], datetime],
) -> RemediationController | None:
    """The remediation controller, or None when no Redis is configured for its commands (the
    responder then only notifies). ConfigError on a bad action list."""
    policy = settings.remediation_policy()  # validated even when remediation is off
    url = settings.commands_redis_url()
    if url is None:
        return None
    bus = CommandBus(make_client(url, socket_timeout=2.0), Keys(settings.key_prefix))
    return RemediationController(
        history,
        bus,
        policy,
        owner=default_sender_id(settings),
        metrics=metrics,
        store=store,
        alert_path_broken=lambda: not switch.status().up,
        clock=clock,
        command_timeout=settings.remediation_command_timeout_seconds,
    )


def default_sender_id(settings: ResponderSettings) -> str:
    """Stable across restarts on one host and port, so a restarted sender takes back its own
    claims at once; distinct between replicas sharing one PostgreSQL history."""
    return settings.sender_id or f"{socket.gethostname()}:{settings.port}"


class ResponderRuntime:
    """Intake, sender and dead man's switch over one history and one set of channels."""

    def __init__(
        self,
        settings: ResponderSettings,
        history: AlertHistory,
        channels: Sequence[Channel],
        metrics: Metrics,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        names = [c.name for c in channels]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:  # the outbox addresses channels by name
            raise ConfigError(f"two channels share the name {', '.join(doubled)}")
        self.history = history
        self.metrics = metrics
        self._clock = clock
        started = clock()
        try:
            restored = broken_since(history.firing(ALERT_PATH_FINGERPRINT))
        except HistoryError as exc:
            log.error("cannot read the alert path's last state: %s", exc)
            restored = None
        self.switch = DeadMansSwitch(settings.watchdog_timeout_seconds, started, restored)
        throttle = (
            Throttle(settings.throttle_per_minute, settings.throttle_window_seconds)
            if settings.throttle_per_minute
            else None
        )
        # Who is on call when: each notification names them as it goes out, and the report
        # and the console count each alert against them (the fatigue index).
        self.roster = RosterSource(settings.roster_file)
        roster = self.roster
        self.sender = DeliverySender(
            history,
            channels,
            metrics,
            throttle,
            owner=default_sender_id(settings),
            deadline_seconds=settings.delivery_deadline_seconds,
            clock=clock,
            runbook_base_url=settings.runbook_base_url,
            on_call=(lambda moment: roster.current().on_call(moment))
            if settings.roster_file is not None
            else None,
        )
        self.intake = Intake(history, channels, metrics, self.switch, self.sender.wake)
        self.remediation = build_remediation(
            settings, history, metrics, self.intake.store, self.switch, clock
        )
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        self._unstored: list[AlertEvent] = []
        self._retention = (
            timedelta(days=settings.retention_days) if settings.retention_days > 0 else None
        )
        self._next_prune: datetime | None = None  # None: at the first tick
        self.ticks = 0  # passes of the ticker so far (what a caller waits on to see one pass)

    def start(self) -> None:
        self._stopping.clear()
        self.sender.start()
        self._ticker = threading.Thread(target=self._tick_loop, name="responder-tick", daemon=True)
        self._ticker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking events, then flush the outbox once (held notifications included)."""
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(timeout)
            self._ticker = None
        self.intake.committer.stop(timeout)
        self.sender.stop(flush=True, timeout=timeout)

    def tick(self) -> None:
        """Check the dead man's switch and publish its state; remediate; prune history when
        due."""
        now = self._clock()
        events = self.switch.check(now)
        for event in events:
            log.error(
                "%s %s: %s", event.alertname, event.status, event.annotations.get("summary", "")
            )
        # Kept until stored: a history that fails now must not lose the switch's notice.
        self._unstored.extend(events)
        del self._unstored[:-MAX_UNSTORED]
        try:
            if self._unstored:
                self.intake.store(list(self._unstored))
                self._unstored.clear()
            status = self.switch.status()
            self.metrics.responder_alert_path_up.set(1 if status.up else 0)
            if status.last_watchdog_at is not None:
                self.metrics.responder_watchdog_last.set(status.last_watchdog_at.timestamp())
        finally:
            self._remediate()
            self.prune_if_due(now)

    def _remediate(self) -> None:
        """One pass of the remediation controller; its failures are its own (logged, tried
        again at the next tick), never the switch's or retention's."""
        if self.remediation is None:
            return
        try:
            self.remediation.tick()
        except (HistoryError, RedisError) as exc:
            log.error("remediation pass failed: %s", exc)
        except Exception:
            log.exception("remediation pass failed")

    def prune_if_due(self, now: datetime) -> int:
        """Delete history older than the retention, at most once per PRUNE_INTERVAL (and at
        the first call); the rows deleted. A failure is logged and tried at the next interval:
        retention is housekeeping, and a failing store is reported by everything else."""
        if self._retention is None:
            return 0
        if self._next_prune is not None and now < self._next_prune:
            return 0
        self._next_prune = now + PRUNE_INTERVAL
        cutoff = now - self._retention
        try:
            deleted = self.history.prune(cutoff)
        except HistoryError as exc:
            log.error("pruning history older than %s failed: %s", cutoff.isoformat(), exc)
            return 0
        if deleted:
            log.info(
                "pruned %d alert events and notifications older than %s",
                deleted,
                cutoff.isoformat(),
            )
        return deleted

    def _tick_loop(self) -> None:
        last = time.monotonic()
        while not self._stopping.wait(TICK_SECONDS):
            gap, last = time.monotonic() - last, time.monotonic()
            if gap > STALL_SECONDS:  # this process did not run (SIGSTOP, a suspended host)
                log.warning("the responder did not run for %.0fs; not judging the path for it", gap)
                self.switch.excuse(self._clock())
            try:
                self.tick()
            except HistoryError as exc:  # the switch keeps its state and tries again
                log.error("storing the alert path's state failed: %s", exc)
            except Exception:
                log.exception("the dead man's switch check failed")
            self.ticks += 1
