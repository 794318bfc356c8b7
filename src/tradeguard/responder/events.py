"""Alert events: the unit the responder stores, deduplicates and notifies about.

A webhook delivery is a group of alerts; the history keeps one row per alert *transition*
(this alert, this occurrence, firing or resolved). Turning the payload into events in one place
keeps the history backends, the channels and the HTTP API agreeing on field names and on the
idempotency key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tradeguard.responder.payload import AlertStatus, WebhookPayload


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AlertEvent:
    """One firing or resolved transition of one alert occurrence.

    ``(fingerprint, starts_at, status)`` identifies it: Alertmanager replicas (and several
    receivers routing the same alert) deliver the same transition more than once, and it must
    count once.
    """

    fingerprint: str
    alertname: str
    status: AlertStatus
    starts_at: datetime
    ends_at: datetime | None
    severity: str | None
    component: str | None
    instance: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    received_at: datetime = field(default_factory=utc_now)
    receiver: str = ""

    @property
    def key(self) -> tuple[str, datetime, str]:
        """The idempotency key (fingerprint, startsAt, status)."""
        return (self.fingerprint, self.starts_at, self.status)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (ISO-8601 UTC timestamps), as the HTTP API returns it."""
        return {
            "fingerprint": self.fingerprint,
            "alertname": self.alertname,
            "status": self.status,
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at) if self.ends_at else None,
            "severity": self.severity,
            "component": self.component,
            "instance": self.instance,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "received_at": iso(self.received_at),
            "receiver": self.receiver,
        }


def iso(moment: datetime) -> str:
    """Fixed-width UTC ISO-8601 with microseconds: sorts as text the way it sorts in time.

    ``isoformat`` rather than ``strftime``: the same text (years 2000-2200 are four digits
    either way) for a third less time, and every stored event and outbox entry pays it."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_iso(text: str) -> datetime:
    """The inverse of :func:`iso` (also accepts any ISO-8601 string with an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def events_from_payload(
    payload: WebhookPayload, received_at: datetime | None = None
) -> list[AlertEvent]:
    """One event per alert of the delivery, in payload order, all stamped ``received_at``."""
    now = received_at or utc_now()
    events = []
    for alert in payload.alerts:
        labels = alert.labels
        events.append(
            AlertEvent(
                fingerprint=alert.fingerprint.lower(),
                alertname=alert.alertname,
                status=alert.status,
                starts_at=alert.starts_at.astimezone(UTC),
                ends_at=alert.ends_at.astimezone(UTC) if alert.ends_at else None,
                severity=labels.get("severity"),
                component=labels.get("component"),
                instance=labels.get("instance"),
                labels=dict(labels),
                annotations=dict(alert.annotations),
                received_at=now,
                receiver=payload.receiver,
            )
        )
    return events
