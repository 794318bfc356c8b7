"""Per-category notification throttling, so a burst of alerts does not bury the one that matters.

Seed 000 (5.2): at most 5 notifications a minute for Redis failures, 3 for trade execution. A
category is an alert's ``component`` mapped through :data:`CATEGORY_OF` (``redis``,
``redis_trade_state`` and ``dragonflydb`` are "redis"; ``trade_engine`` and ``trading_bot`` are
"trade_execution"); any other component is its own category, so a team can limit, say,
``docker`` by naming it. Categories without a limit are never throttled.

Nothing is dropped: a notification over the limit is held (and stays in the alert history as
every event does), then reported by the next notification of its category that goes out, in its
``held_back`` list. If none comes, :meth:`Throttle.release` sends the newest held one, carrying
the others, as soon as the sliding window has room again, within a minute at most.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace

from tradeguard.responder.notification import Notification

WINDOW_SECONDS = 60.0
DEFAULT_LIMITS: dict[str, int] = {"redis": 5, "trade_execution": 3}
CATEGORY_OF: dict[str, str] = {
    "redis": "redis",
    "redis_trade_state": "redis",
    "dragonflydb": "redis",
    "trade_engine": "trade_execution",
    "trading_bot": "trade_execution",
}


def category_of(component: str | None) -> str:
    """The throttling category of an alert's component."""
    return CATEGORY_OF.get(component or "", component or "uncategorised")


class Throttle:
    """A sliding-window limit per category; thread-safe (intake requests and the releaser)."""

    def __init__(
        self,
        limits: Mapping[str, int] | None = None,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self.window = window
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._held: dict[str, list[Notification]] = {}
        self._lock = threading.Lock()

    def admit(self, notification: Notification) -> Notification | None:
        """The notification to send now, reporting what was held before it; None to hold it."""
        category = category_of(notification.component)
        if category not in self.limits:
            return notification
        with self._lock:
            if not self._room(category):
                self._held.setdefault(category, []).append(notification)
                return None
            return self._send(category, notification, self._held.pop(category, []))

    def release(self) -> list[Notification]:
        """For each category with held notifications and room again: its newest one, carrying
        the rest. Call it periodically."""
        out = []
        with self._lock:
            for category in list(self._held):
                if self._room(category):
                    *older, newest = self._held.pop(category)
                    out.append(self._send(category, newest, older))
        return out

    def held(self) -> int:
        """How many notifications are held back right now."""
        with self._lock:
            return sum(len(h) for h in self._held.values())

    def _room(self, category: str) -> bool:
        sent = self._sent.setdefault(category, deque())
        horizon = self._clock() - self.window
        while sent and sent[0] <= horizon:
            sent.popleft()
        return len(sent) < self.limits[category]

    def _send(
        self, category: str, notification: Notification, held: list[Notification]
    ) -> Notification:
        self._sent[category].append(self._clock())
        if not held:
            return notification
        return replace(
            notification, held_back=notification.held_back + tuple(n.brief for n in held)
        )
