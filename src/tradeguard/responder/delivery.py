"""The background sender: delivers the outbox, throttled per channel, retried with backoff.

Each pass claims the due entries, and hands each channel's share to that channel's own worker,
so a slow chat webhook never delays the pager. Per entry:

- a channel's throttle with no room for the entry's category holds it (``held``); a pager
  channel is never throttled, so every critical pages on its own;
- otherwise it is sent, carrying whatever its channel and category hold, as one summary that
  takes the highest severity it carries;
- a failure is retried after an exponential backoff, or after the ``Retry-After`` the channel
  was given; past the delivery deadline, or refused as malformed, the entry is ``dead``
  (counted, and alerted on by ResponderNotificationsFailing).

Held entries of a (channel, category) whose window has room again go out as one summary
carried by the newest. On stop, everything held goes out whatever the throttle says: a person
should not learn about a burst only when the responder next starts.

A notification about an alert whose rule names an ``action`` goes out with what remediation did
about its occurrence (:func:`~tradeguard.responder.notification.remediation_line`), read from
the history once per pass and occurrence; a failed read is logged and the notification goes out
without that line rather than not at all.

Delivery is at least once: a responder killed after a channel took a notification but before the
outcome was written sends it again after its restart (PagerDuty's dedup key makes that harmless
there; a chat channel shows it twice).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tradeguard.metrics.catalog import Metrics
from tradeguard.responder.channels import Channel, ChannelError
from tradeguard.responder.history.base import ActionAttempt, HistoryError
from tradeguard.responder.notification import Notification, remediation_line
from tradeguard.responder.outbox import (
    Attempt,
    AttemptOutcome,
    OutboxEntry,
    OutboxStore,
    Outcome,
    next_attempt,
)
from tradeguard.responder.runbook_links import with_runbook_link
from tradeguard.responder.throttle import Throttle

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # a pass at least this often: retries and held entries come due by time
BATCH = 200  # entries claimed per pass
LINGER_SECONDS = 0.05  # after a pass that delivered something, before the next one
HELD_PER_SUMMARY = 1000  # a summary carries at most this many held entries; the rest wait
CLAIM_SECONDS = 120.0  # a claim outlives any one delivery (channel timeouts are seconds)
GAUGE_INTERVAL = 1.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class DeliveryStore(OutboxStore, Protocol):
    """What the sender uses of the history: the outbox, and the remediation attempts a
    notification reports."""

    def action_attempts(self, fingerprint: str, starts_at: datetime) -> list[ActionAttempt]: ...


class RemediationNotes:
    """The remediation line of each alert occurrence one pass notifies about.

    Read once per pass and occurrence however many channels send it, and only for alerts whose
    rule names an action. A failed read never holds a notification back: it is logged, and the
    notification goes out without the line.
    """

    def __init__(self, store: DeliveryStore) -> None:
        self._store = store
        self._lock = threading.Lock()  # the channels' workers ask at once
        self._lines: dict[tuple[str, datetime, str], str | None] = {}

    def add_to(self, n: Notification) -> Notification:
        """``n`` with what was done about its occurrence, when anything was."""
        if n.action is None:
            return n
        key = (n.fingerprint, n.starts_at, n.action)
        with self._lock:
            if key not in self._lines:
                self._lines[key] = self._read(n, n.action)
            line = self._lines[key]
        return replace(n, remediation=line) if line else n

    def _read(self, n: Notification, action: str) -> str | None:
        try:
            return remediation_line(action, self._store.action_attempts(n.fingerprint, n.starts_at))
        except HistoryError as exc:
            log.warning("%s goes out without its remediation line: %s", n.headline, exc)
        except Exception:  # a bug here must not stop the notification either
            log.exception("%s goes out without its remediation line", n.headline)
        return None


class DeliverySender:
    """Delivers the outbox of ``store`` to ``channels``; one background thread plus one worker
    per channel."""

    def __init__(
        self,
        store: DeliveryStore,
        channels: Sequence[Channel],
        metrics: Metrics,
        throttle: Throttle | None,
        owner: str,
        deadline_seconds: float = 24 * 3600.0,
        clock: Callable[[], datetime] = utc_now,
        runbook_base_url: str | None = None,
        on_call: Callable[[datetime], str | None] | None = None,
    ) -> None:
        self.store = store
        self.runbook_base_url = runbook_base_url  # runbook links made absolute as they go out
        self.on_call = on_call  # who each notification names as on call when it goes out
        self.channels = {c.name: c for c in channels}
        self.throttle = throttle
        self.owner = owner
        self.deadline = timedelta(seconds=deadline_seconds)
        self._clock = clock
        self._metrics = metrics
        self._sent = metrics.responder_notifications.labels("sent")
        self._dead = metrics.responder_notifications.labels("failed")
        self._throttled = metrics.responder_notifications.labels("throttled")
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self.channels)), thread_name_prefix="responder-channel"
        )
        self._gauges_at = 0.0
        # Whether held entries may exist: read from the store only then (most passes of a
        # responder that never throttled would otherwise query for nothing). Unknown at start;
        # set again by every hold and by the gauges' counts (another responder's holds).
        self._holding = True

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Take back this sender's own claims (a restart), seed the throttle windows from the
        deliveries of the last window, and start delivering."""
        self._stopping.clear()
        try:
            self.store.outbox_release_claims(self.owner)
            self._seed_throttle()
        except HistoryError as exc:
            log.error("outbox not readable at start (the sender keeps trying): %s", exc)
        self._thread = threading.Thread(target=self._run, name="responder-sender", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New entries were stored: deliver them now rather than at the next poll."""
        self._wake.set()

    def stop(self, flush: bool = True, timeout: float = 10.0) -> None:
        """Stop the loop; with ``flush``, send what is due and every held batch once more."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if flush:
            try:
                self.run_once(force=True)
            except HistoryError as exc:
                log.error("flushing the outbox at stop failed: %s", exc)
            except Exception:
                log.exception("flushing the outbox at stop failed")
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _seed_throttle(self) -> None:
        if self.throttle is None:
            return
        since = self._clock() - timedelta(seconds=self.throttle.window)
        for channel, category, at in self.store.outbox_sent_since(since):
            self.throttle.record(channel, category, at.timestamp())

    def _run(self) -> None:
        while not self._stopping.is_set():
            worked = False
            try:
                worked = self.run_once()
            except HistoryError as exc:
                log.error("delivering notifications failed (retrying): %s", exc)
            except Exception:  # the loop must outlive any one bad pass
                log.exception("delivering notifications failed")
            self._refresh_gauges()
            if worked:
                # Let a burst gather before the next pass: each pass costs two commits that
                # the intake's group commit waits behind; a notification waits LINGER at most.
                self._stopping.wait(LINGER_SECONDS)
            else:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()

    # ---- one pass ------------------------------------------------------------------------
    def run_once(self, force: bool = False) -> bool:
        """Deliver what is due and release what throttling held and now has room for (all of
        it when ``force``). True if any entry was handled."""
        now = self._clock()
        lease = now + timedelta(seconds=CLAIM_SECONDS)
        due = self.store.outbox_claim(self.owner, now, lease, BATCH)
        by_channel: dict[str, list[OutboxEntry]] = defaultdict(list)
        for entry in due:
            by_channel[entry.channel].append(entry)
        held_keys = self._held_keys()
        channels = set(by_channel) | {channel for channel, _ in held_keys}
        notes = RemediationNotes(self.store)
        futures = [
            self._pool.submit(
                self._channel_pass,
                name,
                by_channel.get(name, []),
                [cat for ch, cat in held_keys if ch == name],
                now,
                lease,
                force,
                notes,
            )
            for name in sorted(channels)
        ]
        outcomes: list[Outcome] = []
        for future in futures:
            outcomes.extend(future.result())
        self.store.outbox_apply(outcomes, self._clock())
        return bool(due) or any(o.state != "held" for o in outcomes)

    def _channel_pass(
        self,
        name: str,
        due: list[OutboxEntry],
        held_categories: list[str],
        now: datetime,
        lease: datetime,
        force: bool,
        notes: RemediationNotes,
    ) -> list[Outcome]:
        """One channel's share of a pass (runs on that channel's worker)."""
        channel = self.channels.get(name)
        if channel is None:  # configured once, removed since: nobody will send these
            held = [
                e
                for category in held_categories
                for e in self._claim_held(name, category, now, lease, any_category=True)
            ]
            why = f"channel {name!r} is no longer configured"
            return [self._dead_entry(e, now, why) for e in [*due, *held]]
        outcomes: list[Outcome] = []
        to_hold: list[int] = []
        for entry in due:
            if not force and self._over_limit(channel, entry.category):
                to_hold.append(entry.id)
                continue
            carried = self._claim_held(name, entry.category, now, lease)
            outcomes.extend(self._deliver(channel, entry, carried, now, notes))
        if to_hold:
            self._holding = True
            self.store.outbox_hold(to_hold)
            self._throttled.inc(len(to_hold))
            log.info("%d notification(s) for %s held back by throttling", len(to_hold), name)
        for category in held_categories:
            if not force and self._over_limit(channel, category):
                continue
            held = self._claim_held(name, category, now, lease)
            if held:
                *older, newest = held
                outcomes.extend(self._deliver(channel, newest, older, now, notes))
        return outcomes

    def _held_keys(self) -> list[tuple[str, str]]:
        if self.throttle is None or not self._holding:
            return []
        keys = self.store.outbox_held_keys()
        self._holding = bool(keys)
        return keys

    def _over_limit(self, channel: Channel, category: str) -> bool:
        if self.throttle is None or channel.is_pager:
            return False
        return not self.throttle.has_room(channel.name, category)

    def _claim_held(
        self,
        channel: str,
        category: str,
        now: datetime,
        lease: datetime,
        any_category: bool = False,
    ) -> list[OutboxEntry]:
        """Held entries of ``category`` to carry in a summary: none for a category throttling
        does not limit (unless ``any_category``: a removed channel's entries all go dead)."""
        limited = self.throttle is not None and self.throttle.limits_category(category)
        if not (limited or any_category):
            return []
        return self.store.outbox_claim(
            self.owner, now, lease, HELD_PER_SUMMARY, "held", channel, category
        )

    # ---- one delivery --------------------------------------------------------------------
    def _deliver(
        self,
        channel: Channel,
        entry: OutboxEntry,
        carried: list[OutboxEntry],
        now: datetime,
        notes: RemediationNotes,
    ) -> list[Outcome]:
        notification = notes.add_to(entry.notification).carrying([c.notification for c in carried])
        notification = with_runbook_link(notification, self.runbook_base_url)
        if self.on_call is not None:
            notification = replace(notification, on_call=self.on_call(now))
        error: str
        retry_after: float | None = None
        permanent = False
        try:
            channel.send(notification)
        except ChannelError as exc:
            error, retry_after, permanent = str(exc), exc.retry_after, exc.permanent
        except Exception as exc:  # a broken channel must read as a failed delivery
            log.exception("channel %s crashed on %s", channel.name, notification.headline)
            error = f"{channel.name} channel crashed: {exc!r}"
        else:
            self._sent.inc()
            self._attempts(channel.name, "sent")
            if self.throttle is not None:
                self.throttle.record(channel.name, entry.category)
            return [
                Outcome(
                    entry.id,
                    "sent",
                    Attempt(entry.id, now, "sent"),
                    merged=tuple(c.id for c in carried),
                )
            ]
        # Not delivered: what it carried goes back to waiting, held.
        back = [Outcome(c.id, "held", None) for c in carried]
        outcome_kind: AttemptOutcome = "rate_limited" if retry_after is not None else "failed"
        self._attempts(channel.name, outcome_kind)
        attempt = Attempt(entry.id, now, outcome_kind, error)
        attempts = entry.attempts + 1
        if permanent or now - entry.created_at >= self.deadline:
            why = "refused for good" if permanent else "past the delivery deadline"
            log.error(
                "notification %s to %s given up after %d attempt(s) (%s): %s",
                notification.headline,
                channel.name,
                attempts,
                why,
                error,
            )
            self._dead.inc()
            return [Outcome(entry.id, "dead", attempt), *back]
        when = next_attempt(now, attempts, retry_after)
        log.warning(
            "notification %s to %s failed (attempt %d, retry in %.1fs): %s",
            notification.headline,
            channel.name,
            attempts,
            (when - now).total_seconds(),
            error,
        )
        return [Outcome(entry.id, "pending", attempt, retry_at=when), *back]

    def _dead_entry(self, entry: OutboxEntry, now: datetime, why: str) -> Outcome:
        log.error("notification %s dropped: %s", entry.notification.headline, why)
        self._dead.inc()
        return Outcome(entry.id, "dead", Attempt(entry.id, now, "failed", why))

    def _attempts(self, channel: str, outcome: str) -> None:
        self._metrics.responder_delivery_attempts.labels(channel, outcome).inc()

    def _refresh_gauges(self) -> None:
        if time.monotonic() - self._gauges_at < GAUGE_INTERVAL:
            return
        self._gauges_at = time.monotonic()
        try:
            counts = self.store.outbox_counts()
        except HistoryError:
            return
        if counts.by_state.get("held", 0):
            self._holding = True
        for state in ("pending", "held", "dead"):
            self._metrics.responder_outbox.labels(state).set(counts.by_state.get(state, 0))
        self._metrics.responder_outbox_oldest_age.set(counts.waiting_age(self._clock()))
