"""A paper broker with deterministic, seedable fault knobs, strict unless told otherwise.

It is the default broker and the one every test and demo uses. Strict, it forgives nothing a
real venue does not: every ``place_order`` is a new order even with a client order id it has
seen (a second send is a second fill), an order that timed out or lost its connection may still
fill later, ``lookup`` may lag behind a fill and may fail, and a reconnect may block. The
``forgiving`` knob brings back the kind broker (a repeated client id answers with the first
fill; a timed-out order never fills) so a test can show what that hides.

Its order book can live in a SQLite file so several engine processes on one host share it: that
is what lets the fault tests count fills per signal across replicas that kill each other.
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
    BrokerNotConnected,
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
    late_fill_rate: float = 0.0  # share of timed-out / cut-off orders that fill anyway, later
    late_fill_delay: float = 0.5  # how long after the timeout such a late fill executes
    visibility_delay: float = 0.0  # lookup shows a fill only this long after it executed
    lookup_failure_rate: float = 0.0  # share of lookups that raise BrokerDisconnected
    reconnect_block: float = 0.0  # seconds connect() blocks before it succeeds
    # A session opened before this unix time is dead at the venue: every order on it fails
    # (a half-open connection the client cannot see) until the client connects again.
    dead_sessions_before: float = 0.0
    forgiving: float = 0.0  # 1: drop repeated client order ids, no late fills (hides bugs)

    def max_in_flight(self) -> float:
        """The longest an order may take from send to a fill ``lookup`` shows: after this, an
        order whose fill is not visible will never fill."""
        late = 0.0 if self.forgiving else self.late_fill_delay
        return self.latency + self.jitter + late + self.visibility_delay

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


@dataclass(frozen=True, slots=True)
class BookFill:
    """One execution in the book, with what it did (for the history checks)."""

    client_order_id: str
    account: str
    symbol: str
    side: str
    volume: float
    price: float
    executed_at: float

    def fill(self) -> Fill:
        return Fill(self.client_order_id, self.price, self.volume, self.executed_at)


class MemoryBook:
    """Orders of one process; lost with it."""

    def __init__(self) -> None:
        self._fills: list[BookFill] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def attempt(self, client_order_id: str) -> None:
        with self._lock:
            self._attempts[client_order_id] = self._attempts.get(client_order_id, 0) + 1

    def record(self, fill: BookFill, once: bool) -> BookFill:
        """Store ``fill``; with ``once``, keep only the first per client id and return it."""
        with self._lock:
            if once:
                for earlier in self._fills:
                    if earlier.client_order_id == fill.client_order_id:
                        return earlier
            self._fills.append(fill)
            return fill

    def first(self, client_order_id: str, executed_before: float) -> BookFill | None:
        with self._lock:
            for fill in self._fills:
                if fill.client_order_id == client_order_id and fill.executed_at <= executed_before:
                    return fill
            return None

    def all_fills(self, executed_before: float = float("inf")) -> list[BookFill]:
        """Every fill in booking order; with ``executed_before``, those executed by then."""
        with self._lock:
            return [f for f in self._fills if f.executed_at <= executed_before]

    def fills(self) -> dict[str, Fill]:
        """The first fill per client order id, of those executed by now."""
        out: dict[str, Fill] = {}
        for f in self.all_fills(time.time()):
            out.setdefault(f.client_order_id, f.fill())
        return out

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
                "CREATE TABLE IF NOT EXISTS fills (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "client_order_id TEXT NOT NULL, account TEXT, symbol TEXT, side TEXT, "
                "volume REAL, price REAL, executed_at REAL)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS fills_by_id ON fills (client_order_id)")
            conn.execute("CREATE TABLE IF NOT EXISTS attempts (client_order_id TEXT, ts REAL)")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.conn = conn
        return conn

    def attempt(self, client_order_id: str) -> None:
        self._conn().execute("INSERT INTO attempts VALUES (?, ?)", (client_order_id, time.time()))

    def record(self, fill: BookFill, once: bool) -> BookFill:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if once:
                earlier = self.first(fill.client_order_id, float("inf"))
                if earlier is not None:
                    return earlier
            conn.execute(
                "INSERT INTO fills (client_order_id, account, symbol, side, volume, price, "
                "executed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    fill.client_order_id,
                    fill.account,
                    fill.symbol,
                    fill.side,
                    fill.volume,
                    fill.price,
                    fill.executed_at,
                ),
            )
            return fill
        finally:
            conn.execute("COMMIT")

    _COLUMNS = "client_order_id, account, symbol, side, volume, price, executed_at"

    def first(self, client_order_id: str, executed_before: float) -> BookFill | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {self._COLUMNS} FROM fills WHERE client_order_id = ? "
                "AND executed_at <= ? ORDER BY seq LIMIT 1",
                (client_order_id, executed_before),
            )
            .fetchone()
        )
        return BookFill(*row) if row else None

    def all_fills(self, executed_before: float = float("inf")) -> list[BookFill]:
        """Every fill in booking order; with ``executed_before``, those executed by then."""
        rows = self._conn().execute(
            f"SELECT {self._COLUMNS} FROM fills WHERE executed_at <= ? ORDER BY seq",
            (executed_before,),
        )
        return [BookFill(*r) for r in rows]

    def fills(self) -> dict[str, Fill]:
        """The first fill per client order id, of those executed by now."""
        out: dict[str, Fill] = {}
        for f in self.all_fills(time.time()):
            out.setdefault(f.client_order_id, f.fill())
        return out

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
        self._session_opened_at = 0.0

    @property
    def connected(self) -> bool:
        return self._connected

    def max_in_flight(self) -> float:
        return self.knobs.max_in_flight()

    def connect(self) -> None:
        if self.knobs.reconnect_block:
            time.sleep(self.knobs.reconnect_block)
        self._session_opened_at = time.time()
        self._connected = True

    def place_order(self, order: Order) -> Fill:
        if not self._connected:
            raise BrokerNotConnected("not connected")
        if self._session_opened_at < self.knobs.dead_sessions_before:
            self.book.attempt(order.client_order_id)  # it reached the venue, which refused it
            raise BrokerError(f"order {order.client_order_id} failed: the session is dead")
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
            late = self._rng.random() < k.late_fill_rate
        strict = not k.forgiving
        if disconnect and not strict:
            self._connected = False
            raise BrokerDisconnected("connection to broker lost")
        self.book.attempt(order.client_order_id)
        price = (order.price or reference_price(order.symbol)) * (1 + sign * slip)
        if disconnect:  # the line dropped after the order went out: it may still fill
            self._connected = False
            if late:
                self._fill(order, price, time.time() + k.late_fill_delay)
            raise BrokerDisconnected(f"connection lost with order {order.client_order_id} out")
        # The venue executes on its own clock, whatever the client does meanwhile (a frozen
        # or killed engine included): the outcome is booked now, dated when it happens.
        done_at = time.time() + delay
        if timeout and late and strict:
            self._fill(order, price, done_at + k.late_fill_delay)
        fill = None if timeout or reject or fail else self._fill(order, price, done_at)
        if delay:
            time.sleep(delay)
        if timeout:
            raise BrokerTimeout(f"no answer for order {order.client_order_id}")
        if reject:
            raise BrokerRejected(f"order {order.client_order_id} rejected: insufficient margin")
        if fail:
            raise BrokerError(f"order {order.client_order_id} failed: no liquidity")
        assert fill is not None
        return fill.fill()

    def _fill(self, order: Order, price: float, at: float) -> BookFill:
        fill = BookFill(
            order.client_order_id, order.account, order.symbol, order.side, order.volume, price, at
        )
        return self.book.record(fill, once=bool(self.knobs.forgiving))

    def lookup(self, client_order_id: str) -> Fill | None:
        k = self.knobs
        if k.lookup_failure_rate:
            with self._lock:
                failed = self._rng.random() < k.lookup_failure_rate
            if failed:
                raise BrokerDisconnected(f"lookup of {client_order_id} failed: connection reset")
        found = self.book.first(client_order_id, time.time() - k.visibility_delay)
        return None if found is None else found.fill()
