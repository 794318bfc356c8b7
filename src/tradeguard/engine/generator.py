"""A seeded signal generator for load, demos and tests.

It publishes at a steady rate, with a configurable share of malformed entries (as a foreign
producer might write) and of oversized volumes (which the risk filter rejects), and keeps the
ids it got accepted so a test can check each one was executed exactly once.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

from tradeguard.bus.signal_stream import PublishError, SignalStream
from tradeguard.bus.signals import SIGNAL_FIELD, Signal
from tradeguard.engine.paper import reference_price


@dataclass
class GeneratorConfig:
    rate: float = 50.0  # signals per second
    accounts: tuple[str, ...] = ("acct-1", "acct-2", "acct-3")
    symbols: tuple[str, ...] = ("EURUSD", "GBPUSD", "XAUUSD", "US500")
    invalid_share: float = 0.0
    oversized_volume_share: float = 0.0
    seed: int = 1


@dataclass
class GeneratorReport:
    published: list[str] = field(default_factory=list)
    # ids whose publish failed in a way that may still have queued them (outcome unknown):
    # they may be executed, but nobody was promised they would be
    indeterminate: list[str] = field(default_factory=list)
    invalid: int = 0
    errors: int = 0
    last_error: str = ""


class SignalGenerator:
    """Publishes until stopped or until ``limit`` signals were accepted."""

    def __init__(self, stream: SignalStream, config: GeneratorConfig | None = None) -> None:
        self.stream = stream
        self.config = config or GeneratorConfig()
        self.report = GeneratorReport()
        self._rng = random.Random(self.config.seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def make_signal(self) -> Signal:
        cfg, rng = self.config, self._rng
        symbol = rng.choice(cfg.symbols)
        volume = round(rng.uniform(0.01, 5.0), 2)
        if rng.random() < cfg.oversized_volume_share:
            volume = 1_000.0
        return Signal(
            account=rng.choice(cfg.accounts),
            symbol=symbol,
            action=rng.choice(("buy", "sell", "buy", "sell", "close")),
            volume=volume,
            price=round(reference_price(symbol) * (1 + rng.uniform(-0.001, 0.001)), 5),
            signal_id=f"sig-{uuid.UUID(int=rng.getrandbits(128)).hex[:20]}",
            strategy="generator",
        )

    def publish_one(self) -> str | None:
        """Publish one signal (or one malformed entry); return the accepted id, if any."""
        if self._rng.random() < self.config.invalid_share:
            bad = {
                "signal_id": f"bad-{self._rng.getrandbits(40):x}",
                "action": "hold",
                "volume": -1,
            }
            try:
                self.stream.publish_raw({SIGNAL_FIELD: json.dumps(bad).encode()})
                with self._lock:
                    self.report.invalid += 1
            except Exception as exc:  # counted like any publish failure
                self._error(exc)
            return None
        signal = self.make_signal()
        try:
            self.stream.publish(signal)
        except PublishError as exc:
            self._error(exc)
            if exc.maybe_queued:
                with self._lock:
                    self.report.indeterminate.append(signal.signal_id)
            return None
        with self._lock:
            self.report.published.append(signal.signal_id)
        return signal.signal_id

    def _error(self, exc: Exception) -> None:
        with self._lock:
            self.report.errors += 1
            self.report.last_error = str(exc)

    def start(self) -> SignalGenerator:
        """Publish in a background thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("the generator is already running")
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name="signal-generator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> GeneratorReport:
        """Stop publishing and wait for the publish in flight, then return the report.

        Reading the report without waiting races the last publish: Redis may queue that signal
        after the reader took its copy, and an audit would then find it executed but never
        published.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"the generator did not stop within {timeout:.0f}s")
        return self.report

    def run(self, stop: threading.Event, limit: int | None = None) -> GeneratorReport:
        """Publish at ``rate`` per second until ``stop`` or ``limit`` accepted signals."""
        interval = 1.0 / self.config.rate if self.config.rate > 0 else 0.0
        next_at = time.monotonic()
        while not stop.is_set():
            if limit is not None and len(self.report.published) >= limit:
                break
            self.publish_one()
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
                elif delay < -1.0:  # fell behind (e.g. Redis was down): do not burst
                    next_at = time.monotonic()
        return self.report
