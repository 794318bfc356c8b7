"""The engine loop: consume signals, execute each at most once through a broker that forgives
nothing, record results.

Per signal (DESIGN.md 2): validate (else dead-letter), record the intent through the fence (a
ticket bound to the term's epoch), then:

- **done** already: re-emit the recorded result (a crash came between completion and ack), ack;
- **open** (an earlier attempt's outcome is unknown): wait until the broker's maximum in-flight
  time has passed since the last moment an order for it could have been sent, look it up by
  client order id, and record the fill if there is one; if there is none, no order can fill any
  more and it is treated as never sent;
- expired (older than the TTL) and never filled: close the intent and dead-letter it;
- the risk filter (only for an order not yet at the broker), then send, but only while the term
  holds for longer than the send margin. A timeout or a lost connection leaves the outcome
  **unknown**: the intent is marked so, the entry parked until the in-flight time has passed,
  and then reconciled as above; never recorded ``failed``, never resent blindly.

The fenced completion comes first and the result, the account state and the ack after it: a
replica whose term ended writes nothing. Any exception while handling one entry is that
entry's; after ``poison_deliveries`` deliveries it is dead-lettered as ``poison`` and trading
goes on. Redis error replies about the server's state (READONLY, OOM, ...) back off and retry.

Progress shows in ``tradeguard_engine_loop_heartbeat_timestamp_seconds``: set on every pass of
the loop (leading or not, paused or not) and before each entry of a batch, so a slow broker
does not look like a hung one. It stops while the loop hangs (a broker call that never returns,
a deadlock) or stands still on a stall the runtime control asked for (chaos), and the HA
coordinator beside it keeps the lease all the same: ``LeaderEngineStuck`` watches for that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from redis.exceptions import ResponseError

from tradeguard.bus.connection import AUTH_ERRORS, CONNECTION_ERRORS, is_transient_reply
from tradeguard.bus.results import ResultStream, TradeResult
from tradeguard.bus.signal_stream import Entry, SignalStream
from tradeguard.bus.signals import (
    SIGNAL_FIELD,
    InvalidSignal,
    Signal,
    decode_signal,
    peek_signal_id,
)
from tradeguard.bus.trade_state import TradeState
from tradeguard.engine.broker import (
    Broker,
    BrokerDisconnected,
    BrokerError,
    BrokerNotConnected,
    BrokerRejected,
    BrokerTimeout,
    Fill,
    Order,
)
from tradeguard.engine.risk import RiskLimits
from tradeguard.engine.stats import EngineStats
from tradeguard.fencing import Fence, FenceLost, Intent, Ticket, boot_clock
from tradeguard.fencing import Fill as BookFill
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.vocabulary import ACTIONS, ORDER_STATUSES

log = logging.getLogger(__name__)

# The moments in handling one signal where a crash is most dangerous, each marked by a call of
# ``Engine._checkpoint``: ``before_intent`` (decoded, nothing recorded yet), ``after_intent``
# (the intent is committed, the order not yet sent) and ``after_fill`` (the broker filled the
# order, no result recorded yet).
Checkpoint = Literal["before_intent", "after_intent", "after_fill"]

EXPIRED_MARK = b"expired"  # what a done action that was dead-lettered as expired records

# consumer -> seconds the loop must still stand still (0: go on). The runtime control's
# ``ControlPoller.stall_remaining``; a chaos knob that simulates a hung call in the loop.
StallSource = Callable[[str], float]
STALL_TICK = 0.1  # seconds a stalled loop sleeps between two looks at its stall


def _never_stalled(consumer: str) -> float:
    return 0.0


@dataclass
class EngineConfig:
    consumer: str = "engine-1"
    signal_ttl: float = 30.0
    reclaim_idle: float = 10.0
    batch: int = 64
    block_ms: int = 100
    keep_acknowledged: float = 60.0  # seconds of handled signals kept on the stream
    risk: RiskLimits = field(default_factory=RiskLimits)
    # The broker's maximum in-flight time: after this long an order whose fill the broker
    # does not show will never fill. A broker that knows better (the paper broker's knobs)
    # may raise it, never lower it.
    broker_max_in_flight: float = 5.0
    # Send only while the term holds at least this long: above the broker's worst latency.
    send_margin: float = 1.0
    poison_deliveries: int = 3  # deliveries of an entry that keeps failing before dead letter


@dataclass
class Parked:
    """An entry set aside until ``due`` (boot clock): an unknown outcome waiting out the
    broker's in-flight time, or a send waiting for the broker to come back."""

    entry: Entry
    due: float


class Engine:
    """One engine replica's loop over the signal stream."""

    def __init__(
        self,
        config: EngineConfig,
        signals: SignalStream,
        results: ResultStream,
        state: TradeState,
        broker: Broker,
        fence: Fence,
        metrics: Metrics | None = None,
        stall: StallSource | None = None,
    ) -> None:
        """``stall`` says how long the loop must stand still (the engine service passes the
        runtime control's); never, when not given."""
        self.config = config
        self.signals = signals
        self.results = results
        self.state = state
        self.broker = broker
        self.fence = fence
        self.metrics = metrics
        self.stats = EngineStats()
        self._own_pending_first = True
        self._last_reclaim = 0.0
        self._last_trim = time.monotonic()
        self._generation = fence.generation()
        self._term_seen = self._generation
        self._swept_term: int | None = None  # the term whose open intents were swept
        # signal id -> boot-clock time this process last sent an order for it (outcome not
        # recorded yet): an open intent is looked up only once the in-flight time has passed.
        self._sent_at: dict[str, float] = {}
        self._parked: dict[bytes, Parked] = {}
        self._busy = threading.Lock()  # held while one entry is handled: drain waits on it
        self._stall: StallSource = stall if stall is not None else _never_stalled
        self._stalled = False
        self._heartbeat = metrics.engine_loop_heartbeat if metrics is not None else None
        if metrics is not None:
            m = metrics
            self._received = {a: m.signals_received.labels(a) for a in ACTIONS}
            self._processed = {
                (a, s): m.signals_processed.labels(a, s) for a in ACTIONS for s in ORDER_STATUSES
            }
            self._orders = {(a, s): m.orders.labels(a, s) for a in ACTIONS for s in ORDER_STATUSES}
            self._filter = {
                s: m.signal_filter_decisions.labels(s) for s in ("accepted", "rejected")
            }
            self._errors = {r: m.errors.labels(r) for r in ("redis", "broker", "internal")}
            self._reconciled = {
                s: m.broker_orders_reconciled.labels(s) for s in ("sent", "matched", "failed")
            }

    # ---- loop ----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Process until ``stop`` is set; ride out Redis and broker outages with backoff."""
        backoff = 0.05
        self._beat()
        self._connect_broker()
        self._ensure_group(stop)
        while not stop.is_set():
            if self._stand_still(stop):
                continue
            self._beat()
            try:
                if not self.fence.may_execute():
                    self._set_paused(True)
                    stop.wait(0.05)
                    continue
                self._set_paused(False)
                self.step()
                backoff = 0.05
            except AUTH_ERRORS as exc:  # before CONNECTION_ERRORS: a subclass of it
                self.signals.instruments.auth_error()
                self._count_error("redis")
                log.error("Redis refused our credentials (%s); retrying in %.2fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            except CONNECTION_ERRORS as exc:
                self.signals.instruments.connection_error()
                self._count_error("redis")
                self.stats.redis_errors += 1
                log.warning("Redis unreachable (%s); retrying in %.2fs", exc, backoff)
                self._own_pending_first = True  # re-read what we hold once Redis is back
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            except FenceLost as exc:
                log.warning("fence lost: %s; standing by", exc)
                self._own_pending_first = True
                stop.wait(0.05)
            except ResponseError as exc:
                self._own_pending_first = True
                if "NOGROUP" in str(exc):
                    # Redis came back without the stream or its group (restarted empty):
                    # reading our pending entries or reclaiming must not end the loop.
                    log.warning("signal stream or group gone (%s); recreating it", exc)
                    self._ensure_group(stop)
                    continue
                # READONLY after a failover, OOM, MISCONF, ... (or a reply we did not expect
                # outside any one entry): the server's state, not ours to fix. Back off.
                self._count_error("redis")
                self.stats.redis_errors += 1
                log.warning("Redis refused (%s); retrying in %.2fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def _beat(self) -> None:
        """The loop made progress: one ``set(time.time())``."""
        if self._heartbeat is not None:
            self._heartbeat.set(time.time())

    def _stand_still(self, stop: threading.Event) -> bool:
        """Whether the loop is stalled (the runtime control's chaos knob): then it sleeps a
        little, outside ``_busy`` (holding no entry, so a drain or a broker reconnect goes
        through at once), without a heartbeat, and the caller looks again."""
        left = self._stall(self.config.consumer)
        if left <= 0.0:
            if self._stalled:
                self._stalled = False
                log.warning("engine loop %s: the stall is over", self.config.consumer)
            return False
        if not self._stalled:
            self._stalled = True
            log.warning(
                "engine loop %s: stalled by the runtime control for %.1fs (simulated hung call)",
                self.config.consumer,
                left,
            )
        stop.wait(min(left, STALL_TICK))
        return True

    def _ensure_group(self, stop: threading.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            self._beat()  # waiting for Redis is not a hang: the Redis alerts say it
            try:
                self.signals.ensure_group()
                return
            except AUTH_ERRORS as exc:  # before CONNECTION_ERRORS: a subclass of it
                self.signals.instruments.auth_error()
                self._count_error("redis")
                log.error("Redis refused our credentials (%s); retrying in %.2fs", exc, backoff)
            except CONNECTION_ERRORS:
                self.signals.instruments.connection_error()
            except ResponseError as exc:  # READONLY, OOM, ...: wait for the server
                log.warning("cannot create the consumer group (%s); retrying", exc)
            stop.wait(backoff)
            backoff = min(backoff * 2, 2.0)

    def wait_idle(self, timeout: float) -> bool:
        """Until no entry is being handled (the order in flight, if any, is settled)."""
        if self._busy.acquire(timeout=max(0.0, timeout)):
            self._busy.release()
            return True
        return False

    @contextmanager
    def between_signals(self, timeout: float) -> Iterator[None]:
        """Hold the loop between two entries for the block (waiting up to ``timeout`` for the
        one in hand): no order is sent, no result written and no fill applied meanwhile.
        TimeoutError, with nothing held, if an entry was still being handled by then."""
        if not self._busy.acquire(timeout=max(0.0, timeout)):
            raise TimeoutError(f"a signal was still being handled after {timeout:.0f}s")
        try:
            yield
        finally:
            self._busy.release()

    def reconnect_broker(self, timeout: float) -> bool:
        """Between two entries: drop the broker session, if the broker can, and connect again;
        whether it is connected after (TimeoutError as :meth:`between_signals`)."""
        with self.between_signals(timeout):
            disconnect = getattr(self.broker, "disconnect", None)  # not in every broker
            if callable(disconnect):
                disconnect()
            self._connect_broker()
            return self.broker.connected

    def step(self) -> int:
        """Handle one batch: parked entries now due, our own pending entries after a restart
        or an outage, then reclaims, then new ones."""
        cfg = self.config
        now = time.monotonic()
        generation = self.fence.generation()
        takeover = generation != self._generation
        if generation != self._term_seen:
            self._new_term(generation)
        if self._swept_term != self._term_seen:
            with self._busy:  # it settles intents: results and fills, like an entry
                self._sweep()
        entries = self._due_parked()
        if not entries and self._own_pending_first:
            entries = self._read_own_pending()
            self._own_pending_first = False
        if not entries and (takeover or now - self._last_reclaim >= min(1.0, cfg.reclaim_idle / 2)):
            # A new term (we just became leader): take every pending entry now, whoever held
            # it; the fence and the broker lookup make re-handling an in-flight one safe.
            self._last_reclaim = now
            idle_ms = 0 if takeover else int(cfg.reclaim_idle * 1000)
            entries = [
                e
                for e in self.signals.reclaim(cfg.consumer, idle_ms, cfg.batch)
                if e.entry_id not in self._parked
            ]
            if takeover and len(entries) < cfg.batch:
                self._generation = generation
            if entries and self.metrics is not None:
                self.metrics.signals_reclaimed.inc(len(entries))
            self.stats.reclaimed += len(entries)
        if not entries:
            entries = self.signals.read(cfg.consumer, cfg.batch, cfg.block_ms)
        for entry in entries:
            if not self.fence.may_execute():
                raise FenceLost("leadership lost mid-batch")
            self._beat()  # a batch of slow orders is progress, not a hang
            self._handle_one(entry)
        if now - self._last_trim >= 5.0:
            self._last_trim = now
            self.signals.trim_acknowledged(cfg.keep_acknowledged)
        return len(entries)

    def _new_term(self, generation: int) -> None:
        """A new term: what was parked may have been settled by another leader meanwhile (the
        takeover reclaim brings it back), and sends older than the term no longer matter."""
        self._term_seen = generation
        self._parked.clear()
        started = self.fence.term_started()
        self._sent_at = {sid: at for sid, at in self._sent_at.items() if at > started}

    def _sweep(self) -> None:
        """Once per term, after the broker's in-flight time: settle every intent the ledger
        holds open, whether or not its stream entry is still pending (Redis may have lost it).
        A fill at the broker is recorded; an expired intent without one is closed. The rest
        stay open for their entries (a pending entry finds them done or open as it should)."""
        if boot_clock() < self.fence.term_started() + self._in_flight():
            return
        # Entries of this term already waiting on their reconciliation settle themselves (the
        # takeover reclaimed every pending entry): sweeping them too would record twice.
        waiting = {_peek_id(p.entry) for p in self._parked.values()}
        for signal_id, payload in self.fence.open_intents():
            if payload is None or signal_id in waiting:
                continue  # no signal kept (an older ledger), or its entry settles it
            try:
                signal = decode_signal({SIGNAL_FIELD: payload}, max(len(payload), 1))
                fill = self.broker.lookup(signal_id)
            except (InvalidSignal, BrokerError) as exc:
                log.warning("sweep: %s left open for now (%s)", signal_id, exc)
                return  # the next step tries again
            expired = signal.age() > self.config.signal_ttl
            if fill is None and not expired:
                continue
            ticket = self.fence.begin(signal_id, payload)
            if ticket.intent is not Intent.OPEN:
                continue
            if fill is not None:
                if self.metrics is not None:
                    self._reconciled["matched"].inc()
                result = self._result(signal, "filled", fill, 0.0, "reconciled")
                self._settle(signal, ticket, result)
                log.info("sweep: recorded the fill of %s found at the broker", signal_id)
            else:
                self.fence.complete(ticket, "expired", EXPIRED_MARK, None)
                log.info("sweep: closed %s, expired without a fill", signal_id)
        self._swept_term = self._term_seen

    def _read_own_pending(self) -> list[Entry]:
        reply = self.signals.redis.xreadgroup(
            self.signals.group,
            self.config.consumer,
            {self.signals.keys.signals: "0"},
            count=self.config.batch,
        )
        if not reply:
            return []
        return [Entry(eid, f) for eid, f in reply[0][1] if f and eid not in self._parked]

    def _due_parked(self) -> list[Entry]:
        now = boot_clock()
        due = [eid for eid, p in self._parked.items() if p.due <= now][: self.config.batch]
        return [self._parked.pop(eid).entry for eid in due]

    def _park(self, entry: Entry, due: float) -> None:
        self._parked[entry.entry_id] = Parked(entry, due)

    @property
    def parked(self) -> int:
        return len(self._parked)

    @property
    def stalled(self) -> bool:
        """The loop stands still on a stall the runtime control asked for."""
        return self._stalled

    # ---- one entry -----------------------------------------------------------------------
    def _handle_one(self, entry: Entry) -> None:
        """Handle ``entry``; an exception that is this entry's own never ends the loop."""
        with self._busy:
            try:
                self.handle(entry)
            except _NOT_THE_ENTRYS:
                raise  # about this replica or Redis, not the entry: the loop backs off
            except ResponseError as exc:
                if is_transient_reply(exc) or "NOGROUP" in str(exc):
                    raise
                self._poisoned(entry, exc)
            except Exception as exc:
                self._poisoned(entry, exc)

    def _poisoned(self, entry: Entry, exc: Exception) -> None:
        """An entry that keeps failing goes to the dead letters after a few deliveries, unless
        an order may have left for it (then it stays, to be reconciled: never drop a fill)."""
        self._count_error("internal")
        sid = _peek_id(entry)
        deliveries = self.signals.deliveries(entry.entry_id)
        what = f"{type(exc).__name__}: {exc}"
        if sid in self._sent_at or deliveries < self.config.poison_deliveries:
            log.warning(
                "entry %s (signal %s) failed on delivery %d: %s",
                entry.entry_id.decode(),
                sid,
                deliveries,
                what,
            )
            return  # stays pending: reclaimed and tried again after reclaim_idle
        log.error(
            "entry %s dead-lettered as poison after %d deliveries: %s", entry, deliveries, what
        )
        try:
            self.signals.dead_letter(entry, "poison", f"{what} (after {deliveries} deliveries)")
        except (*CONNECTION_ERRORS, ResponseError):
            raise  # Redis, not the entry: the loop backs off and the entry comes back
        except Exception as again:  # the dead letter itself cannot be written: drop the entry
            log.error("entry %s cannot even be dead-lettered (%s); acknowledging it", entry, again)
            self.signals.ack(entry.entry_id)
        self.stats.drop("poison")

    def handle(self, entry: Entry) -> None:
        try:
            signal = decode_signal(entry.fields, self.signals.max_bytes)
        except InvalidSignal as exc:
            self.signals.dead_letter_invalid(entry, exc)
            self.stats.drop(exc.reason)
            return
        received = time.time()
        self._checkpoint("before_intent", signal.signal_id)
        ticket = self.fence.begin(signal.signal_id, signal.to_json())
        if ticket.intent is Intent.DONE:
            self._reemit(entry, signal, ticket)
            return
        if self.metrics is not None and ticket.intent is Intent.NEW:
            self._received[signal.action].inc()
        self._checkpoint("after_intent", signal.signal_id)
        if ticket.intent is Intent.OPEN:
            settled = self._reconcile(entry, signal, ticket)
            if settled is _PARKED:
                return
            if isinstance(settled, Fill):
                result = self._result(signal, "filled", settled, 0.0, "reconciled")
                self._record(entry, signal, ticket, result, received)
                return
            # No fill, and none can come any more: as if the order had never been sent.
        if signal.age(received) > self.config.signal_ttl:
            self._expire(entry, signal, ticket, received)
            return
        veto = self.config.risk.check(signal)
        if self.metrics is not None:
            self._filter["rejected" if veto else "accepted"].inc()
        if veto:
            self._record(
                entry, signal, ticket, self._result(signal, "rejected", None, 0, veto), received
            )
            return
        sent = self._send(entry, signal, ticket)
        if sent is None:
            return  # parked: outcome unknown, or no broker connection
        if sent.status == "filled":
            self._checkpoint("after_fill", signal.signal_id)
        self._record(entry, signal, ticket, sent, received)

    def _reconcile(self, entry: Entry, signal: Signal, ticket: Ticket) -> Fill | object | None:
        """An open intent: its fill, None when there is none and none can come, or _PARKED."""
        sid = signal.signal_id
        last_send = max(self.fence.term_started(), self._sent_at.get(sid, float("-inf")))
        not_before = last_send + self._in_flight()
        now = boot_clock()
        if now < not_before:
            self._park(entry, not_before)
            return _PARKED
        try:
            fill = self.broker.lookup(sid)
        except BrokerError as exc:
            if self.metrics is not None:
                self.metrics.broker_lookup_failures.inc()
            log.warning("lookup of %s failed (%s); retrying", sid, exc)
            self._park(entry, now + 0.2)
            return _PARKED
        if fill is not None:
            if self.metrics is not None:
                self._reconciled["matched"].inc()
            return fill
        self._sent_at.pop(sid, None)
        if self.metrics is not None:
            expired = signal.age() > self.config.signal_ttl
            self._reconciled["failed" if expired else "sent"].inc()
        return None

    def _expire(self, entry: Entry, signal: Signal, ticket: Ticket, received: float) -> None:
        """Never executed and too old to be: close the intent, then dead-letter the entry."""
        self.fence.complete(ticket, "expired", EXPIRED_MARK, None)
        self._dead_letter_expired(entry, signal, received)

    def _dead_letter_expired(self, entry: Entry, signal: Signal, received: float) -> None:
        age = signal.age(received)
        self.signals.dead_letter(
            entry, "expired", f"signal is {age:.1f}s old, TTL {self.config.signal_ttl:.0f}s"
        )
        self.stats.drop("expired")

    def _reemit(self, entry: Entry, signal: Signal, ticket: Ticket) -> None:
        """Done already: make sure what completion promised downstream exists, then ack."""
        if ticket.recorded == EXPIRED_MARK:
            self._dead_letter_expired(entry, signal, time.time())
            return
        if ticket.recorded:
            self._publish(TradeResult.from_json(ticket.recorded))
        self.signals.ack(entry.entry_id)

    def _checkpoint(self, point: Checkpoint, signal_id: str) -> None:
        """Marks the moments in handling ``signal_id`` where a crash is most dangerous (see
        ``Checkpoint``). A no-op: the fault tests override it to crash the engine exactly
        here, deterministically, and check that nothing is lost or executed twice."""

    def _in_flight(self) -> float:
        own = getattr(self.broker, "max_in_flight", None)
        broker_says = float(own()) if callable(own) else 0.0
        return max(self.config.broker_max_in_flight, broker_says)

    def _send(self, entry: Entry, signal: Signal, ticket: Ticket) -> TradeResult | None:
        """Send the order once; None when it is parked (outcome unknown, or no connection)."""
        sid = signal.signal_id
        if not self.broker.connected:
            self._connect_broker()  # may block: the term is checked after it, not before
            if not self.broker.connected:
                self._park(entry, boot_clock() + 0.5)
                return None
        # The intent was fenced when it was recorded, but this process may have been frozen
        # since (GC, SIGSTOP, a stalled VM, a blocking reconnect) and its term may be ending:
        # send only while it holds for longer than the broker can take. Otherwise send
        # nothing; the entry stays pending and whoever leads next reconciles it.
        if not self.fence.holds_term(self.config.send_margin):
            raise FenceLost(f"term ends within {self.config.send_margin}s; {sid} not sent")
        order = Order(
            sid, signal.account, signal.symbol, signal.action, signal.volume, signal.price
        )
        earlier = self._sent_at.get(sid)
        self._sent_at[sid] = boot_clock()
        start = time.perf_counter()
        try:
            fill = self.broker.place_order(order)
        except BrokerRejected as exc:
            took = time.perf_counter() - start
            self._observe_order(signal.action, "rejected", took)
            return self._result(signal, "rejected", None, took, str(exc))
        except BrokerNotConnected:
            # Nothing left: the connection was gone before the order could be sent.
            if earlier is None:
                self._sent_at.pop(sid, None)
            else:
                self._sent_at[sid] = earlier
            self._broker_down()
            self._park(entry, boot_clock() + 0.5)
            return None
        except (BrokerDisconnected, BrokerTimeout) as exc:
            # The order may be at the broker and may still fill: its outcome is unknown.
            if self.metrics is not None:
                self.metrics.network_failures.inc()
                self.metrics.broker_orders_unknown.inc()
            if isinstance(exc, BrokerDisconnected):
                self._broker_down()
            log.warning("order %s: outcome unknown (%s); reconciling later", sid, exc)
            self._park(entry, self._sent_at[sid] + self._in_flight())
            self.fence.mark_unknown(ticket)
            return None
        except BrokerError as exc:  # the broker said it did not execute: final
            took = time.perf_counter() - start
            self._observe_order(signal.action, "failed", took)
            self._count_error("broker")
            return self._result(signal, "failed", None, took, str(exc))
        took = time.perf_counter() - start
        self._observe_order(signal.action, "filled", took)
        return self._result(signal, "filled", fill, took, "")

    def _record(
        self, entry: Entry, signal: Signal, ticket: Ticket, result: TradeResult, received: float
    ) -> None:
        """Close the action under its epoch first; only then the result, the state, the ack."""
        self._settle(signal, ticket, result)
        self.signals.ack(entry.entry_id)
        done = time.time()
        latency = max(0.0, done - signal.created_at)
        if self.metrics is not None:
            self._processed[(signal.action, result.status)].inc()
            self.metrics.signal_processing_duration.observe(done - received)
            self.metrics.signal_latency.observe(latency)
        self.stats.record(result.status, latency)

    def _settle(self, signal: Signal, ticket: Ticket, result: TradeResult) -> None:
        """The fenced completion (fill into the ledger's positions), then what it promises
        downstream: the result and the account state. Nothing is written if it is refused."""
        fill = None
        if result.status == "filled" and result.fill_price is not None:
            fill = BookFill(
                signal.account, signal.symbol, signal.action, signal.volume, result.fill_price
            )
        self.fence.complete(ticket, result.status, result.to_json(), fill)
        self._sent_at.pop(signal.signal_id, None)  # settled: nothing left to reconcile
        self._publish(result)

    def _publish(self, result: TradeResult) -> None:
        """The result on the result stream and its fill on the account (once per signal)."""
        self.results.append(result)
        if result.status == "filled" and result.fill_price is not None:
            self.state.apply_fill(
                result.signal_id,
                BookFill(
                    result.account, result.symbol, result.action, result.volume, result.fill_price
                ),
            )

    # ---- helpers -------------------------------------------------------------------------
    def _result(
        self, signal: Signal, status: str, fill: Fill | None, took: float, detail: str
    ) -> TradeResult:
        price = fill.price if fill else None
        slippage = 0.0
        if fill is not None and signal.price:
            slippage = abs(fill.price - signal.price) / signal.price
        if fill is not None and self.metrics is not None and detail != "reconciled":
            self.metrics.order_slippage.observe(slippage)
        return TradeResult(
            signal_id=signal.signal_id,
            account=signal.account,
            symbol=signal.symbol,
            action=signal.action,
            volume=signal.volume,
            status=status,
            requested_price=signal.price,
            fill_price=price,
            slippage=slippage,
            execution_seconds=took,
            created_at=signal.created_at,
            executed_at=time.time(),
            engine=self.config.consumer,
            detail=detail[:300],
        )

    def _observe_order(self, action: str, status: str, took: float) -> None:
        if self.metrics is not None:
            self._orders[(action, status)].inc()
            self.metrics.order_duration.observe(took)

    def _connect_broker(self) -> None:
        try:
            self.broker.connect()
            if self.metrics is not None:
                self.metrics.broker_connected.set(1)
        except BrokerDisconnected:
            self._broker_down()

    def _broker_down(self) -> None:
        if self.metrics is not None:
            self.metrics.broker_connection_failures.inc()
            self.metrics.broker_connected.set(0)

    def _set_paused(self, paused: bool) -> None:
        if self.metrics is not None:
            self.metrics.engine_paused.set(1 if paused else 0)

    def _count_error(self, reason: str) -> None:
        if self.metrics is not None:
            self._errors[reason].inc()


_PARKED = object()  # _reconcile's "set aside, try later"
_NOT_THE_ENTRYS: tuple[type[BaseException], ...] = (FenceLost, *CONNECTION_ERRORS, *AUTH_ERRORS)


def _peek_id(entry: Entry) -> str | None:
    try:
        return peek_signal_id(entry.fields)
    except Exception:  # the entry is what failed; its id is only for the log
        return None
