"""PagerDuty through its Events API v2: a critical alert triggers an incident, its resolved
notice resolves the same incident.

Apprise's PagerDuty plugin can only trigger, so every resolved alert would leave an incident
open for someone to close by hand. Here the alert's fingerprint is the ``dedup_key``: repeated
triggers of one alert stay one incident, and the resolve closes it. Only criticals page
(DESIGN.md 3: critical to the pager); a team that lets Alertmanager's own ``pagerduty_configs``
page should leave this channel off, or it pages twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from tradeguard.responder.channels import ChannelError
from tradeguard.responder.notification import Notification
from tradeguard.secret_files import read_secret

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
PAGED_SEVERITIES = frozenset({"critical"})
SUMMARY_LIMIT = 1024  # the Events API truncates longer summaries


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from now; None if absent
    or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def read_routing_key(path: Path) -> str:
    """The integration (routing) key from its file; ConfigError if unreadable or empty."""
    return read_secret(path, "PagerDuty routing key")


class PagerDutyChannel:
    """Sends trigger and resolve events for critical alerts to the Events API v2."""

    name = "pagerduty"
    is_pager = True

    def __init__(self, routing_key: str, url: str = EVENTS_URL, timeout: float = 5.0) -> None:
        self.url = url
        self._key = routing_key
        self._client = httpx.Client(timeout=timeout)

    def event(self, n: Notification) -> dict[str, Any]:
        """The Events API v2 body for ``n``."""
        if n.status == "resolved":
            # The Events API takes nothing but the key on a resolve (a payload is ignored), so
            # what remediation did shows here only on a trigger sent after an attempt; the
            # resolved notice of the other channels carries it.
            return {"routing_key": self._key, "event_action": "resolve", "dedup_key": n.fingerprint}
        details: dict[str, Any] = {"description": n.description, "labels": dict(n.labels)}
        if n.runbook_url:
            details["runbook_url"] = n.runbook_url
        if n.remediation:
            details["remediation"] = n.remediation
        if n.on_call:
            details["on_call"] = n.on_call
        if n.held_back:
            details["held_back_by_throttling"] = list(n.held_back)
        event: dict[str, Any] = {
            "routing_key": self._key,
            "event_action": "trigger",
            "dedup_key": n.fingerprint,
            "payload": {
                "summary": n.headline[:SUMMARY_LIMIT],
                "source": n.instance or "tradeguard",
                "severity": "critical",
                "component": n.component or "",
                "group": n.labels.get("service", ""),
                "class": n.alertname,
                "custom_details": details,
            },
        }
        if n.runbook_url and n.runbook_url.startswith(("https://", "http://")):
            # An incident's links are buttons in PagerDuty's app: the runbook one tap away.
            event["links"] = [{"href": n.runbook_url, "text": f"Runbook: {n.alertname}"}]
        return event

    def accepts(self, notification: Notification) -> bool:
        """Criticals only: warnings and info go to chat, not to the pager."""
        return notification.severity in PAGED_SEVERITIES

    def send(self, notification: Notification) -> None:
        try:
            reply = self._client.post(self.url, json=self.event(notification))
        except httpx.HTTPError as exc:
            raise ChannelError(f"pagerduty channel: {exc}") from exc
        status = reply.status_code
        if status == 429:
            raise ChannelError(
                "pagerduty channel: rate limited by the Events API (429)",
                retry_after=retry_after_seconds(reply.headers.get("retry-after")),
            )
        if status // 100 != 2:
            # 400 is a malformed event: resending it cannot help. Anything else (5xx, an
            # auth or proxy hiccup) may pass later.
            raise ChannelError(
                f"pagerduty channel: the Events API answered {status}", permanent=status == 400
            )
