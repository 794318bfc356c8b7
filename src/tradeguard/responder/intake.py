"""The intake pipeline after a payload is validated: store every event, notify the new ones.

Kept apart from the HTTP layer so the pipeline's one rule is visible in one place (and usable
without a server): an event is notified only if this call stored it first. Duplicates
(another Alertmanager replica, another receiver of the same alert, a retry) are stored once and
notified once, whichever delivery wins the race, because "new" is decided by the history
store's unique constraint, not by anything in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from tradeguard.metrics.catalog import Metrics
from tradeguard.responder.dispatch import Notifier
from tradeguard.responder.events import AlertEvent, events_from_payload
from tradeguard.responder.history.base import AlertHistory
from tradeguard.responder.notification import Notification
from tradeguard.responder.payload import WebhookPayload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    """Counts of one delivery's events: newly stored, and already known."""

    accepted: int
    duplicates: int
    new_events: tuple[AlertEvent, ...] = ()


class Intake:
    """Stores a validated payload's events in one transaction, then notifies the new ones."""

    def __init__(self, history: AlertHistory, notifier: Notifier, metrics: Metrics) -> None:
        self.history = history
        self.notifier = notifier
        self._stored = {
            "firing": metrics.responder_alerts.labels("firing"),
            "resolved": metrics.responder_alerts.labels("resolved"),
        }

    def handle(self, payload: WebhookPayload, received_at: datetime | None = None) -> IntakeResult:
        """Raises HistoryError (nothing stored, nothing notified) if the store fails."""
        events = events_from_payload(payload, received_at)
        flags = self.history.insert_many(events)
        new = tuple(e for e, is_new in zip(events, flags, strict=True) if is_new)
        for event in new:
            self._stored[event.status].inc()
            log.info(
                "alert %s %s (%s) from receiver %s",
                event.alertname,
                event.status,
                event.fingerprint,
                event.receiver,
            )
        for event in new:
            self.notifier.notify(Notification.from_event(event))
        return IntakeResult(len(new), len(events) - len(new), new)
