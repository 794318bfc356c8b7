"""Redis trade state against its durable copy in DuckDB: which accounts disagree, and the fix.

DuckDB holds a snapshot of each account that the leader's persister takes about once a second,
so it may trail Redis by the latest fills. The fill count (``trades``), which only grows, orders
the two copies:

- DuckDB behind (fewer trades, or no row yet): normal, the next snapshot catches up;
- the same count: balance and positions must agree, else the copies **diverged** (a second
  writer, a hand edit);
- DuckDB ahead, or the account gone from Redis: Redis **lost** state (restarted without its
  append-only file, flushed, evicted, failed over to a replica that was behind).

A lost account is what ``tradeguard state resync`` repairs, by writing DuckDB's copy back into
Redis. Diverged accounts are only reported: which side is right needs a human and the broker.
The persister never snapshots a Redis state over a DuckDB row with more trades, so a Redis that
lost state cannot erase the durable copy before the check sees it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from tradeguard.bus.connection import CONNECTION_ERRORS
from tradeguard.bus.trade_state import AccountState, TradeState
from tradeguard.metrics.catalog import Metrics
from tradeguard.store.duck import DuckStore, StoreError

log = logging.getLogger(__name__)

LOST = "lost"  # Redis has fewer trades than DuckDB, or no hash at all
DIVERGED = "diverged"  # same trade count, different balance or positions
# Either side unreadable: the check fails (counted), the next one tries again.
CHECK_ERRORS: tuple[type[Exception], ...] = (StoreError, *CONNECTION_ERRORS)


@dataclass(frozen=True)
class Mismatch:
    account: str
    kind: str  # LOST or DIVERGED
    redis: AccountState | None
    duck: AccountState

    def describe(self) -> str:
        redis = "no hash" if self.redis is None else f"{self.redis.trades} trades"
        return f"{self.account}: {self.kind} (Redis {redis}, DuckDB {self.duck.trades} trades)"


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _agree(redis: AccountState, duck: AccountState) -> bool:
    symbols = set(redis.positions) | set(duck.positions)
    return _same(redis.balance, duck.balance) and all(
        _same(redis.positions.get(s, 0.0), duck.positions.get(s, 0.0)) for s in symbols
    )


def compare(
    duck_states: dict[str, AccountState], redis_states: dict[str, AccountState | None]
) -> list[Mismatch]:
    """The accounts whose two copies disagree, by the rules in the module docstring."""
    mismatches = []
    for account, duck in sorted(duck_states.items()):
        redis = redis_states.get(account)
        if redis is None or redis.trades < duck.trades:
            mismatches.append(Mismatch(account, LOST, redis, duck))
        elif redis.trades == duck.trades and not _agree(redis, duck):
            mismatches.append(Mismatch(account, DIVERGED, redis, duck))
    return mismatches


class ConsistencyChecker:
    """Runs the comparison and publishes it: the mismatched-accounts gauge and check counter."""

    def __init__(
        self,
        state: TradeState,
        store: DuckStore,
        metrics: Metrics | None = None,
        interval: float = 10.0,
    ) -> None:
        self.state = state
        self.store = store
        self.metrics = metrics
        self.interval = interval
        self._last = -math.inf

    def check(self) -> list[Mismatch]:
        """Compare every account DuckDB knows; StoreError or a Redis error if one side fails.

        DuckDB is read first: Redis only moves ahead of it meanwhile, which reads as "behind",
        never as a mismatch.
        """
        try:
            duck = self.store.states()
            redis = {account: self.state.get(account) for account in duck}
        except CHECK_ERRORS:
            self._count("failed")
            raise
        mismatches = compare(duck, redis)
        if self.metrics is not None:
            self.metrics.state_mismatched_accounts.set(len(mismatches))
        self._count("mismatch" if mismatches else "ok")
        for m in mismatches:
            log.error("trade state mismatch: %s", m.describe())
        return mismatches

    def maybe_check(self) -> None:
        """Check if ``interval`` has passed since the last check; never raises."""
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        try:
            self.check()
        except CHECK_ERRORS as exc:
            log.warning("trade state check failed: %s", exc)

    def resync(self, mismatches: list[Mismatch]) -> list[str]:
        """Write DuckDB's copy into Redis for each LOST account; the accounts restored."""
        restored = []
        for m in mismatches:
            if m.kind != LOST:
                continue
            self.state.put(m.duck)
            restored.append(m.account)
            if self.metrics is not None:
                self.metrics.state_resyncs.inc()
            log.warning(
                "trade state of %s restored from DuckDB (%d trades)", m.account, m.duck.trades
            )
        return restored

    def _count(self, status: str) -> None:
        if self.metrics is not None:
            self.metrics.state_consistency_checks.labels(status).inc()
