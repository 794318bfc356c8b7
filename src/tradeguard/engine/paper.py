"""A paper broker with deterministic, seedable fault knobs.

It is the default broker and the one every test and demo uses. Its order book can live in a
SQLite file so several engine processes on one host share it: that is what lets the fault tests
count broker orders per signal across replicas that kill each other.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tradeguard.engine.broker import (
    BrokerDisconnected,
    BrokerError,
    BrokerRejected,
    BrokerTimeout,
    Fill,
    Order,
)


@dataclass
class BrokerKnobs:
    """Fault knobs; rates are probabilities per order, latencies in seconds."""

    latency: float = 0.002
    jitter: float = 0.001
    failure_rate: float = 0.0
    reject_rate: float = 0.0
    timeout_rate: float = 0.0
    disconnect_rate: float = 0.0
    slippage_max: float = 0.001  # uniform in [0, slippage_max] relative to the price
    slippage_spike_rate: float = 0.0  # share of fills slipping 10-30 %

    def update(self, values: dict[str, Any]) -> None:
        """Set knobs from strings or numbers; unknown names raise ValueError."""
        known = {f.name for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown broker knob {name!r}; known: {sorted(known)}")
            number = float(value)
            if number < 0:
                raise ValueError(f"broker knob {name} must be >= 0, got {number}")
            setattr(self, name, number)


class MemoryBook:
    """Orders of one process; lost with it."""

    def __init__(self) -> None:
        self._fills: dict[str, Fill] = {}
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def attempt(self, client_order_id: str) -> None:
        with self._lock:
            self._attempts[client_order_id] = self._attempts.get(client_order_id, 0) + 1

    def record(self, fill: Fill) -> Fill:
        """Store ``fill`` unless this client id already filled; return the stored one."""
        with self._lock:
            return self._fills.setdefault(fill.client_order_id, fill)

    def get(self, client_order_id: str) -> Fill | None:
        with self._lock:
            return self._fills.get(client_order_id)

    def fills(self) -> dict[str, Fill]:
        with self._lock:
            return dict(self._fills)

    def attempts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._attempts)


class SQLiteBook:
    """Orders in a SQLite file shared by the processes of one host (WAL, busy timeout)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS fills (client_order_id TEXT PRIMARY KEY, "
                "price REAL, volume REAL, executed_at REAL)"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS attempts (client_order_id TEXT, ts REAL)")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.conn = conn
        return conn

    def attempt(self, client_order_id: str) -> None:
        self._conn().execute("INSERT INTO attempts VALUES (?, ?)", (client_order_id, time.time()))

    def record(self, fill: Fill) -> Fill:
        conn = self._conn()
        conn.execute(
            "INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?)",
            (fill.client_order_id, fill.price, fill.volume, fill.executed_at),
        )
        stored = self.get(fill.client_order_id)
        assert stored is not None
        return stored

    def get(self, client_order_id: str) -> Fill | None:
        row = (
            self._conn()
            .execute(
                "SELECT client_order_id, price, volume, executed_at FROM fills "
                "WHERE client_order_id = ?",
                (client_order_id,),
            )
            .fetchone()
        )
        return Fill(*row) if row else None

    def fills(self) -> dict[str, Fill]:
        rows = self._conn().execute("SELECT client_order_id, price, volume, executed_at FROM fills")
        return {r[0]: Fill(*r) for r in rows}

    def attempts(self) -> dict[str, int]:
        rows = self._conn().execute(
            "SELECT client_order_id, count(*) FROM attempts GROUP BY client_order_id"
        )
        return {r[0]: int(r[1]) for r in rows}


Book = MemoryBook | SQLiteBook


def reference_price(symbol: str) -> float:
    """A stable made-up market price per symbol (10-1000), for orders that carry none."""
    return 10.0 + (zlib.crc32(symbol.encode()) % 99_000) / 100.0


class PaperBroker:
    """Fills orders after a simulated latency, with seeded faults."""

    def __init__(
        self, knobs: BrokerKnobs | None = None, seed: int = 0, book: Book | None = None
    ) -> None:
        self.knobs = knobs or BrokerKnobs()
        self.book: Book = book or MemoryBook()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self._connected = True

    def place_order(self, order: Order) -> Fill:
        if not self._connected:
            raise BrokerDisconnected("not connected")
        with self._lock:  # draws in a fixed order per order: same seed, same outcomes
            k = self.knobs
            delay = max(0.0, k.latency + self._rng.uniform(-k.jitter, k.jitter))
            disconnect = self._rng.random() < k.disconnect_rate
            timeout = self._rng.random() < k.timeout_rate
            reject = self._rng.random() < k.reject_rate
            fail = self._rng.random() < k.failure_rate
            spike = self._rng.random() < k.slippage_spike_rate
            slip = self._rng.uniform(0.10, 0.30) if spike else self._rng.uniform(0, k.slippage_max)
            sign = 1 if self._rng.random() < 0.5 else -1
        if disconnect:
            self._connected = False
            raise BrokerDisconnected("connection to broker lost")
        self.book.attempt(order.client_order_id)
        if delay:
            time.sleep(delay)
        if timeout:
            raise BrokerTimeout(f"no answer for order {order.client_order_id}")
        if reject:
            raise BrokerRejected(f"order {order.client_order_id} rejected: insufficient margin")
        if fail:
            raise BrokerError(f"order {order.client_order_id} failed: no liquidity")
        price = order.price or reference_price(order.symbol)
        fill = Fill(order.client_order_id, price * (1 + sign * slip), order.volume, time.time())
        return self.book.record(fill)

    def lookup(self, client_order_id: str) -> Fill | None:
        return self.book.get(client_order_id)
