"""Moves results from the result stream into DuckDB, and snapshots account state.

Every replica keeps the whole trade history: each persister reads the result stream through a
consumer group of its own, ``store:<consumer>`` (``store_group``; the consumer is the replica id
under HA, a configured and finite name), so every replica's DuckDB file receives every result,
whoever executed it, and a failover loses none of the history. A group is created at the start
of the stream (``id="0"``): a replica starting for the first time back-fills whatever the
stream still holds; one restarting under the same id finds its group where it left it and
re-reads its own pending entries first. Results are keyed by signal id and the first stored
wins (``DuckStore.insert_results``); every group reads the stream in the same order, so a
result re-emitted for the same signal (an engine repeating a recorded result after a crash, a
stale leader's) is one row with the same content in every replica's file.

Only the leader (``active``) snapshots account state and compares it with Redis (and carries
out a resync): those read and repair the shared Redis trade state, which one writer must own.

The group all replicas shared before (``LEGACY_GROUP``, ``store``) is no longer read: nothing
adds to its pending list any more and no tradeguard metric reads it. It is left in place
(a replica destroys no group); an operator may drop it with ``XGROUP DESTROY tg:results store``.

A DuckDB outage only delays persistence: entries stay pending (and are counted as sync
failures) until a write succeeds.

Writes can also be stopped on purpose (the ``stop_duckdb_writes`` remediation, for a disk
filling up): while the write gate is closed the persister reads nothing more from the result
stream and acknowledges nothing, so the results wait in the stream, none lost, and it takes no
state snapshot; the store refuses writes too (``tradeguard_duckdb_writes_enabled`` 0). Opened
again, it re-reads its own pending entries and carries on where it stopped.

Only delays it up to a point: the stream is capped (``MAXLEN ~ 10000``), so an outage long
enough lets the engine's appends trim results the store never persisted. Those are counted in
``tradeguard_results_dropped_total{reason="trimmed_unpersisted"}``, never lost silently, in both
ways it can happen: trimmed while pending here (a re-read returns the entry id with no fields),
and trimmed before this group was ever given them (Redis 7 counts every entry added to the
stream and every entry read by the group; once the group has caught up, their difference is
what it will never read, and it can only grow by trimming). Each replica counts what its own
group lost, that is what is missing from its own DuckDB file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from redis.exceptions import ResponseError

from tradeguard.bus.connection import AUTH_ERRORS, CONNECTION_ERRORS, as_text
from tradeguard.bus.instrument import LayerInstruments
from tradeguard.bus.results import RESULT_FIELD, ResultStream, TradeResult
from tradeguard.bus.trade_state import TradeState
from tradeguard.metrics.catalog import Metrics
from tradeguard.store.consistency import ConsistencyChecker
from tradeguard.store.duck import DuckStore, StoreError

log = logging.getLogger(__name__)
GROUP_PREFIX = "store"
LEGACY_GROUP = "store"  # the one group all replicas shared before; no longer read
SKIP_CHECK_INTERVAL = 1.0  # seconds between two checks for results trimmed before being read
# Signal ids this process stored lately, so a re-emitted result is not counted twice. Twice the
# stream's default cap: a re-emission follows its original while both are still in the stream.
RECENT_IDS = 20_000


def store_group(consumer: str) -> str:
    """The result-stream consumer group of the replica (engine consumer) ``consumer``."""
    return f"{GROUP_PREFIX}:{consumer}"


def _why(why: str) -> str:
    return f" ({why})" if why else ""


def _entry_key(entry_id: bytes | str) -> tuple[int, int]:
    text = as_text(entry_id)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class ResultPersister:
    """One loop: read a batch of results, insert it, acknowledge it.

    ``group`` defaults to ``store_group(consumer)``; the engine service passes the group of its
    replica id (the reading consumer in it is ``<id>-store``). ``active`` gates only the
    leader's work on the trade state (snapshots, check, resync), never the results.
    """

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
        group: str | None = None,
    ) -> None:
        self.results = results
        self.store = store
        self.state = state
        self.metrics = metrics
        self.consumer = consumer
        self.group = group or store_group(consumer)
        self.snapshot_interval = snapshot_interval
        self.active = active or (lambda: True)
        self.checker = checker  # compares the snapshots with Redis, on the writer only
        self.persisted = 0  # distinct results this process stored
        self._recent: OrderedDict[str, None] = OrderedDict()  # their signal ids, the newest
        # Entries up to this id were in the stream before this process first read it: their
        # delay is the time the replica was down (or had not started), not processing latency.
        self._backfill_until: tuple[int, int] | None = None
        self._dirty_accounts: set[str] = set()
        self._pending_first = True  # re-read our own pending entries after a restart/failure
        self._refused = False  # Redis refuses our credentials: said once, until it accepts
        self._last_snapshot = 0.0
        self._never_read: int | None = None  # entries the group skipped, at the last check
        self._last_read = 0  # entries the last batch read (0: caught up, for drain)
        self._last_skip_check = -SKIP_CHECK_INTERVAL
        # The write gate: held while one batch is read, stored and acknowledged, so closing it
        # waits for the batch in hand and nothing is read or written after.
        self._batch = threading.Lock()
        self._writes_stopped = False
        self.writes_stopped_why = ""
        self.writes_stopped_at: float | None = None  # time.time() the gate closed

    # ---- the write gate ------------------------------------------------------------------
    @property
    def writes_stopped(self) -> bool:
        """True while the write gate is closed (results wait in the stream)."""
        return self._writes_stopped

    def stop_writes(self, why: str = "", timeout: float = 5.0) -> bool:
        """Close the write gate: no more reads, acknowledgements or snapshots. Waits up to
        ``timeout`` for the batch in hand to finish; False if it was still being written (it
        is then refused by the store and re-read after ``resume_writes``)."""
        was = self._writes_stopped
        self._writes_stopped = True  # no new batch starts from here
        quiet = self._batch.acquire(timeout=max(0.0, timeout))
        try:
            self.store.set_writes_enabled(False)
            if not was:
                self.writes_stopped_why = why
                self.writes_stopped_at = time.time()
                log.warning("DuckDB writes stopped%s; results wait in the stream", _why(why))
        finally:
            if quiet:
                self._batch.release()
        return quiet

    def resume_writes(self) -> None:
        """Open the write gate: re-read this group's pending entries, then carry on."""
        with self._batch:
            was = self._writes_stopped
            self.store.set_writes_enabled(True)
            self._writes_stopped = False
            self._pending_first = True
            self.writes_stopped_why = ""
            self.writes_stopped_at = None
        if was:
            log.warning("DuckDB writes resumed; persisting the results that waited")

    def retry_pending(self) -> None:
        """Re-read this group's pending entries (results read but not stored) at the next
        batch, instead of after the next failure."""
        with self._batch:
            self._pending_first = True

    @property
    def watching_trims(self) -> bool:
        """True once a baseline for results trimmed before being read has been taken."""
        return self._never_read is not None

    def ensure_group(self) -> None:
        """Create this replica's group at the stream's start (back-fill), unless it exists."""
        key = self.results.keys.results
        try:
            self.results.redis.xgroup_create(key, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        if self._backfill_until is None:
            stream = self.results.redis.xinfo_stream(key)
            self._backfill_until = _entry_key(stream.get("last-generated-id") or "0-0")

    def step(self, block_ms: int = 100, count: int = 500) -> int:
        """Persist one batch; return how many results it stored (0 while writes are stopped)."""
        with self._batch:
            if self._writes_stopped:
                return 0
            return self._step(block_ms, count)

    def drain(self, rounds: int = 20) -> bool:
        """Store every result already in the stream now, without waiting for new ones; True
        once caught up. A resync reads DuckDB's fills right after, with the engine between two
        signals, so nothing is added meanwhile. False while writes are stopped or failing."""
        with self._batch:
            for _ in range(rounds):
                if self._writes_stopped:
                    return False
                pending = self._pending_first
                self._step(None, 500)
                if not pending and not self._pending_first and self._last_read == 0:
                    return True
        return False

    def _step(self, block_ms: int | None, count: int) -> int:
        start_id = "0" if self._pending_first else ">"
        self._last_read = 0
        try:
            reply = self.results.redis.xreadgroup(
                self.group,
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
        self._last_read = len(entries)
        if self._pending_first and not entries:
            self._pending_first = False
            return 0
        if not self._pending_first and len(entries) < count:
            self._count_skipped()  # caught up: everything added so far was read or trimmed
        gone = [eid for eid, fields in entries if not fields]
        if gone:  # pending entries trimmed before they were persisted: ack once, count once
            self.results.redis.xack(self.results.keys.results, self.group, *gone)
            self._count_dropped(len(gone), "while pending")
            entries = [(eid, fields) for eid, fields in entries if fields]
        ids = [eid for eid, _f in entries]
        # One result per signal id, the first in stream order (what DuckDB keeps, too); a
        # signal id this process stored already is a re-emission: stored again (a no-op), acked,
        # not counted twice.
        batch: list[TradeResult] = []
        fresh: list[tuple[bytes, TradeResult]] = []
        seen: set[str] = set()
        for eid, fields in entries:
            r = TradeResult.from_json(fields[RESULT_FIELD])
            if r.signal_id in seen:
                continue
            seen.add(r.signal_id)
            batch.append(r)
            if r.signal_id not in self._recent:
                fresh.append((eid, r))
        try:
            self.store.insert_results(batch)
        except StoreError as exc:
            log.warning("result sync failed, will retry: %s", exc)
            if self.metrics is not None:
                self.metrics.result_sync_failures.inc()
            self._pending_first = True
            time.sleep(0.2)
            return 0
        now = time.time()
        for eid, r in fresh:  # stored: counted now, so a failed ack's re-read is not news
            self._remember(r.signal_id)
            if self.metrics is not None and not self._backfilled(eid):
                self.metrics.result_processing_duration.observe(max(0.0, now - r.executed_at))
        self._dirty_accounts.update(r.account for _eid, r in fresh if r.status == "filled")
        self.persisted += len(fresh)
        if ids:
            self.results.redis.xack(self.results.keys.results, self.group, *ids)
        # Followers keep their dirty accounts (a finite set) for their first term's snapshot.
        if self.active():
            self._snapshot_state(now)
        return len(fresh)

    def _remember(self, signal_id: str) -> None:
        self._recent[signal_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    def _backfilled(self, entry_id: bytes) -> bool:
        """Whether the entry was in the stream before this process first read it."""
        until = self._backfill_until
        return until is not None and _entry_key(entry_id) <= until

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
        group = next((g for g in groups if as_text(g.get("name")) == self.group), None)
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
            layer = self.results.instruments  # whose Redis a refusal comes from
            try:
                self.step()  # every replica, leader or not: its DuckDB keeps every result
                if self.checker is not None and self.active():
                    layer = self.checker.state.instruments
                    self.checker.maybe_check(self.drain)  # shared Redis state: leader's only
                if self._writes_stopped:
                    stop.wait(0.1)  # nothing to read until the gate opens; the check goes on
                backoff = 0.05
                self._credentials_accepted()
            except AUTH_ERRORS as exc:  # before CONNECTION_ERRORS: a subclass of it
                self._credentials_refused(layer, exc)
                self._pending_first = True
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
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
            except AUTH_ERRORS as exc:  # before CONNECTION_ERRORS: a subclass of it
                self._credentials_refused(self.results.instruments, exc)
                stop.wait(0.2)
            except (*CONNECTION_ERRORS, ResponseError):
                stop.wait(0.2)

    def _credentials_refused(self, layer: LayerInstruments, exc: Exception) -> None:
        """A password changed under the running persister: not an outage to wait out
        silently. Counted on every refusal, logged as an error when refusals start."""
        layer.auth_error()
        if not self._refused:
            self._refused = True
            log.error(
                "Redis (%s layer) refused the persister's credentials (%s); results wait in "
                "the stream until the password is fixed",
                layer.layer,
                exc,
            )

    def _credentials_accepted(self) -> None:
        if self._refused:
            self._refused = False
            log.info("Redis accepts the persister's credentials again")
