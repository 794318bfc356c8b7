"""The HA loop: one readable state machine over the ledger and the Redis lease.

Every ``renew_interval`` a replica ticks:

1. **Ledger.** A leader renews its ledger lease (epoch and token must still be ours, else it
   demotes). A follower reads the leadership row and, when the lease has expired on the
   database's clock and its own start-up recovery succeeded, tries the compare-and-swap that
   makes it leader with the next epoch. Every replica records a heartbeat.
2. **Redis lease.** The ledger's leader holds the Redis key; if the key names someone else, or
   vanished (Redis restarted empty), that is split-brain: the ledger wins, the leader takes the
   key back, a counter and a gauge move. A replica holding the key without the ledger's blessing
   drops it. Redis unreachable means DB-only mode: same fenced writes, no leadership change.
3. **Deadline.** A leader may start new work only while its last successful ledger renewal is
   younger than ``renew_deadline`` (3 s, below the 5 s TTL): a leader cut from the database
   stops before anyone else can take over, and with no database there is no leader at all.

The engine asks ``may_execute()`` before each signal; the ledger's epoch check inside every
fenced write is what makes a stale leader harmless even when this loop is frozen (SIGSTOP).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from tradeguard.fencing import boot_clock
from tradeguard.ha.figures import CoordinatorFigures
from tradeguard.ha.lease import LeaseUnavailable, RedisLease
from tradeguard.ha.ledger import Ledger, LedgerUnavailable
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.vocabulary import HA_MODES

log = logging.getLogger(__name__)


class Role(StrEnum):
    FOLLOWER = "follower"
    LEADER = "leader"


class Mode(StrEnum):
    NORMAL = "normal"  # ledger and Redis both answer
    DB_ONLY = "db_only"  # Redis unreachable: the ledger alone decides
    NO_DB = "no_db"  # ledger unreachable: nobody may lead


@dataclass
class HAConfig:
    replica_id: str
    ttl: float = 5.0
    renew_interval: float = 1.0
    renew_deadline: float = 3.0
    lease_key: str = "tg:leader"

    def __post_init__(self) -> None:
        if not 0 < self.renew_interval < self.renew_deadline < self.ttl:
            raise ValueError(
                "need 0 < renew_interval < renew_deadline < ttl, got "
                f"{self.renew_interval} / {self.renew_deadline} / {self.ttl}"
            )


class Coordinator:
    """Leadership of one replica."""

    def __init__(
        self,
        config: HAConfig,
        ledger: Ledger,
        lease_factory: Callable[[str], RedisLease],
        metrics: Metrics | None = None,
        eligible: bool = True,
        clock: Callable[[], float] = boot_clock,
        able: Callable[[], bool] = lambda: True,
        drain: Callable[[float], object] | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self._lease_factory = lease_factory
        self.metrics = metrics
        self.eligible = eligible  # False after a failed start-up recovery: never lead
        self.clock = clock
        self.able = able  # False once the engine behind us cannot work: never lead then
        # Called with a timeout when stepping down with the term still ours: the engine stops
        # taking work and finishes the order in flight before the lease is released.
        self.drain = drain
        self.draining = False
        self.started_at = float("-inf")  # clock() when the current term began
        self.figures = CoordinatorFigures(config.replica_id)
        self.role = Role.FOLLOWER
        self.mode = Mode.NORMAL
        self.epoch = 0  # ours while leading; the last seen otherwise
        self.token = secrets.token_hex(8)
        self.lease = lease_factory(self.token)
        self.last_db_ok = float("-inf")
        self.split_brain = False
        self._lock = threading.RLock()
        self._terms = 0
        self._set_mode(Mode.NORMAL)

    # ---- what the engine asks -----------------------------------------------------------
    def may_execute(self) -> bool:
        return (
            self.role is Role.LEADER
            and not self.draining
            and self.clock() - self.last_db_ok < self.config.renew_deadline
        )

    def holds_term(self, margin: float) -> bool:
        """Leader now, and the ledger lease (renewed at ``last_db_ok`` or later, measured from
        before the renew call) outlasts ``margin`` seconds: an order sent now reaches a broker
        whose worst latency is below ``margin`` while no successor can exist."""
        now = self.clock()
        return (
            self.role is Role.LEADER
            and now - self.last_db_ok < self.config.renew_deadline
            and self.last_db_ok + self.config.ttl - now > margin
        )

    def term_started(self) -> float:
        return self.started_at

    def generation(self) -> int:
        return self._terms

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    # ---- the loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self.figures.heartbeat_running = True
        if self.metrics is not None:
            self.metrics.ha_heartbeat_running.set(1)
        next_tick = self.clock()
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:  # a bug or a reply we did not expect: never end the loop
                    # Without a successful tick last_db_ok ages, so a leader stops acting
                    # by itself at the renew deadline.
                    log.exception("%s: HA tick failed; retrying", self.config.replica_id)
                next_tick += self.config.renew_interval
                delay = next_tick - self.clock()
                if delay < 0:  # we were frozen or slow: do not try to catch up in a burst
                    next_tick, delay = self.clock(), 0.0
                stop.wait(delay)
        finally:
            self.figures.heartbeat_running = False
            if self.metrics is not None:
                self.metrics.ha_heartbeat_running.set(0)
            self.step_down("shutting down")

    def tick(self) -> None:
        with self._lock:
            if self.role is Role.LEADER and not self.may_execute():
                # Frozen or cut off past the deadline: whatever the ledger says now, our
                # term is over; a successor may already hold the next epoch.
                self._demote("renew deadline passed")
            if self.role is Role.LEADER and not self.able():
                # Leading without a working engine would leave every signal pending: hand
                # over now (within one renew interval) instead of renewing a useless lease.
                self._step_down_locked("the engine cannot work")
            db_ok = self._ledger_step()
            redis_ok = self._lease_step(db_ok)
            if not db_ok:
                self._set_mode(Mode.NO_DB)
            else:
                self._set_mode(Mode.NORMAL if redis_ok else Mode.DB_ONLY)
            self._publish()

    def _ledger_step(self) -> bool:
        cfg = self.config
        start = time.perf_counter()
        # The lease runs from the database's NOW() inside the call, which is after this: an
        # interval measured from here never outlives the lease, however slow the call.
        called_at = self.clock()
        try:
            if self.role is Role.LEADER:
                if not self.ledger.renew(cfg.replica_id, self.token, self.epoch, cfg.ttl):
                    self._demote("ledger lease is no longer ours")
                else:
                    self.figures.current_leader_db = cfg.replica_id
            if self.role is Role.FOLLOWER:
                record = self.ledger.read()
                self.figures.current_leader_db = record.holder if not record.expired else None
                self.epoch = record.epoch
                if record.expired and self.eligible and self.able():
                    new_epoch = self.ledger.try_acquire(
                        cfg.replica_id, self.token, record.epoch, cfg.ttl
                    )
                    if new_epoch is not None:
                        self._promote(new_epoch)
            self.ledger.heartbeat(cfg.replica_id, self.is_leader, self.epoch, self.mode.value)
        except LedgerUnavailable as exc:
            self._sync_done(start, ok=False)
            log.warning("%s: ledger unavailable: %s", cfg.replica_id, exc)
            return False
        self.last_db_ok = called_at
        self._sync_done(start, ok=True)
        now = time.time()
        self.figures.last_heartbeat = now
        if self.metrics is not None:
            self.metrics.ha_heartbeat_timestamp.set(now)
        return True

    def _lease_step(self, db_ok: bool) -> bool:
        try:
            if self.role is Role.LEADER:
                if not self.lease.renew():
                    holder = self.lease.holder()
                    # The ledger says we lead, Redis disagrees (another holder, or the key
                    # vanished because Redis restarted empty): the ledger wins.
                    self._split_brain(holder)
                    self.lease.claim()
                else:
                    self._clear_split_brain()
                self.figures.current_leader_redis = self.config.replica_id
            else:
                holder = self.lease.holder()
                self.figures.current_leader_redis = holder
                if holder == self.config.replica_id:
                    self.lease.release()  # we hold the key without the ledger: give it up
                mismatch = db_ok and holder is not None and holder != self.figures.current_leader_db
                self._set_split_brain_gauge(mismatch)
            return True
        except LeaseUnavailable as exc:
            log.debug("%s: Redis unavailable: %s", self.config.replica_id, exc)
            self.figures.current_leader_redis = None
            return False

    # ---- transitions ---------------------------------------------------------------------
    def _promote(self, epoch: int) -> None:
        self.role = Role.LEADER
        self.epoch = epoch
        # After the acquire returned: the previous lease had expired on the database by then,
        # so every order of an earlier term reached the broker before this instant.
        self.started_at = self.clock()
        self._terms += 1
        self.figures.current_leader_db = self.config.replica_id
        self.figures.record_leadership_change()
        if self.metrics is not None:
            self.metrics.ha_leadership_changes.inc()
        log.info("%s: leader with epoch %d", self.config.replica_id, epoch)
        try:
            self.lease.claim()
        except LeaseUnavailable:
            pass  # DB-only mode; the lease step will retry

    def _demote(self, why: str) -> None:
        if self.role is not Role.LEADER:
            return
        self.role = Role.FOLLOWER
        self.figures.record_leadership_change()
        if self.metrics is not None:
            self.metrics.ha_leadership_changes.inc()
        log.warning("%s: stepping down from epoch %d: %s", self.config.replica_id, self.epoch, why)
        with contextlib.suppress(LeaseUnavailable):
            self.lease.release()
        self.token = secrets.token_hex(8)  # a new term will need a new token
        self.lease = self._lease_factory(self.token)

    def step_down(self, why: str = "graceful switchover") -> None:
        """Release both leases now so a successor can take over within one renew interval."""
        with self._lock:
            self._step_down_locked(why)
            self._publish()

    def _step_down_locked(self, why: str) -> None:
        if self.role is not Role.LEADER:
            return
        try:
            if self.drain is not None and self.may_execute():
                # Stop taking work and let the order in flight finish under our term, then
                # hand over: the successor finds it done instead of waiting out its outcome.
                self.draining = True
                self.drain(self.config.renew_deadline)
            try:
                self.ledger.release(self.config.replica_id, self.token, self.epoch)
            except LedgerUnavailable:
                pass  # the lease will expire on its own
            self._demote(why)
        finally:
            self.draining = False

    def _split_brain(self, other: str | None) -> None:
        if self.metrics is not None:
            self.metrics.ha_split_brain_detected.inc()
        log.warning(
            "%s: split-brain: Redis names %s, the ledger names us (epoch %d); "
            "taking the Redis lease back",
            self.config.replica_id,
            other,
            self.epoch,
        )
        self._set_split_brain_gauge(True)

    def _clear_split_brain(self) -> None:
        self._set_split_brain_gauge(False)

    def _set_split_brain_gauge(self, value: bool) -> None:
        self.split_brain = value
        if self.metrics is not None:
            self.metrics.ha_split_brain.set(1 if value else 0)

    def _set_mode(self, mode: Mode) -> None:
        self.mode = mode
        self.figures.fallback_mode = mode is Mode.DB_ONLY
        if self.metrics is not None:
            for choice in HA_MODES:
                self.metrics.ha_mode.labels(choice).set(1 if choice == mode.value else 0)
            self.metrics.ha_fallback_mode.set(1 if mode is Mode.DB_ONLY else 0)

    def _sync_done(self, start: float, ok: bool) -> None:
        seconds = time.perf_counter() - start
        self.figures.record_sync(seconds, ok)
        if self.metrics is not None:
            self.metrics.ha_db_sync.labels("success" if ok else "failure").inc()
            self.metrics.ha_db_sync_duration.observe(seconds)

    def _publish(self) -> None:
        self.figures.is_leader = self.is_leader
        if self.metrics is None:
            return
        m = self.metrics
        m.ha_is_leader.set(1 if self.is_leader else 0)
        m.ha_epoch.set(self.epoch)
        m.ha_leader_info.clear()
        m.ha_leader_info.labels(
            self.figures.current_leader_redis or "", self.figures.current_leader_db or ""
        ).set(1)

    # ---- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        return {
            "replica": self.config.replica_id,
            "role": self.role.value,
            "epoch": self.epoch,
            "mode": self.mode.value,
            "may_execute": self.may_execute(),
            "split_brain": self.split_brain,
            "eligible": self.eligible,
            "leader_redis": self.figures.current_leader_redis,
            "leader_db": self.figures.current_leader_db,
        }
