"""The fencing interface between the engine and whoever decides it may act.

The engine asks, per signal, whether it may execute now and records what it did; it never
knows how leadership is decided. ``LocalFence`` serves a single replica (intents in Redis, so a
restart or a reclaim can tell "never tried" from "tried, outcome unknown"); the HA coordinator
provides a fenced implementation backed by its SQL ledger and epoch.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from redis import Redis

from tradeguard.bus.keys import Keys
from tradeguard.bus.results import TradeResult
from tradeguard.errors import TradeguardError

INTENT_TTL_SECONDS = 86_400


class Intent(Enum):
    NEW = "new"  # first attempt: the intent is now recorded, go ahead
    PENDING = "pending"  # an earlier attempt did not finish: reconcile with the broker first
    DONE = "done"  # already executed and recorded: just acknowledge


class FenceLost(TradeguardError):
    """This replica may no longer act (it lost leadership, or its epoch is stale)."""


class Fence(Protocol):
    def may_execute(self) -> bool:
        """Whether this replica should take new work now (cheap; called every loop)."""

    def holds_term(self) -> bool:
        """Whether the term under which intents were recorded still holds (cheap; asked again
        just before an order leaves, since the process may have been frozen since)."""

    def generation(self) -> int:
        """Changes whenever this replica starts a new term of work (a new epoch): the engine
        then takes over every pending entry at once instead of waiting for them to idle."""

    def begin(self, signal_id: str) -> Intent:
        """Record the intent to execute ``signal_id``; raise FenceLost if not allowed."""

    def complete(self, result: TradeResult) -> None:
        """Record that the signal was executed with this result; raise FenceLost if stale."""


class LocalFence:
    """Single-replica fence: always allowed; intents as Redis keys with a day's TTL."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    def may_execute(self) -> bool:
        return True

    def holds_term(self) -> bool:
        return True

    def generation(self) -> int:
        return 0

    def begin(self, signal_id: str) -> Intent:
        key = self.keys.intent(signal_id)
        if self.redis.set(key, "intent", nx=True, ex=INTENT_TTL_SECONDS):
            return Intent.NEW
        current = self.redis.get(key)
        # A missing key (expired in between) is treated as unknown: reconcile, never assume.
        return Intent.DONE if current and current.startswith(b"done") else Intent.PENDING

    def complete(self, result: TradeResult) -> None:
        self.redis.set(
            self.keys.intent(result.signal_id), f"done:{result.status}", ex=INTENT_TTL_SECONDS
        )
