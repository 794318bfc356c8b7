"""The HA loop: one explicit state machine over the ledger and the Redis lease.

Every ``renew_interval`` a replica ticks, in three steps (see :mod:`tradeguard.ha.decide`):

1. **Read** the world once into a :class:`Snapshot`. A leader whose term is alive and whose
   engine is able renews its ledger lease (the renew is its read) and, unless the ledger
   refused, its Redis key; anyone else reads the leadership row and the key's holder.
2. **Decide**: :func:`decide` is a pure function of the snapshot: acquire, lead, follow, no
   leader, demote (deadline passed, or the lease is no longer ours), step down (the engine
   cannot work), no DB; what to do with the Redis key (reclaim it on split-brain, drop it when
   we hold it without the ledger); the mode (normal, DB-only, no DB). After a requested
   step-down it holds off: it leaves a free lease to the others for ``hold_off`` (default two
   TTLs) unless another replica took it first, so a demotion moves leadership.
3. **Act** on the decision: try the compare-and-swap that makes us leader with the next epoch,
   demote, release, claim or drop the Redis key; record a heartbeat; publish figures. A
   decision that differs from the previous tick's is logged at INFO.

The ledger is the authority: if the Redis key names someone else, or vanished (Redis restarted
empty), the ledger's leader takes it back and a counter and a gauge move; Redis unreachable
means DB-only mode, with the same fenced writes and no leadership change. A leader may start new
work only while its last successful ledger renewal is younger than ``renew_deadline`` (3 s,
below the 5 s TTL): a leader cut from the database stops before anyone else can take over, and
with no database there is no leader at all.

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
from typing import TypeVar

from tradeguard.fencing import boot_clock
from tradeguard.ha.decide import (
    Action,
    Decision,
    HAConfig,
    KeyAction,
    Mode,
    Role,
    Snapshot,
    decide,
    hold_until_after,
    renews,
    term_alive,
)
from tradeguard.ha.figures import CoordinatorFigures
from tradeguard.ha.lease import LeaseRefused, LeaseUnavailable, RedisLease
from tradeguard.ha.ledger import Ledger, LedgerUnavailable
from tradeguard.ha.records import Leadership
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.vocabulary import HA_MODES

__all__ = ["Coordinator", "HAConfig", "Mode", "Role"]

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        # clock() before which we do not acquire: set by a requested step-down
        self.hold_until = float("-inf")
        self.split_brain = False
        self._lock = threading.RLock()
        self._terms = 0
        self._decision: Decision | None = None  # the last tick's, to log only the changes
        self._refused = False  # Redis refuses our credentials: said once, until it accepts
        self._sync_seconds = 0.0  # time spent in ledger calls during the current tick
        self._set_mode(Mode.NORMAL)

    # ---- what the engine asks -----------------------------------------------------------
    def may_execute(self) -> bool:
        return (
            self.role is Role.LEADER
            and not self.draining
            and term_alive(self.last_db_ok, self.clock(), self.config)
        )

    def holds_term(self, margin: float) -> bool:
        """Leader now, and the ledger lease (renewed at ``last_db_ok`` or later, measured from
        before the renew call) outlasts ``margin`` seconds: an order sent now reaches a broker
        whose worst latency is below ``margin`` while no successor can exist."""
        now = self.clock()
        return (
            self.role is Role.LEADER
            and term_alive(self.last_db_ok, now, self.config)
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
        """One pass of the state machine: read, decide, act."""
        with self._lock:
            self._sync_seconds = 0.0
            snapshot = self._read()
            decision = decide(snapshot, self.config)
            if decision != self._decision:
                log.info("%s: %s: %s", self.config.replica_id, decision, decision.why)
                self._decision = decision
            self._act(snapshot, decision)
            self._publish()

    def _read(self) -> Snapshot:
        cfg = self.config
        # The lease runs from the database's NOW() inside the call, which is after this: an
        # interval measured from here never outlives the lease, however slow the call.
        now = self.clock()
        able = self.able()
        renewing = renews(self.role, able, self.last_db_ok, now, cfg)
        row: Leadership | None = None
        renewed: bool | None = None
        ledger_error: str | None = None
        try:
            if renewing:
                renewed = self._ledger_call(
                    lambda: self.ledger.renew(cfg.replica_id, self.token, self.epoch, cfg.ttl)
                )
            else:
                row = self._ledger_call(self.ledger.read)
        except LedgerUnavailable as exc:
            ledger_error = str(exc) or type(exc).__name__
            log.debug("%s: ledger unavailable: %s", cfg.replica_id, exc)
        holder: str | None = None
        redis_renewed: bool | None = None
        redis_error: str | None = None
        try:
            if renewing and renewed is not False:
                redis_renewed = self.lease.renew()
                holder = cfg.replica_id if redis_renewed else self.lease.holder()
            else:
                holder = self.lease.holder()
        except LeaseUnavailable as exc:
            redis_error = str(exc) or type(exc).__name__
            self._redis_unavailable(exc)
        else:
            self._redis_answered()
        return Snapshot(
            replica=cfg.replica_id,
            role=self.role,
            now=now,
            last_db_ok=self.last_db_ok,
            epoch=self.epoch,
            token=self.token,
            eligible=self.eligible,
            able=able,
            hold_until=self.hold_until,
            row=row,
            renewed=renewed,
            ledger_error=ledger_error,
            redis_holder=holder,
            redis_renewed=redis_renewed,
            redis_error=redis_error,
        )

    def _act(self, s: Snapshot, d: Decision) -> None:
        cfg = self.config
        db_ok = s.ledger_ok
        mode = d.mode
        self.figures.current_leader_redis = s.redis_holder if s.redis_ok else None
        if s.renewed is not None:
            self.figures.current_leader_db = cfg.replica_id if s.renewed else None
        elif s.row is not None:
            self.figures.current_leader_db = s.ledger_leader

        # Leadership.
        if d.action is Action.ACQUIRE and s.row is not None:
            self.epoch = s.row.epoch
            seen = s.row.epoch
            try:
                new_epoch = self._ledger_call(
                    lambda: self.ledger.try_acquire(cfg.replica_id, self.token, seen, cfg.ttl)
                )
            except LedgerUnavailable as exc:
                db_ok = False
                log.warning("%s: ledger unavailable while acquiring: %s", cfg.replica_id, exc)
            else:
                if new_epoch is None:
                    log.info("%s: another replica took epoch %d first", cfg.replica_id, seen + 1)
                elif not self._promote(new_epoch) and mode is Mode.NORMAL:
                    mode = Mode.DB_ONLY  # the key could not be claimed: Redis went away
        elif d.action is Action.STEP_DOWN_ENGINE:
            # No drain: the engine that would finish the order in flight is what failed. The
            # successor waits out the broker's in-flight time before it looks orders up.
            self._step_down_locked(d.why, drain=False)
        elif d.action in (Action.DEMOTE_DEADLINE, Action.DEMOTE_LOST):
            self._demote(d.why)  # the ledger lease is not ours to release (any more)
        if self.role is Role.FOLLOWER and s.row is not None and d.action is not Action.ACQUIRE:
            self.epoch = s.row.epoch
        hold_until = hold_until_after(s)
        if hold_until != self.hold_until:
            log.info("%s: %s leads now; the hold-off is over", cfg.replica_id, s.ledger_leader)
            self.hold_until = hold_until

        # The Redis key.
        try:
            if d.key is KeyAction.RECLAIM:
                self._count_split_brain(s.redis_holder)
                self.lease.claim()
                self.figures.current_leader_redis = cfg.replica_id
            elif d.key is KeyAction.DROP:
                self.lease.release()
                self.figures.current_leader_redis = None
        except LeaseUnavailable as exc:
            self._redis_unavailable(exc)
            self.figures.current_leader_redis = None
            if mode is Mode.NORMAL:
                mode = Mode.DB_ONLY
        if d.split_brain is not None:
            self._set_split_brain_gauge(d.split_brain)

        # The heartbeat, then the bookkeeping of this tick's ledger calls.
        if db_ok:
            try:
                self._ledger_call(
                    lambda: self.ledger.heartbeat(
                        cfg.replica_id, self.is_leader, self.epoch, mode.value
                    )
                )
            except LedgerUnavailable as exc:
                db_ok = False
                log.warning("%s: ledger unavailable for the heartbeat: %s", cfg.replica_id, exc)
        self._sync_done(self._sync_seconds, ok=db_ok)
        if db_ok:
            # Only now, after any demotion: may_execute() never sees a fresh last_db_ok
            # together with a role this tick took away.
            self.last_db_ok = s.now
            stamp = time.time()
            self.figures.last_heartbeat = stamp
            if self.metrics is not None:
                self.metrics.ha_heartbeat_timestamp.set(stamp)
        self._set_mode(mode if db_ok else Mode.NO_DB)

    def _redis_unavailable(self, exc: LeaseUnavailable) -> None:
        """An outage is routine (debug; the mode and its metrics say it); refused credentials
        are a setting to fix: counted on every call, logged as an error when they start."""
        if not isinstance(exc, LeaseRefused):
            log.debug("%s: Redis unavailable: %s", self.config.replica_id, exc)
            return
        if self.metrics is not None:
            self.metrics.redis_auth_errors.labels(exc.layer).inc()
        if not self._refused:
            self._refused = True
            log.error(
                "%s: %s; the lease runs on the ledger alone until the password is fixed",
                self.config.replica_id,
                exc,
            )

    def _redis_answered(self) -> None:
        if self._refused:
            self._refused = False
            log.info("%s: Redis accepts our credentials again", self.config.replica_id)

    def _ledger_call(self, call: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return call()
        finally:
            self._sync_seconds += time.perf_counter() - start

    # ---- transitions ---------------------------------------------------------------------
    def _promote(self, epoch: int) -> bool:
        """Lead with ``epoch``; False when the Redis key could not be claimed (DB-only)."""
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
            self.figures.current_leader_redis = None
            return False  # DB-only mode; the next tick's renew fails over to a claim
        self.figures.current_leader_redis = self.config.replica_id
        self._set_split_brain_gauge(False)
        return True

    def _demote(self, why: str) -> None:
        if self.role is not Role.LEADER:
            return
        self.role = Role.FOLLOWER
        self.figures.record_leadership_change()
        if self.metrics is not None:
            self.metrics.ha_leadership_changes.inc()
        log.warning("%s: stepping down from epoch %d: %s", self.config.replica_id, self.epoch, why)
        with contextlib.suppress(LeaseUnavailable):
            if self.lease.release():
                self.figures.current_leader_redis = None
        self.token = secrets.token_hex(8)  # a new term will need a new token
        self.lease = self._lease_factory(self.token)

    def step_down(self, why: str = "graceful switchover") -> bool:
        """Release both leases now so a successor can take over within one renew interval
        (draining the order in flight first), then hold off: no acquiring for
        ``config.hold_off_seconds`` unless another replica leads first. Whether this replica
        was leader and stepped down."""
        with self._lock:
            was_leader = self.role is Role.LEADER
            self._step_down_locked(why)
            stepped_down = was_leader and self.role is not Role.LEADER
            if stepped_down and self.config.hold_off_seconds > 0:
                self.hold_until = self.clock() + self.config.hold_off_seconds
                log.info(
                    "%s: leaving the lease to another replica for %.1fs",
                    self.config.replica_id,
                    self.config.hold_off_seconds,
                )
            self._publish()
            return stepped_down

    def _step_down_locked(self, why: str, drain: bool = True) -> None:
        if self.role is not Role.LEADER:
            return
        try:
            if drain and self.drain is not None and self.may_execute():
                # Stop taking work and let the order in flight finish under our term, then
                # hand over: the successor finds it done instead of waiting out its outcome.
                self.draining = True
                self.drain(self.config.renew_deadline)
            try:
                if self.ledger.release(self.config.replica_id, self.token, self.epoch):
                    self.figures.current_leader_db = None
            except LedgerUnavailable:
                pass  # the lease will expire on its own
            self._demote(why)
        finally:
            self.draining = False

    def _count_split_brain(self, other: str | None) -> None:
        if self.metrics is not None:
            self.metrics.ha_split_brain_detected.inc()
        log.warning(
            "%s: split-brain: Redis names %s, the ledger names us (epoch %d); "
            "taking the Redis lease back",
            self.config.replica_id,
            other,
            self.epoch,
        )

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

    def _sync_done(self, seconds: float, ok: bool) -> None:
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
