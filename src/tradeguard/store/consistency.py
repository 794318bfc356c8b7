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
Redis: the command leaves a request in Redis and the writing engine, the only process holding
the DuckDB file, carries it out at its next check and answers. Diverged accounts are only
reported: which side is right needs a human and the broker. Each verdict is also written to
Redis (``tradeguard state check`` reads it), so an operator needs no access to the DuckDB file.
The persister never snapshots a Redis state over a DuckDB row with more trades, so a Redis that
lost state cannot erase the durable copy before the check sees it.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError

from tradeguard.bus.connection import CONNECTION_ERRORS, as_text
from tradeguard.bus.keys import Keys
from tradeguard.bus.trade_state import AccountState, TradeState
from tradeguard.metrics.catalog import Metrics
from tradeguard.store.duck import DuckStore, StoreError

log = logging.getLogger(__name__)

LOST = "lost"  # Redis has fewer trades than DuckDB, or no hash at all
DIVERGED = "diverged"  # same trade count, different balance or positions
# Either side unreadable: the check fails (counted), the next one tries again.
CHECK_ERRORS: tuple[type[Exception], ...] = (StoreError, RedisError, *CONNECTION_ERRORS)


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


@dataclass(frozen=True)
class Verdict:
    """The last check as published in Redis."""

    checked_at: float
    mismatches: list[str] = field(default_factory=list)  # Mismatch.describe() of each
    resync_done: str = ""  # id of the last resync request carried out
    restored: list[str] = field(default_factory=list)  # accounts that resync restored


def read_verdict(redis: Redis, keys: Keys) -> Verdict | None:
    """The writing engine's last verdict, or None when no engine has checked yet."""
    raw = {k.decode(): v.decode() for k, v in redis.hgetall(keys.state_check()).items()}
    if "checked_at" not in raw:
        return None
    return Verdict(
        checked_at=float(raw["checked_at"]),
        mismatches=json.loads(raw.get("mismatches", "[]")),
        resync_done=raw.get("resync_done", ""),
        restored=json.loads(raw.get("restored", "[]")),
    )


def request_resync(redis: Redis, keys: Keys) -> str:
    """Ask the writing engine to restore lost accounts at its next check; the request's id."""
    request = uuid.uuid4().hex
    redis.hset(keys.state_control(), "resync", request)
    return request


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
        self._last_poll = -math.inf

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
        """Check when ``interval`` has passed or a resync is requested; never raises."""
        now = time.monotonic()
        try:
            request = self._resync_request(now)
            if request is None and now - self._last < self.interval:
                return
            self._last = now
            mismatches = self.check()
            restored = self.resync(mismatches) if request is not None else []
            if restored:
                mismatches = self.check()  # publish the repaired state, not the old one
            self._publish(mismatches, request, restored)
        except CHECK_ERRORS as exc:
            log.warning("trade state check failed: %s", exc)

    def _resync_request(self, now: float) -> str | None:
        """A pending ``tradeguard state resync`` request id (polled twice a second)."""
        if now - self._last_poll < 0.5:
            return None
        self._last_poll = now
        raw = self.state.redis.hget(self.state.keys.state_control(), "resync")
        return None if raw is None else as_text(raw)

    def _publish(
        self, mismatches: list[Mismatch], request: str | None, restored: list[str]
    ) -> None:
        fields = {
            "checked_at": repr(time.time()),
            "mismatches": json.dumps([m.describe() for m in mismatches]),
        }
        if request is not None:
            fields.update(resync_done=request, restored=json.dumps(restored))
        pipe = self.state.redis.pipeline(transaction=True)
        pipe.hset(self.state.keys.state_check(), mapping=fields)
        if request is not None:
            pipe.hdel(self.state.keys.state_control(), "resync")
        pipe.execute()

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
