"""Fan-out of one notification to every configured channel, counted.

A failing channel must neither silence the others nor fail the webhook: the event is already
in history, and a retried delivery would be a duplicate that is (rightly) not notified again,
so failing the request would gain nothing. Failures are logged and counted
(``tradeguard_responder_notifications_total{status="failed"}``) for an alert to watch.

This is where per-category throttling will sit (DESIGN.md 3, Responder): a throttled
notification is counted ``throttled`` and summarised in the next one that goes out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tradeguard.metrics.catalog import Metrics
from tradeguard.responder.channels import Channel, ChannelError
from tradeguard.responder.notification import Notification

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchResult:
    """How one notification fared: channel names that took it, and those that failed."""

    sent: tuple[str, ...]
    failed: tuple[str, ...]


class Notifier:
    """Sends each notification to every channel; one delivery per channel is counted."""

    def __init__(self, channels: Sequence[Channel], metrics: Metrics) -> None:
        self.channels = list(channels)
        self._sent = metrics.responder_notifications.labels("sent")
        self._failed = metrics.responder_notifications.labels("failed")

    def notify(self, notification: Notification) -> DispatchResult:
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
