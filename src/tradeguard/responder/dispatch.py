"""Fan-out of one notification to every configured channel, counted.

A failing channel must neither silence the others nor fail the webhook: the event is already
in history, and a retried delivery would be a duplicate that is (rightly) not notified again,
so failing the request would gain nothing. Failures are logged and counted
(``tradeguard_responder_notifications_total{status="failed"}``) for an alert to watch.

Per-category throttling sits in front of the channels (:mod:`tradeguard.responder.throttle`):
a held notification is counted ``throttled`` once and reported by the next one that goes out;
``flush`` sends what the window has room for again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tradeguard.metrics.catalog import Metrics
from tradeguard.responder.channels import Channel, ChannelError
from tradeguard.responder.notification import Notification
from tradeguard.responder.throttle import Throttle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchResult:
    """How one notification fared: channel names that took it, those that failed, and whether
    throttling held it back (then neither)."""

    sent: tuple[str, ...]
    failed: tuple[str, ...]
    held: bool = False


class Notifier:
    """Sends each notification to every channel; one delivery per channel is counted."""

    def __init__(
        self, channels: Sequence[Channel], metrics: Metrics, throttle: Throttle | None = None
    ) -> None:
        self.channels = list(channels)
        self.throttle = throttle
        self._sent = metrics.responder_notifications.labels("sent")
        self._failed = metrics.responder_notifications.labels("failed")
        self._throttled = metrics.responder_notifications.labels("throttled")

    def notify(self, notification: Notification) -> DispatchResult:
        """Deliver ``notification`` now, or hold it when its category is over its limit."""
        if self.throttle is not None:
            admitted = self.throttle.admit(notification)
            if admitted is None:
                self._throttled.inc()
                log.info("notification held back by throttling: %s", notification.headline)
                return DispatchResult((), (), held=True)
            notification = admitted
        return self._deliver(notification)

    def flush(self) -> list[DispatchResult]:
        """Deliver held notifications whose category has room again (call periodically)."""
        if self.throttle is None:
            return []
        return [self._deliver(n) for n in self.throttle.release()]

    def _deliver(self, notification: Notification) -> DispatchResult:
        sent: list[str] = []
        failed: list[str] = []
        for channel in self.channels:
            try:
                channel.send(notification)
            except ChannelError as exc:
                log.error("notification %s not delivered: %s", notification.headline, exc)
                failed.append(channel.name)
            except Exception:  # a broken channel must not take the intake down
                log.exception("channel %s crashed on %s", channel.name, notification.headline)
                failed.append(channel.name)
            else:
                sent.append(channel.name)
        self._sent.inc(len(sent))
        self._failed.inc(len(failed))
        return DispatchResult(tuple(sent), tuple(failed))
