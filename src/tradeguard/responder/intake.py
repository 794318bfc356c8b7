"""The intake pipeline after a payload is validated: heartbeats aside, store every event with the
notifications it owes, in one transaction; the sender delivers them later.

Kept apart from the HTTP layer so the pipeline's rules are visible in one place (and usable
without a server):

- an event owes notifications only if this call stored it first. Duplicates (another
  Alertmanager peer, another receiver of the same alert, a retry) are stored once and notified
  once, whichever delivery wins the race, because "new" is decided by the history store's
  unique constraint, not by anything in memory;
- the notifications go into the outbox in the same transaction as their event, so an event is
  never stored without them, nor they without it;
- ``Watchdog`` deliveries are heartbeats for the dead man's switch, not history.

Group commit: concurrent webhook requests hand their events to one writer thread, which stores
everything that queued up meanwhile in one transaction (one fsync) and then answers each
request. Every event is durable before its 200, and the fsync cost is shared by the requests
of a burst instead of paid by each.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from tradeguard.metrics.catalog import Metrics
from tradeguard.responder.channels import Channel
from tradeguard.responder.events import AlertEvent, events_from_payload
from tradeguard.responder.history.base import AlertHistory, HistoryError
from tradeguard.responder.notification import Notification
from tradeguard.responder.outbox import OutboxItem
from tradeguard.responder.payload import WebhookPayload
from tradeguard.responder.watchdog import WATCHDOG_ALERT, DeadMansSwitch

log = logging.getLogger(__name__)
MAX_GROUP = 512  # deliveries stored in one transaction at most


@dataclass(frozen=True)
class IntakeResult:
    """Counts of one delivery's events: newly stored, and already known."""

    accepted: int
    duplicates: int
    new_events: tuple[AlertEvent, ...] = ()
    heartbeats: int = 0


class GroupCommitter:
    """One writer thread that stores queued event lists together, one transaction a round."""

    def __init__(self, write: Callable[[list[AlertEvent]], list[bool]]) -> None:
        self._write = write
        self._queue: queue.SimpleQueue[tuple[list[AlertEvent], Future[list[bool]]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def submit(self, events: list[AlertEvent]) -> Future[list[bool]]:
        """The new-flags of ``events`` once stored (HistoryError if the store failed)."""
        future: Future[list[bool]] = Future()
        with self._lock:
            if self._stopped:
                future.set_exception(HistoryError("the responder is stopping"))
                return future
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="responder-commit", daemon=True
                )
                self._thread.start()
            self._queue.put((events, future))
        return future

    def stop(self, timeout: float = 10.0) -> None:
        """Store what is queued, then stop; later submissions fail."""
        with self._lock:
            self._stopped = True
            thread = self._thread
            self._queue.put(None)
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[tuple[list[AlertEvent], Future[list[bool]]]]) -> None:
        events = [e for batch, _ in group for e in batch]
        try:
            flags = self._write(events)
        except Exception as exc:  # every waiting request learns the store failed
            for _, future in group:
                future.set_exception(exc)
            return
        start = 0
        for batch, future in group:
            future.set_result(flags[start : start + len(batch)])
            start += len(batch)


class Intake:
    """Validated payloads in; events and the notifications they owe stored; the sender woken."""

    def __init__(
        self,
        history: AlertHistory,
        channels: Sequence[Channel],
        metrics: Metrics,
        switch: DeadMansSwitch | None = None,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self.history = history
        self.channels = list(channels)
        self.switch = switch
        self._on_stored = on_stored
        self._stored = {
            "firing": metrics.responder_alerts.labels("firing"),
            "resolved": metrics.responder_alerts.labels("resolved"),
        }
        self.committer = GroupCommitter(self._write)

    def owed(self, event: AlertEvent) -> list[OutboxItem]:
        """The notifications a new event owes: one per channel that accepts it."""
        notification = Notification.from_event(event)
        return [
            OutboxItem(channel.name, notification)
            for channel in self.channels
            if channel.accepts(notification)
        ]

    def _write(self, events: list[AlertEvent]) -> list[bool]:
        return self.history.insert_many(events, self.owed)

    def _split(
        self, payload: WebhookPayload, received_at: datetime | None
    ) -> tuple[list[AlertEvent], int]:
        """The events to store, and how many Watchdog heartbeats the payload carried."""
        events = events_from_payload(payload, received_at)
        heartbeats = [e for e in events if e.alertname == WATCHDOG_ALERT]
        if heartbeats and self.switch is not None:
            for event in heartbeats:
                if event.status == "firing":
                    self.switch.heartbeat(event.received_at, event.fingerprint)
                else:
                    self.switch.gone(event.received_at, event.fingerprint)
        return [e for e in events if e.alertname != WATCHDOG_ALERT], len(heartbeats)

    def handle(self, payload: WebhookPayload, received_at: datetime | None = None) -> IntakeResult:
        """Store ``payload`` now, in this thread. Raises HistoryError (nothing stored, nothing
        owed) if the store fails."""
        events, heartbeats = self._split(payload, received_at)
        flags = self._write(events) if events else []
        return self._finish(events, flags, heartbeats)

    async def submit(self, payload: WebhookPayload) -> IntakeResult:
        """Store ``payload`` through the group committer; same contract as :meth:`handle`."""
        events, heartbeats = self._split(payload, None)
        if not events:
            return IntakeResult(0, 0, heartbeats=heartbeats)
        flags = await asyncio.wrap_future(self.committer.submit(events))
        return self._finish(events, flags, heartbeats)

    def store(self, events: list[AlertEvent]) -> list[bool]:
        """Store events the responder raised itself (the dead man's switch), owed notifications
        included."""
        flags = self._write(events)
        self._finish(events, flags, 0)
        return flags

    def _finish(self, events: list[AlertEvent], flags: list[bool], heartbeats: int) -> IntakeResult:
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
        if new:
            self._on_stored()
        return IntakeResult(len(new), len(events) - len(new), new, heartbeats)
