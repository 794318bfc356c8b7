"""What a person is told about one alert event, independent of the channel that tells them.

Channels (console, JSONL, later apprise URLs and PagerDuty) render the same
:class:`Notification`, so a firing notice reads the same everywhere and a resolved notice always
says what recovered: the rule's ``resolved_summary`` annotation when it has one ("latency back
below 5 ms"), else the threshold quoted in its description, and how long it lasted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tradeguard.responder.events import AlertEvent
from tradeguard.responder.payload import AlertStatus

# Rule descriptions in deploy/prometheus/rules quote their threshold as "(threshold 80%)" or
# "(threshold: more than 5)".
_THRESHOLD = re.compile(r"\(threshold:?\s*([^)]+)\)", re.IGNORECASE)
HELD_BACK_LISTED = 10  # a summary names at most this many held-back notifications


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _recovered(event: AlertEvent) -> str:
    """One sentence on what recovered, from the rule's own words where it provides them."""
    subject = event.alertname + (f" on {event.instance}" if event.instance else "")
    lasted = f" after {_duration(event.ends_at - event.starts_at)}" if event.ends_at else ""
    explicit = event.annotations.get("resolved_summary")
    if explicit:
        return f"{subject} recovered{lasted}: {explicit}"
    match = _THRESHOLD.search(event.annotations.get("description", ""))
    back = f": back within threshold ({match.group(1).strip()})" if match else ""
    was = event.annotations.get("summary")
    return f"{subject} recovered{lasted}{back}" + (f" (was: {was})" if was else "")


@dataclass(frozen=True)
class Notification:
    """One notice for one new alert event."""

    status: AlertStatus
    alertname: str
    severity: str
    instance: str | None
    component: str | None
    summary: str
    description: str
    runbook_url: str | None
    recovered: str | None  # resolved notices only: what recovered, in one sentence
    fingerprint: str
    starts_at: datetime
    ends_at: datetime | None
    receiver: str
    labels: Mapping[str, str] = field(default_factory=dict)
    # Notifications of the same category that throttling held back and this one now reports
    # (see tradeguard.responder.throttle), oldest first, as one-line descriptions.
    held_back: tuple[str, ...] = ()

    @classmethod
    def from_event(cls, event: AlertEvent) -> Notification:
        annotations = event.annotations
        return cls(
            status=event.status,
            alertname=event.alertname,
            severity=event.severity or "none",
            instance=event.instance,
            component=event.component,
            summary=annotations.get("summary", ""),
            description=annotations.get("description", ""),
            runbook_url=annotations.get("runbook_url"),
            recovered=_recovered(event) if event.status == "resolved" else None,
            fingerprint=event.fingerprint,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            receiver=event.receiver,
            labels=dict(event.labels),
        )

    @property
    def brief(self) -> str:
        """Alert, place and status in a few words: how a held-back notification is listed."""
        where = f" on {self.instance}" if self.instance else ""
        return f"{self.alertname}{where} {self.status}"

    @property
    def held_back_text(self) -> str:
        """ " (+N held back: A, B, ...)" when throttling held notifications back, else ""."""
        if not self.held_back:
            return ""
        shown = ", ".join(self.held_back[:HELD_BACK_LISTED])
        more = len(self.held_back) - HELD_BACK_LISTED
        tail = f" and {more} more" if more > 0 else ""
        return f" (+{len(self.held_back)} held back: {shown}{tail})"

    @property
    def headline(self) -> str:
        """The one-line text every channel can fall back to."""
        where = f" on {self.instance}" if self.instance else ""
        if self.status == "resolved":
            return f"RESOLVED [{self.severity}] {self.recovered}{self.held_back_text}"
        text = f"FIRING [{self.severity}] {self.alertname}{where}"
        return text + (f": {self.summary}" if self.summary else "") + self.held_back_text
