"""Moves results from the result stream into DuckDB, and snapshots account state.

It reads the result stream through its own consumer group, so a DuckDB outage only delays
persistence: entries stay pending (and are counted as sync failures) until a write succeeds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from redis.exceptions import ResponseError

from tradeguard.bus.connection import CONNECTION_ERRORS
from tradeguard.bus.results import RESULT_FIELD, ResultStream, TradeResult
from tradeguard.bus.trade_state import TradeState
from tradeguard.metrics.catalog import Metrics
from tradeguard.store.duck import DuckStore, StoreError

log = logging.getLogger(__name__)
GROUP = "store"


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
    ) -> None:
        self.results = results
        self.store = store
        self.state = state
        self.metrics = metrics
        self.consumer = consumer
        self.snapshot_interval = snapshot_interval
        self.active = active or (lambda: True)
        self.persisted = 0
        self._dirty_accounts: set[str] = set()
        self._pending_first = True  # re-read our own pending entries after a restart/failure
        self._last_snapshot = 0.0

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
        batch = [TradeResult.from_json(f[RESULT_FIELD]) for _id, f in entries if f]
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
                stop.wait(0.1)
                continue
            try:
                self.step()
                backoff = 0.05
            except CONNECTION_ERRORS:
                self._pending_first = True
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def ensure_group_safely(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.ensure_group()
                return
            except CONNECTION_ERRORS:
                stop.wait(0.2)
