"""Moves results from the result stream into DuckDB, and snapshots account state.

It reads the result stream through its own consumer group, so a DuckDB outage only delays
persistence: entries stay pending (and are counted as sync failures) until a write succeeds.

Only delays it up to a point: the stream is capped (``MAXLEN ~ 10000``), so an outage long
enough lets the engine's appends trim results the store never persisted. Those are counted in
``tradeguard_results_dropped_total{reason="trimmed_unpersisted"}``, never lost silently, in both
ways it can happen: trimmed while pending here (a re-read returns the entry id with no fields),
and trimmed before this group was ever given them (Redis 7 counts every entry added to the
stream and every entry read by the group; once the group has caught up, their difference is
what it will never read, and it can only grow by trimming).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from redis.exceptions import ResponseError

from tradeguard.bus.connection import CONNECTION_ERRORS, as_text
from tradeguard.bus.results import RESULT_FIELD, ResultStream, TradeResult
from tradeguard.bus.trade_state import TradeState
from tradeguard.metrics.catalog import Metrics
from tradeguard.store.consistency import ConsistencyChecker
from tradeguard.store.duck import DuckStore, StoreError

log = logging.getLogger(__name__)
GROUP = "store"
SKIP_CHECK_INTERVAL = 1.0  # seconds between two checks for results trimmed before being read


class ResultPersister:
    """One loop: read a batch of results, insert it, acknowledge it."""

    def __init__(
        self,
        results: ResultStream,
        store: DuckStore,
        state: TradeState | None = None,
        metrics: Metrics | None = None,
        consumer: str = "persister",
        snapshot_interval: float = 1.0,
        active: Callable[[], bool] | None = None,
        checker: ConsistencyChecker | None = None,
    ) -> None:
        self.results = results
        self.store = store
        self.state = state
        self.metrics = metrics
        self.consumer = consumer
        self.snapshot_interval = snapshot_interval
        self.active = active or (lambda: True)
        self.checker = checker  # compares the snapshots with Redis, on the writer only
        self.persisted = 0
        self._dirty_accounts: set[str] = set()
        self._pending_first = True  # re-read our own pending entries after a restart/failure
        self._last_snapshot = 0.0
        self._never_read: int | None = None  # entries the group skipped, at the last check
        self._last_skip_check = -SKIP_CHECK_INTERVAL

    @property
    def watching_trims(self) -> bool:
        """True once a baseline for results trimmed before being read has been taken."""
        return self._never_read is not None

    def ensure_group(self) -> None:
        try:
            self.results.redis.xgroup_create(
                self.results.keys.results, GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def step(self, block_ms: int = 100, count: int = 500) -> int:
        """Persist one batch; return how many results it stored."""
        start_id = "0" if self._pending_first else ">"
        try:
            reply = self.results.redis.xreadgroup(
                GROUP,
                self.consumer,
                {self.results.keys.results: start_id},
                count=count,
                block=None if self._pending_first else block_ms,
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                self.ensure_group()
                return 0
            raise
        entries = reply[0][1] if reply else []
        if self._pending_first and not entries:
            self._pending_first = False
            return 0
        if not self._pending_first and len(entries) < count:
            self._count_skipped()  # caught up: everything added so far was read or trimmed
        gone = [eid for eid, fields in entries if not fields]
        if gone:  # pending entries trimmed before they were persisted: ack once, count once
            self.results.redis.xack(self.results.keys.results, GROUP, *gone)
            self._count_dropped(len(gone), "while pending")
            entries = [(eid, fields) for eid, fields in entries if fields]
        batch = [TradeResult.from_json(f[RESULT_FIELD]) for _id, f in entries]
        ids = [eid for eid, _f in entries]
        try:
            self.store.insert_results(batch)
        except StoreError as exc:
            log.warning("result sync failed, will retry: %s", exc)
            if self.metrics is not None:
                self.metrics.result_sync_failures.inc()
            self._pending_first = True
            time.sleep(0.2)
            return 0
        if ids:
            self.results.redis.xack(self.results.keys.results, GROUP, *ids)
        now = time.time()
        if self.metrics is not None:
            for r in batch:
                self.metrics.result_processing_duration.observe(max(0.0, now - r.executed_at))
        self._dirty_accounts.update(r.account for r in batch if r.status == "filled")
        self.persisted += len(batch)
        self._snapshot_state(now)
        return len(batch)

    def _count_skipped(self) -> None:
        """Count results trimmed before this group read them (Redis 7's stream counters).

        Read in one MULTI so the two counters describe the same moment; only when the group
        has delivered the newest entry is ``entries-added - entries-read`` exactly the number
        of entries it skipped. The first reading is the baseline: what was skipped before this
        process started watching is not news.
        """
        now = time.monotonic()
        if now - self._last_skip_check < SKIP_CHECK_INTERVAL:
            return
        self._last_skip_check = now
        key = self.results.keys.results
        pipe = self.results.redis.pipeline(transaction=True)
        pipe.xinfo_stream(key)
        pipe.xinfo_groups(key)
        try:
            stream, groups = pipe.execute()
        except ResponseError as exc:  # the stream vanished (a Redis restarted empty): next time
            log.warning("cannot read the result stream's counters: %s", exc)
            return
        group = next((g for g in groups if as_text(g.get("name")) == GROUP), None)
        if group is None or group.get("entries-read") is None:
            return  # Redis < 7, or a group whose read counter Redis cannot know
        if as_text(stream.get("last-generated-id")) != as_text(group.get("last-delivered-id")):
            return  # appended meanwhile: not caught up after all; try at the next batch
        never_read = int(stream["entries-added"]) - int(group["entries-read"])
        if self._never_read is not None and never_read > self._never_read:
            self._count_dropped(never_read - self._never_read, "before the store read them")
        self._never_read = never_read

    def _count_dropped(self, n: int, when: str) -> None:
        log.error("%d results were trimmed from the result stream %s: not in DuckDB", n, when)
        if self.metrics is not None:
            self.metrics.results_dropped.labels("trimmed_unpersisted").inc(n)

    def _snapshot_state(self, now: float) -> None:
        if self.state is None or now - self._last_snapshot < self.snapshot_interval:
            return
        self._last_snapshot = now
        accounts, self._dirty_accounts = self._dirty_accounts, set()
        states = [s for a in sorted(accounts) if (s := self.state.get(a)) is not None]
        try:
            self.store.upsert_states(states)
        except StoreError as exc:
            log.warning("state snapshot failed: %s", exc)
            self._dirty_accounts |= accounts

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, riding out Redis outages with backoff."""
        backoff = 0.05
        self.ensure_group_safely(stop)
        while not stop.is_set():
            if not self.active():
                self._pending_first = True
                # Whoever writes meanwhile counts what is trimmed; a new term takes a new
                # baseline instead of counting the same losses again.
                self._never_read = None
                stop.wait(0.1)
                continue
            try:
                self.step()
                if self.checker is not None:
                    self.checker.maybe_check()
                backoff = 0.05
            except (*CONNECTION_ERRORS, ResponseError) as exc:
                # Unreachable, or refusing (READONLY after a failover, OOM, MISCONF, a
                # vanished group): never end the thread on it; back off and re-read.
                if isinstance(exc, ResponseError):
                    log.warning("Redis refused the persister (%s); retrying", exc)
                self._pending_first = True
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def ensure_group_safely(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.ensure_group()
                return
            except (*CONNECTION_ERRORS, ResponseError):
                stop.wait(0.2)
