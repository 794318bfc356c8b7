"""Redis trade state against its durable copy in DuckDB: which accounts disagree, and the fix.

DuckDB holds every result (so every fill) and a snapshot of each account that the leader's
persister takes about once a second, so it may trail Redis by the latest fills. The trade count,
which only grows, orders the copies:

- DuckDB behind (fewer trades, or no row yet): normal, the next snapshot catches up;
- the same count: balance and positions must agree, else the copies **diverged** (a second
  writer, a hand edit);
- Redis counting fewer trades than DuckDB's snapshot or than its filled results, or the account
  gone from Redis: Redis **lost** state (restarted without its append-only file, flushed,
  evicted, failed over to a replica that was behind). The fills keep showing a loss after the
  trading that follows it has lifted Redis's count past the snapshot's.

A lost account is what ``tradeguard state resync`` (and the ``resync_state`` remediation)
repairs: the command leaves a request in Redis and the writing engine, the only process holding
the DuckDB file, carries it out at its next check and answers. The account is rebuilt from the
fills in DuckDB's results (``store/rebuild.py``), not copied from the snapshot, which trails
Redis and misses the fills applied after the loss; it is done with the engine between two
signals and after every result already in the stream reached DuckDB, so no fill is missed or
applied meanwhile. An account DuckDB holds too few fills for (results trimmed from the stream
before they were stored) is left for a person, never written with fewer trades. Diverged
accounts are only reported: which side is right needs a human and the broker. Each verdict is
also written to Redis (``tradeguard state check`` reads it), so an operator needs no access to
the DuckDB file.
The persister never snapshots a Redis state over a DuckDB row with more trades, so a Redis that
lost state cannot erase the durable copy before the check sees it.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError

from tradeguard.bus.connection import CONNECTION_ERRORS, as_text
from tradeguard.bus.keys import Keys
from tradeguard.bus.trade_state import AccountState, TradeState
from tradeguard.metrics.catalog import Metrics
from tradeguard.store.duck import DuckStore, StoreError
from tradeguard.store.rebuild import rebuild_account

log = logging.getLogger(__name__)

LOST = "lost"  # Redis has fewer trades than DuckDB, or no hash at all
DIVERGED = "diverged"  # same trade count, different balance or positions
# Longest wait for the signal in hand before a resync rebuilds (the engine's pause); shorter
# than the resync_state handler's wait for the verdict, so a busy engine reads as a problem.
RESYNC_PAUSE_SECONDS = 5.0
# Either side unreadable: the check fails (counted), the next one tries again.
CHECK_ERRORS: tuple[type[Exception], ...] = (StoreError, RedisError, *CONNECTION_ERRORS)


@dataclass(frozen=True)
class Mismatch:
    account: str
    kind: str  # LOST or DIVERGED
    redis: AccountState | None
    duck: AccountState | None  # DuckDB's snapshot (None: fills stored, no snapshot yet)
    known_trades: int  # the trades DuckDB knows of: its snapshot's count or its fills, the more

    def describe(self) -> str:
        redis = "no hash" if self.redis is None else f"{self.redis.trades} trades"
        return f"{self.account}: {self.kind} (Redis {redis}, DuckDB {self.known_trades} trades)"


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _agree(redis: AccountState, duck: AccountState) -> bool:
    symbols = set(redis.positions) | set(duck.positions)
    return _same(redis.balance, duck.balance) and all(
        _same(redis.positions.get(s, 0.0), duck.positions.get(s, 0.0)) for s in symbols
    )


def compare(
    duck_states: Mapping[str, AccountState],
    redis_states: Mapping[str, AccountState | None],
    fills: Mapping[str, int] | None = None,
) -> list[Mismatch]:
    """The accounts whose two copies disagree, by the rules in the module docstring.

    ``fills`` counts each account's filled results in DuckDB. Every fill is applied to Redis
    once (after its result is on the stream), so Redis counts at least as many trades once the
    signal in hand is settled: fewer is a loss, however long ago it happened. The snapshot's
    count alone cannot show that for long: once the fills after a loss lift Redis's count past
    it, the two look ordered again.
    """
    counts = fills or {}
    mismatches = []
    for account in sorted(set(duck_states) | set(counts)):
        duck = duck_states.get(account)
        known = max(duck.trades if duck is not None else 0, counts.get(account, 0))
        redis = redis_states.get(account)
        if redis is None or redis.trades < known:
            mismatches.append(Mismatch(account, LOST, redis, duck, known))
        elif duck is not None and redis.trades == duck.trades and not _agree(redis, duck):
            mismatches.append(Mismatch(account, DIVERGED, redis, duck, known))
    return mismatches


@dataclass(frozen=True)
class Verdict:
    """The last check as published in Redis."""

    checked_at: float
    mismatches: list[str] = field(default_factory=list)  # Mismatch.describe() of each
    resync_done: str = ""  # id of the last resync request carried out
    restored: list[str] = field(default_factory=list)  # accounts that resync restored
    resync_problem: str = ""  # why that resync restored less than it should have


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
        resync_problem=raw.get("resync_problem", ""),
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
        pause: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self.state = state
        self.store = store
        self.metrics = metrics
        self.interval = interval
        # Holds the engine between two signals (no fill applied) while a resync rebuilds; it
        # raises TimeoutError when a signal is still in hand after its wait.
        self.pause = pause
        self._last = -math.inf
        self._last_poll = -math.inf

    def _compare_now(self) -> list[Mismatch]:
        """DuckDB first, then Redis: Redis only moves ahead meanwhile, never behind, except by
        the one signal in hand (its result stored, its fill not applied yet)."""
        duck = self.store.states()
        fills = self.store.fill_counts()
        redis = {account: self.state.get(account) for account in set(duck) | set(fills)}
        return compare(duck, redis, fills)

    def check(self) -> list[Mismatch]:
        """Compare every account DuckDB knows; StoreError or a Redis error if one side fails.

        A loss seen is confirmed with the engine between two signals (the signal in hand could
        make Redis look one fill short); if the engine does not pause in time, it is not
        reported this time, and the next check looks again.
        """
        try:
            mismatches = self._compare_now()
            if any(m.kind == LOST for m in mismatches):
                try:
                    with self.pause():
                        mismatches = self._compare_now()
                except TimeoutError as exc:
                    log.warning("a trade-state loss left unconfirmed for now: %s", exc)
                    mismatches = [m for m in mismatches if m.kind != LOST]
        except CHECK_ERRORS:
            self._count("failed")
            raise
        if self.metrics is not None:
            self.metrics.state_mismatched_accounts.set(len(mismatches))
        self._count("mismatch" if mismatches else "ok")
        for m in mismatches:
            log.error("trade state mismatch: %s", m.describe())
        return mismatches

    def maybe_check(self, drain: Callable[[], bool] = lambda: True) -> None:
        """Check when ``interval`` has passed or a resync is requested; never raises.

        ``drain`` stores the results still in the stream (the persister's) before a resync."""
        now = time.monotonic()
        try:
            request = self._resync_request(now)
            if request is None and now - self._last < self.interval:
                return
            self._last = now
            mismatches = self.check()
            restored: list[str] = []
            problem = ""
            if request is not None and any(m.kind == LOST for m in mismatches):
                restored, problem = self.resync(drain)
                mismatches = self.check()  # publish the repaired state, not the old one
            self._publish(mismatches, request, restored, problem)
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
        self, mismatches: list[Mismatch], request: str | None, restored: list[str], problem: str
    ) -> None:
        fields = {
            "checked_at": repr(time.time()),
            "mismatches": json.dumps([m.describe() for m in mismatches]),
        }
        if request is not None:
            fields.update(
                resync_done=request, restored=json.dumps(restored), resync_problem=problem
            )
        pipe = self.state.redis.pipeline(transaction=True)
        pipe.hset(self.state.keys.state_check(), mapping=fields)
        if request is not None:
            pipe.hdel(self.state.keys.state_control(), "resync")
        pipe.execute()

    def resync(self, drain: Callable[[], bool] = lambda: True) -> tuple[list[str], str]:
        """Rebuild every LOST account from DuckDB's fills and write it into Redis; the accounts
        restored, and why any was not ("" when none was left out)."""
        try:
            with self.pause():
                if not drain():
                    return [], "DuckDB does not hold every result yet (writes stopped or failing)"
                lost = [m for m in self._compare_now() if m.kind == LOST]
                restored, problems = [], []
                for m in lost:
                    rebuilt = rebuild_account(m.account, self.store.fills(m.account), m.duck)
                    if rebuilt.trades < m.known_trades:
                        problems.append(
                            f"{m.account}: DuckDB holds {rebuilt.trades} fill(s) for its "
                            f"{m.known_trades} trades (results trimmed before they were stored)"
                        )
                        continue
                    self.state.put(rebuilt)
                    restored.append(m.account)
                    if self.metrics is not None:
                        self.metrics.state_resyncs.inc()
                    log.warning(
                        "trade state of %s rebuilt from its %d fills in DuckDB",
                        m.account,
                        rebuilt.trades,
                    )
        except TimeoutError as exc:
            return [], f"the engine did not come between two signals: {exc}"
        for problem in problems:
            log.error("trade state not rebuilt, left for a person: %s", problem)
        return restored, "; ".join(problems)

    def _count(self, status: str) -> None:
        if self.metrics is not None:
            self.metrics.state_consistency_checks.labels(status).inc()
