"""Every stored alert event of a time window, through the history API's one-page answers.

``GET /api/alerts/history`` serves the newest ``limit`` events (at most
:data:`~tradeguard.responder.history.base.MAX_HISTORY_LIMIT`), of all alerts or of one. A busy
week holds more than one page, and counting flaps over the newest thousand events alone would
undercount the alerts that fired early in the week. So when the newest page does not reach back
to the window's start, each alert is fetched on its own (its own newest page), by name: the
names of that first page, of what fires now and of the rule files. An alert whose own page
still does not reach back is reported as truncated, so its figures are shown as lower bounds
rather than passed off as complete.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tradeguard.responder.client import ResponderClient
from tradeguard.responder.history.base import MAX_HISTORY_LIMIT
from tradeguard.responder.operations import EventRecord, events_from_json


@dataclass(frozen=True)
class HistoryWindow:
    """The events received at or after ``since`` that could be fetched."""

    since: datetime
    events: tuple[EventRecord, ...]
    requests: int  # how many history pages were read
    truncated: tuple[str, ...]  # alerts with more events in the window than one page holds

    @property
    def complete(self) -> bool:
        return not self.truncated


def _reaches(page: list[EventRecord], since: datetime) -> bool:
    """Whether ``page`` (one answer of at most a page) holds every event since ``since``: it
    was not full, or its oldest event is older than the window."""
    return len(page) < MAX_HISTORY_LIMIT or min(e.received_at for e in page) < since


def fetch_window(
    client: ResponderClient, since: datetime, names: Iterable[str] = ()
) -> HistoryWindow:
    """The events received since ``since``; ``names`` are alerts to fetch one by one if the
    newest page of all alerts does not reach back that far (the rule files' alert names, what
    fires now). Raises what the client raises, and
    :class:`~tradeguard.responder.operations.MalformedRecord` for a record of another shape."""
    newest = events_from_json(client.history(limit=MAX_HISTORY_LIMIT))
    if _reaches(newest, since):
        return HistoryWindow(since, tuple(e for e in newest if e.received_at >= since), 1, ())
    wanted = sorted({e.alertname for e in newest} | set(names))
    found: dict[tuple[str, datetime, str], EventRecord] = {}
    truncated = []
    for name in wanted:
        page = events_from_json(client.history(alertname=name, limit=MAX_HISTORY_LIMIT))
        if page and not _reaches(page, since):
            truncated.append(name)
        for e in page:
            if e.received_at >= since:
                found[(e.fingerprint, e.starts_at, e.status)] = e
    events = sorted(found.values(), key=lambda e: e.received_at)
    return HistoryWindow(since, tuple(events), 1 + len(wanted), tuple(truncated))
