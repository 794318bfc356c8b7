"""The alert responder: receives Alertmanager's webhooks, keeps the alert history, notifies.

Intake (v1): ``payload`` validates a delivery, ``auth`` checks who sent it, ``events`` turns it
into firing/resolved events, ``history`` stores them idempotently (SQLite or PostgreSQL),
``intake`` notifies the new ones through ``dispatch`` and the ``channels``, ``app`` is the HTTP
surface and ``service`` runs it. Throttling, apprise fan-out, remediation and the effectiveness
report plug in behind ``dispatch`` and ``history`` without changing the intake.
"""

from tradeguard.responder.payload import (
    PayloadError,
    PayloadJSONError,
    PayloadValidationError,
    WebhookPayload,
    parse_payload,
)

__all__ = [
    "PayloadError",
    "PayloadJSONError",
    "PayloadValidationError",
    "WebhookPayload",
    "parse_payload",
]
