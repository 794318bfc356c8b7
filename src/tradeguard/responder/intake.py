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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    """One writer thread that stores queued event lists together, one transaction a round.

    Requests wait on asyncio futures; a round settles all of its requests with one call into
    their event loop, rather than one wake-up of the loop per request.
    """

    def __init__(self, write: Callable[[list[AlertEvent]], list[bool]]) -> None:
        self._write = write
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    async def store(self, events: list[AlertEvent]) -> list[bool]:
        """The new-flags of ``events`` once stored (HistoryError if the store failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        with self._lock:
            if self._stopped:
                raise HistoryError("the responder is stopping")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="responder-commit", daemon=True
                )
                self._thread.start()
            self._queue.put(_Waiting(events, future, loop))
        return await future

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

    def _commit(self, group: list[_Waiting]) -> None:
        events = [e for waiting in group for e in waiting.events]
        outcomes: list[list[bool] | BaseException] = []
        try:
            flags = self._write(events)
        except Exception as exc:  # every waiting request learns the store failed
            outcomes = [exc] * len(group)
        else:
            start = 0
            for waiting in group:
                outcomes.append(flags[start : start + len(waiting.events)])
                start += len(waiting.events)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Waiting, Any]]] = {}
        for waiting, outcome in zip(group, outcomes, strict=True):
            by_loop.setdefault(waiting.loop, []).append((waiting, outcome))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass


@dataclass(frozen=True)
class _Waiting:
    events: list[AlertEvent]
    future: asyncio.Future[list[bool]]
    loop: asyncio.AbstractEventLoop


def _settle(settled: list[tuple[_Waiting, Any]]) -> None:
    """In the event loop: hand each waiting request its flags, or the store's error."""
    for waiting, outcome in settled:
        if waiting.future.done():  # the request was cancelled (client gone)
            continue
        if isinstance(outcome, BaseException):
            waiting.future.set_exception(outcome)
        else:
            waiting.future.set_result(outcome)


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
        if not self.channels:
            return []
        notification = Notification.from_event(event)
        return [
            OutboxItem(channel.name, notification)
            for channel in self.channels
            if channel.accepts(notification)
        ]

    def _write(self, events: list[AlertEvent]) -> list[bool]:
        owed = 0

        def plan(event: AlertEvent) -> list[OutboxItem]:
            nonlocal owed
            items = self.owed(event)
            owed += len(items)
            return items

        flags = self.history.insert_many(events, plan)
        if owed:  # committed: the sender has work now (and none to look for otherwise)
            self._on_stored()
        return flags

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
        flags = await self.committer.store(events)
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
        return IntakeResult(len(new), len(events) - len(new), new, heartbeats)
