"""Per-category notification throttling, so a burst of alerts does not bury the one that matters.

Seed 000 (5.2): at most 5 notifications a minute for Redis failures, 3 for trade execution. A
category is an alert's ``component`` mapped through :data:`CATEGORY_OF` (``redis``,
``redis_trade_state`` and ``dragonflydb`` are "redis"; ``trade_engine`` and ``trading_bot`` are
"trade_execution"); any other component is its own category, so a team can limit, say,
``docker`` by naming it. Categories without a limit are never throttled.

Limits apply per channel, and a pager channel is never throttled: whatever chat holds back, a
critical still pages. Nothing is dropped: a notification over its channel's limit is held in the
delivery outbox (and stays in the alert history as every event does), then reported by the next
notification of its channel and category that goes out, in its ``held_back`` list. If none
comes, the sender sends the newest held one, carrying the others, as soon as the sliding window
has room again, within a minute at most; the summary takes the highest severity it carries.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

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
    """A sliding-window limit per (channel, category); thread-safe.

    Limits apply per channel: the chat channel may be full while the pager still takes a
    critical, and a channel whose deliveries fail does not use up its window (only deliveries
    that went out are recorded). It only counts; what is held lives in the delivery outbox.
    """

    def __init__(
        self,
        limits: Mapping[str, int] | None = None,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self.window = window
        self._clock = clock
        self._sent: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def limits_category(self, category: str) -> bool:
        return category in self.limits

    def has_room(self, channel: str, category: str) -> bool:
        """Whether one more notification of ``category`` may go to ``channel`` now."""
        if category not in self.limits:
            return True
        with self._lock:
            sent = self._sent.setdefault((channel, category), deque())
            horizon = self._clock() - self.window
            while sent and sent[0] <= horizon:
                sent.popleft()
            return len(sent) < self.limits[category]

    def record(self, channel: str, category: str, at: float | None = None) -> None:
        """Count one delivery of ``category`` to ``channel`` (at ``at``, default now)."""
        if category not in self.limits:
            return
        with self._lock:
            sent = self._sent.setdefault((channel, category), deque())
            sent.append(self._clock() if at is None else at)
            if len(sent) > 1 and sent[-1] < sent[-2]:  # seeded out of order: keep it sorted
                sent = self._sent[(channel, category)] = deque(sorted(sent))
            horizon = self._clock() - self.window
            while sent and sent[0] <= horizon:  # bounded even where has_room is never asked
                sent.popleft()
