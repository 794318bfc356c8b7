"""The delivery outbox: what is owed to each channel, stored with the alert event it is about.

A notification is not sent inside the webhook request. The intake writes one outbox entry per
channel that accepts it, in the same transaction as the history event, and a background sender
(:mod:`tradeguard.responder.delivery`) delivers it. So a responder that dies between storing and
sending sends after its restart; a channel answering 429 or 5xx is retried with backoff (its
``Retry-After`` honoured) instead of being dropped; and a slow channel never holds up
Alertmanager's request.

An entry's life: ``pending`` (due at ``next_attempt_at``) → ``sent``; or ``held`` by its
channel's throttle → ``merged`` into the summary of the next one of its channel and category
that goes out; or ``dead`` after the delivery deadline or a permanent refusal. Every attempt is
recorded apart (:class:`Attempt`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from tradeguard.responder.events import iso
from tradeguard.responder.notification import Notification
from tradeguard.responder.throttle import category_of

OutboxState = Literal["pending", "held", "sent", "merged", "dead"]
OUTBOX_STATES: tuple[OutboxState, ...] = ("pending", "held", "sent", "merged", "dead")
AttemptOutcome = Literal["sent", "failed", "rate_limited"]

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0
MAX_RETRY_AFTER_SECONDS = 3600.0  # a Retry-After longer than this is capped, not obeyed
JITTER = 0.2  # each backoff is stretched or shrunk by up to this share, so retries spread


def backoff_seconds(attempts: int, jitter: float = JITTER) -> float:
    """The wait before retry number ``attempts`` (1, 2, 4 ... seconds, capped, jittered)."""
    base: float = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2.0 ** max(0, attempts - 1))
    return base * (1.0 + random.uniform(-jitter, jitter))


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """The far end's ``Retry-After`` when it gave one (capped), else the backoff."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER_SECONDS)
    return backoff_seconds(attempts)


@dataclass(frozen=True)
class OutboxItem:
    """A notification owed to one channel, before it is stored."""

    channel: str
    notification: Notification

    @property
    def category(self) -> str:
        return category_of(self.notification.component)

    def body(self) -> str:
        return json.dumps(self.notification.to_json(), ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class OutboxEntry:
    """One stored outbox entry."""

    id: int
    channel: str
    category: str
    state: OutboxState
    notification: Notification
    created_at: datetime
    next_attempt_at: datetime
    attempts: int
    last_error: str | None
    done_at: datetime | None
    carried_by: int | None

    def to_json(self) -> dict[str, Any]:
        n = self.notification
        return {
            "id": self.id,
            "channel": self.channel,
            "category": self.category,
            "state": self.state,
            "alertname": n.alertname,
            "status": n.status,
            "severity": n.severity,
            "instance": n.instance,
            "fingerprint": n.fingerprint,
            "created_at": iso(self.created_at),
            "next_attempt_at": iso(self.next_attempt_at),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "done_at": iso(self.done_at) if self.done_at else None,
            "carried_by": self.carried_by,
        }


@dataclass(frozen=True)
class Attempt:
    """One try to deliver one entry."""

    outbox_id: int
    at: datetime
    outcome: AttemptOutcome
    error: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed entry, written back in one transaction per sender pass.

    ``state`` is the entry's new state; ``retry_at`` is set for a pending entry to try again;
    ``merged`` are held entries this one carried in its summary.
    """

    entry_id: int
    state: OutboxState
    attempt: Attempt | None
    retry_at: datetime | None = None
    merged: tuple[int, ...] = ()


@dataclass(frozen=True)
class OutboxCounts:
    """How many entries wait, by state, and since when the oldest waits."""

    by_state: Mapping[str, int]
    oldest_waiting: datetime | None

    def waiting_age(self, now: datetime) -> float:
        if self.oldest_waiting is None:
            return 0.0
        return max(0.0, (now - self.oldest_waiting).total_seconds())

    def to_json(self) -> dict[str, int]:
        return {state: int(self.by_state.get(state, 0)) for state in ("pending", "held", "dead")}


def next_attempt(now: datetime, attempts: int, retry_after: float | None) -> datetime:
    """When to try again after ``attempts`` failed tries."""
    return now + timedelta(seconds=retry_delay(attempts, retry_after))


class OutboxStore(Protocol):
    """The outbox operations a history backend offers the sender (see history/outbox_sql.py)."""

    def outbox_claim(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        state: OutboxState = "pending",
        channel: str | None = None,
        category: str | None = None,
    ) -> list[OutboxEntry]: ...

    def outbox_held_keys(self) -> list[tuple[str, str]]: ...

    def outbox_hold(self, entry_ids: Sequence[int]) -> None: ...

    def outbox_apply(self, outcomes: Sequence[Outcome], now: datetime) -> None: ...

    def outbox_release_claims(self, owner: str) -> int: ...

    def outbox_counts(self) -> OutboxCounts: ...

    def outbox_sent_since(self, since: datetime) -> list[tuple[str, str, datetime]]: ...

    def outbox_list(
        self, limit: int, states: Sequence[OutboxState] | None = None
    ) -> list[OutboxEntry]: ...
