"""PagerDuty through its Events API v2: a critical alert triggers an incident, its resolved
notice resolves the same incident.

Apprise's PagerDuty plugin can only trigger, so every resolved alert would leave an incident
open for someone to close by hand. Here the alert's fingerprint is the ``dedup_key``: repeated
triggers of one alert stay one incident, and the resolve closes it. Only criticals page
(DESIGN.md 3: critical to the pager); a team that lets Alertmanager's own ``pagerduty_configs``
page should leave this channel off, or it pages twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tradeguard.responder.auth import read_secret
from tradeguard.responder.channels import ChannelError
from tradeguard.responder.notification import Notification

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
PAGED_SEVERITIES = frozenset({"critical"})
SUMMARY_LIMIT = 1024  # the Events API truncates longer summaries


def read_routing_key(path: Path) -> str:
    """The integration (routing) key from its file; ConfigError if unreadable or empty."""
    return read_secret(path, "PagerDuty routing key")


class PagerDutyChannel:
    """Sends trigger and resolve events for critical alerts to the Events API v2."""

    name = "pagerduty"

    def __init__(self, routing_key: str, url: str = EVENTS_URL, timeout: float = 5.0) -> None:
        self.url = url
        self._key = routing_key
        self._client = httpx.Client(timeout=timeout)

    def event(self, n: Notification) -> dict[str, Any]:
        """The Events API v2 body for ``n``."""
        if n.status == "resolved":
            return {"routing_key": self._key, "event_action": "resolve", "dedup_key": n.fingerprint}
        details: dict[str, Any] = {"description": n.description, "labels": dict(n.labels)}
        if n.runbook_url:
            details["runbook_url"] = n.runbook_url
        if n.held_back:
            details["held_back_by_throttling"] = list(n.held_back)
        return {
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

    def send(self, notification: Notification) -> None:
        if notification.severity not in PAGED_SEVERITIES:
            return  # warnings and info go to chat, not to the pager
        try:
            reply = self._client.post(self.url, json=self.event(notification))
        except httpx.HTTPError as exc:
            raise ChannelError(f"pagerduty channel: {exc}") from exc
        if reply.status_code == 429:
            raise ChannelError("pagerduty channel: rate limited by the Events API (429)")
        if reply.status_code // 100 != 2:
            raise ChannelError(f"pagerduty channel: the Events API answered {reply.status_code}")
