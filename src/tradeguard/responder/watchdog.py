"""The dead man's switch: the responder notices when alerts stop reaching it at all.

Prometheus fires an always-on ``Watchdog`` alert, and Alertmanager's route delivers it to the
responder every few seconds. Each firing delivery is a heartbeat of the whole alert path (rule
evaluation, Prometheus → Alertmanager, Alertmanager → responder). When none has arrived for
``timeout`` seconds the path is broken somewhere, and every later fault would be silent; so the
responder raises ``AlertPathBroken`` itself, through its own channels (the outbox, not
Alertmanager), saying since when, and resolves it when heartbeats resume.

A *resolved* Watchdog is Alertmanager letting the alert expire because its Prometheus stopped
sending it: when that leaves no source firing, the path is broken at once, without waiting out
the timeout (Alertmanager keeps an alert firing for a while after its last refresh, so the
timeout alone would notice a dead Prometheus late).

Heartbeats are not stored in the alert history (one per delivery would bury it); the switch's
own firing and resolved events are, like any alert's, so the report counts them and a restarted
responder knows the path was already broken. A responder that has never seen a heartbeat
starts "waiting" and counts the timeout from its own start: a missing Watchdog route is a broken
alert path too.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tradeguard.responder.events import AlertEvent, iso

WATCHDOG_ALERT = "Watchdog"
ALERT_PATH_ALERT = "AlertPathBroken"
ALERT_PATH_FINGERPRINT = hashlib.sha256(ALERT_PATH_ALERT.encode()).hexdigest()[:16]
RECEIVER = "dead-mans-switch"
RUNBOOK = "docs/runbooks/AlertPathBroken.md"
DEFAULT_TIMEOUT_SECONDS = 120.0

PathState = Literal["off", "waiting", "ok", "broken"]


@dataclass(frozen=True)
class AlertPathStatus:
    """What /healthz, /metrics and ``tradeguard status`` show of the switch."""

    state: PathState
    since: datetime | None
    timeout_seconds: float
    last_watchdog_at: datetime | None

    @property
    def up(self) -> bool:
        return self.state != "broken"

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": iso(self.since) if self.since else None,
            "timeout_seconds": self.timeout_seconds,
            "last_watchdog_at": iso(self.last_watchdog_at) if self.last_watchdog_at else None,
        }


def _labels() -> dict[str, str]:
    return {
        "alertname": ALERT_PATH_ALERT,
        "severity": "critical",
        "component": "meta",
        "service": "responder",
    }


class DeadMansSwitch:
    """Heartbeats in, AlertPathBroken events out; thread-safe (requests and the ticker)."""

    def __init__(
        self,
        timeout_seconds: float,
        started_at: datetime,
        broken_since: datetime | None = None,
    ) -> None:
        self.timeout = timedelta(seconds=timeout_seconds)
        self._started_at = started_at
        self._last: datetime | None = None
        self._state: PathState = "off" if timeout_seconds <= 0 else "waiting"
        self._since: datetime | None = started_at
        if broken_since is not None and self._state != "off":
            self._state, self._since = "broken", broken_since
        self._recovered_at: datetime | None = None
        self._live: set[str] = set()  # sources whose last Watchdog delivery was firing
        self._gone_at: datetime | None = None  # the last live source resolved at
        self._excused_until = started_at  # see excuse()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.timeout > timedelta(0)

    def heartbeat(self, at: datetime, source: str = "") -> None:
        """A firing Watchdog from ``source`` (its fingerprint) arrived at ``at``."""
        with self._lock:
            self._last = at if self._last is None else max(self._last, at)
            self._live.add(source)
            if self._state == "broken":
                self._recovered_at = at
            elif self._state == "waiting":
                self._state, self._since = "ok", at

    def gone(self, at: datetime, source: str = "") -> None:
        """A resolved Watchdog from ``source`` arrived: Alertmanager let it expire, because the
        Prometheus that fires it stopped sending it. When no source is left firing, the path is
        broken now, without waiting out the timeout."""
        with self._lock:
            self._live.discard(source)
            if not self._live:
                self._gone_at = at

    def excuse(self, until: datetime) -> None:
        """The responder itself was not running (frozen, suspended) until ``until``: the
        heartbeats it missed meanwhile say nothing about the path (ResponderDown, routed around
        the responder, covers that time), so the timeout counts from ``until`` at the earliest."""
        with self._lock:
            self._excused_until = max(self._excused_until, until)

    def check(self, now: datetime) -> list[AlertEvent]:
        """The events the state change since the last check calls for (usually none)."""
        if not self.enabled:
            return []
        with self._lock:
            if self._state == "broken" and self._recovered_at is not None:
                events = [self._event("resolved", self._since or now, now)]
                self._state, self._since, self._recovered_at = "ok", self._recovered_at, None
                self._gone_at = None
                return events
            if self._state in ("waiting", "ok"):
                reference = max(self._last or self._started_at, self._excused_until)
                if now - reference >= self.timeout or self._gone_at is not None:
                    self._state, self._since, self._gone_at = "broken", reference, None
                    return [self._event("firing", reference, now)]
            return []

    def status(self) -> AlertPathStatus:
        with self._lock:
            return AlertPathStatus(
                self._state, self._since, self.timeout.total_seconds(), self._last
            )

    def _event(
        self, status: Literal["firing", "resolved"], since: datetime, now: datetime
    ) -> AlertEvent:
        if self._last is not None and since == self._last:
            heard = f"the last Watchdog alert arrived at {iso(since)}"
        elif since == self._started_at:
            heard = f"no Watchdog alert has arrived since the responder started at {iso(since)}"
        else:
            heard = f"none has arrived since the responder ran again at {iso(since)}"
        seconds = int(self.timeout.total_seconds())
        annotations = {
            "summary": f"The alert path is broken: no Watchdog alert for {seconds}s ({heard}).",
            "description": (
                "Prometheus fires the always-on Watchdog alert and Alertmanager routes it to the "
                f"responder every few seconds; none has arrived for over {seconds}s, so "
                "Prometheus, every Alertmanager, or the route to the responder is down and "
                "other alerts cannot reach anyone either. This notice comes from the responder "
                "itself, not through Alertmanager."
            ),
            "runbook_url": RUNBOOK,
            "resolved_summary": "Watchdog alerts arrive again: the alert path works.",
        }
        return AlertEvent(
            fingerprint=ALERT_PATH_FINGERPRINT,
            alertname=ALERT_PATH_ALERT,
            status=status,
            starts_at=since,
            ends_at=now if status == "resolved" else None,
            severity="critical",
            component="meta",
            instance=None,
            labels=_labels(),
            annotations=annotations,
            received_at=now,
            receiver=RECEIVER,
        )


def broken_since(firing: Sequence[AlertEvent]) -> datetime | None:
    """When the path broke, if history holds an unresolved AlertPathBroken (a restart)."""
    for event in firing:
        if event.alertname == ALERT_PATH_ALERT and event.fingerprint == ALERT_PATH_FINGERPRINT:
            return event.starts_at.astimezone(UTC)
    return None
