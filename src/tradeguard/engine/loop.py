"""The engine loop: consume signals, execute them once through the broker, record results.

Per signal (DESIGN.md 2): validate (else dead-letter), check freshness (else dead-letter as
expired), pass the risk filter (else a ``rejected`` result), record the intent through the
fence, send the order with the signal id as client order id, then write the result, apply the
fill to account state (idempotently), mark the intent done and only then acknowledge the
entry. A crash anywhere leaves the entry pending; whoever picks it up next finds the intent and
asks the broker before sending anything again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from redis.exceptions import ResponseError

from tradeguard.bus.connection import AUTH_ERRORS, CONNECTION_ERRORS
from tradeguard.bus.results import ResultStream, TradeResult
from tradeguard.bus.signal_stream import Entry, SignalStream
from tradeguard.bus.signals import InvalidSignal, Signal, decode_signal
from tradeguard.bus.trade_state import TradeState
from tradeguard.engine.broker import (
    Broker,
    BrokerDisconnected,
    BrokerError,
    BrokerRejected,
    BrokerTimeout,
    Fill,
    Order,
)
from tradeguard.engine.fencing import Fence, FenceLost, Intent
from tradeguard.engine.risk import RiskLimits
from tradeguard.engine.stats import EngineStats
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.vocabulary import ACTIONS, ORDER_STATUSES

log = logging.getLogger(__name__)

# ---- TEST HOOK: deterministic crash points for the HA fault tests ----------------------------
# ``TRADEGUARD_CRASH_AT=<point>:<signal id prefix>`` (read once, when the engine is built) makes
# the process exit at once with code 137, as SIGKILL would, when it reaches ``point`` for a
# signal whose id starts with the prefix. Points: ``after_intent`` (the intent is committed, the
# order not yet sent) and ``after_fill`` (the broker filled the order, no result recorded yet).
# Unset (always, outside the fault tests) it costs one comparison per signal.
CRASH_ENV = "TRADEGUARD_CRASH_AT"
# "thread_after_intent" raises instead of exiting: a bug that kills the engine thread while
# the rest of the process (HTTP endpoint, coordinator) lives on.
CRASH_POINTS = ("after_intent", "after_fill", "thread_after_intent")


def crash_point_from_env() -> tuple[str, str] | None:
    """The (point, signal id prefix) of the test hook, or None when it is not set."""
    raw = os.environ.get(CRASH_ENV, "")
    if not raw:
        return None
    point, _, prefix = raw.partition(":")
    if point not in CRASH_POINTS or not prefix:
        raise ValueError(f"{CRASH_ENV} must be <{'|'.join(CRASH_POINTS)}>:<prefix>, got {raw!r}")
    return point, prefix


@dataclass
class EngineConfig:
    consumer: str = "engine-1"
    signal_ttl: float = 30.0
    reclaim_idle: float = 10.0
    batch: int = 64
    block_ms: int = 100
    broker_retries: int = 3
    keep_acknowledged: float = 60.0  # seconds of handled signals kept on the stream
    risk: RiskLimits = field(default_factory=RiskLimits)


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
    ) -> None:
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
        self._crash_at = crash_point_from_env()  # test hook, None in production
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

    # ---- loop ----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Process until ``stop`` is set; ride out Redis and broker outages with backoff."""
        backoff = 0.05
        self._connect_broker()
        self._ensure_group(stop)
        while not stop.is_set():
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
                if "NOGROUP" not in str(exc):
                    raise
                # Redis came back without the stream or its group (restarted empty): reading
                # our pending entries or reclaiming must not end the loop. Recreate and go on.
                log.warning("signal stream or group gone (%s); recreating it", exc)
                self._own_pending_first = True
                self._ensure_group(stop)

    def _ensure_group(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.signals.ensure_group()
                return
            except CONNECTION_ERRORS:
                self.signals.instruments.connection_error()
                stop.wait(0.2)

    def step(self) -> int:
        """Handle one batch: our own pending entries first, then reclaims, then new ones."""
        cfg = self.config
        if self._own_pending_first:
            entries = self._read_own_pending()
            if not entries:
                self._own_pending_first = False
        else:
            entries = []
        now = time.monotonic()
        generation = self.fence.generation()
        takeover = generation != self._generation
        if not entries and (takeover or now - self._last_reclaim >= min(1.0, cfg.reclaim_idle / 2)):
            # A new term (we just became leader): take every pending entry now, whoever held
            # it; the fence and the broker lookup make re-handling an in-flight one safe.
            self._last_reclaim = now
            idle_ms = 0 if takeover else int(cfg.reclaim_idle * 1000)
            entries = self.signals.reclaim(cfg.consumer, idle_ms, cfg.batch)
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
            self.handle(entry)
        if now - self._last_trim >= 5.0:
            self._last_trim = now
            self.signals.trim_acknowledged(cfg.keep_acknowledged)
        return len(entries)

    def _read_own_pending(self) -> list[Entry]:
        reply = self.signals.redis.xreadgroup(
            self.signals.group,
            self.config.consumer,
            {self.signals.keys.signals: "0"},
            count=self.config.batch,
        )
        if not reply:
            return []
        return [Entry(eid, f) for eid, f in reply[0][1] if f]

    # ---- one signal ------------------------------------------------------------------------
    def handle(self, entry: Entry) -> None:
        try:
            signal = decode_signal(entry.fields, self.signals.max_bytes)
        except InvalidSignal as exc:
            self.signals.dead_letter_invalid(entry, exc)
            self.stats.drop(exc.reason)
            return
        if self.metrics is not None:
            self._received[signal.action].inc()
        received = time.time()
        expired = signal.age(received) > self.config.signal_ttl
        # An expired signal is never sent; but if an earlier attempt already got it executed
        # (and then crashed or lost its lease before recording it), that fill must be
        # recorded, not dead-lettered as if nothing had happened.
        if expired and self.broker.lookup(signal.signal_id) is None:
            self.signals.dead_letter(
                entry,
                "expired",
                f"signal is {signal.age(received):.1f}s old, TTL {self.config.signal_ttl:.0f}s",
            )
            self.stats.drop("expired")
            return
        intent = self.fence.begin(signal.signal_id)
        if intent is Intent.DONE:
            self.signals.ack(entry.entry_id)  # executed and recorded by an earlier attempt
            return
        if expired:
            intent = Intent.PENDING  # the broker has its fill: reconcile, send nothing
        self._crash_hook("after_intent", signal.signal_id)
        self._crash_hook("thread_after_intent", signal.signal_id)
        result = self._execute(signal, intent)
        if result.status == "filled":
            self._crash_hook("after_fill", signal.signal_id)
        self._record(entry, signal, result, received)

    def _crash_hook(self, point: str, signal_id: str) -> None:
        """TEST HOOK (see CRASH_ENV): die here, like a SIGKILL, for the chosen signals."""
        if self._crash_at is None or self._crash_at[0] != point:
            return
        if signal_id.startswith(self._crash_at[1]):
            os.write(2, f"{CRASH_ENV}: crashing {point} for {signal_id}\n".encode())
            if point.startswith("thread_"):
                raise RuntimeError(f"{CRASH_ENV}: engine thread crash for {signal_id}")
            os._exit(137)

    def _execute(self, signal: Signal, intent: Intent) -> TradeResult:
        engine = self.config.consumer
        veto = self.config.risk.check(signal)
        if self.metrics is not None:
            self._filter["rejected" if veto else "accepted"].inc()
        if veto:
            return self._result(signal, "rejected", None, 0.0, veto, engine)
        if intent is Intent.PENDING:
            earlier = self.broker.lookup(signal.signal_id)
            if earlier is not None:
                if self.metrics is not None:
                    self.metrics.broker_orders_reconciled.labels("matched").inc()
                return self._result(signal, "filled", earlier, 0.0, "reconciled", engine)
        order = Order(
            signal.signal_id,
            signal.account,
            signal.symbol,
            signal.action,
            signal.volume,
            signal.price,
        )
        return self._send(signal, order, engine)

    def _send(self, signal: Signal, order: Order, engine: str) -> TradeResult:
        attempts = 0
        while True:
            attempts += 1
            start = time.perf_counter()
            # The intent was fenced when it was recorded, but this process may have been
            # frozen since (GC, SIGSTOP, a stalled VM) and lost its lease meanwhile: check
            # again just before the order leaves. If the term is over, send nothing; the
            # entry stays pending and the next leader reconciles it with the broker.
            if not self.fence.holds_term():
                raise FenceLost(f"term over before sending {order.client_order_id}")
            try:
                if not self.broker.connected:
                    self._connect_broker()
                fill = self.broker.place_order(order)
                took = time.perf_counter() - start
                self._observe_order(signal.action, "filled", took)
                return self._result(signal, "filled", fill, took, "", engine)
            except BrokerRejected as exc:
                took = time.perf_counter() - start
                self._observe_order(signal.action, "rejected", took)
                return self._result(signal, "rejected", None, took, str(exc), engine)
            except (BrokerDisconnected, BrokerTimeout) as exc:
                if self.metrics is not None:
                    self.metrics.network_failures.inc()
                    if isinstance(exc, BrokerDisconnected):
                        self.metrics.broker_connection_failures.inc()
                        self.metrics.broker_connected.set(0)
                # A timeout may have reached the broker: look before sending again.
                earlier = self.broker.lookup(order.client_order_id)
                if earlier is not None:
                    took = time.perf_counter() - start
                    self._observe_order(signal.action, "filled", took)
                    return self._result(signal, "filled", earlier, took, "after retry", engine)
                if attempts > self.config.broker_retries or signal.age() > self.config.signal_ttl:
                    self._observe_order(signal.action, "failed", time.perf_counter() - start)
                    self._count_error("broker")
                    return self._result(
                        signal,
                        "failed",
                        None,
                        time.perf_counter() - start,
                        f"{exc} (after {attempts} attempts)",
                        engine,
                    )
                time.sleep(min(0.05 * 2**attempts, 0.5))
            except BrokerError as exc:
                took = time.perf_counter() - start
                self._observe_order(signal.action, "failed", took)
                self._count_error("broker")
                return self._result(signal, "failed", None, took, str(exc), engine)

    def _record(self, entry: Entry, signal: Signal, result: TradeResult, received: float) -> None:
        """Write the result, apply the fill, close the intent, then acknowledge."""
        self.results.append(result)
        if result.status == "filled" and result.fill_price is not None:
            sign = -1.0 if signal.action == "sell" else 1.0
            self.state.apply_fill(
                signal.signal_id,
                signal.account,
                signal.symbol,
                sign * signal.volume,
                -sign * signal.volume * result.fill_price,
            )
        self.fence.complete(result)
        self.signals.ack(entry.entry_id)
        done = time.time()
        latency = max(0.0, done - signal.created_at)
        if self.metrics is not None:
            self._processed[(signal.action, result.status)].inc()
            self.metrics.signal_processing_duration.observe(done - received)
            self.metrics.signal_latency.observe(latency)
        self.stats.record(result.status, latency)

    # ---- helpers -------------------------------------------------------------------------
    def _result(
        self, signal: Signal, status: str, fill: Fill | None, took: float, detail: str, engine: str
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
            engine=engine,
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
            if self.metrics is not None:
                self.metrics.broker_connection_failures.inc()
                self.metrics.broker_connected.set(0)

    def _set_paused(self, paused: bool) -> None:
        if self.metrics is not None:
            self.metrics.engine_paused.set(1 if paused else 0)

    def _count_error(self, reason: str) -> None:
        if self.metrics is not None:
            self._errors[reason].inc()
