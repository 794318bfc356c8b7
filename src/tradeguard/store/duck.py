"""DuckDB: the durable local copy of results and account state, instrumented.

One connection guarded by a lock (DuckDB connections are not shared across threads); every
statement is timed by operation, failures are counted, and writes can be stopped (the low-disk
remediation) without losing what is still in the result stream.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from tradeguard.bus.results import TradeResult
from tradeguard.bus.trade_state import AccountState
from tradeguard.errors import TradeguardError
from tradeguard.fencing import Fill
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.vocabulary import DUCKDB_OPS

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    signal_id TEXT PRIMARY KEY, account TEXT, symbol TEXT, action TEXT, volume DOUBLE,
    status TEXT, requested_price DOUBLE, fill_price DOUBLE, slippage DOUBLE,
    execution_seconds DOUBLE, created_at DOUBLE, executed_at DOUBLE, engine TEXT, detail TEXT
);
CREATE TABLE IF NOT EXISTS account_state (
    account TEXT PRIMARY KEY, balance DOUBLE, equity DOUBLE, leverage DOUBLE, trades BIGINT,
    positions TEXT, updated_at DOUBLE
);
"""


class StoreError(TradeguardError):
    """A DuckDB operation failed; the data is still in Redis and will be retried."""


class WritesStopped(StoreError):
    """Writes are stopped (low disk); nothing was written."""


class DuckStore:
    """Results and account state in one DuckDB file."""

    def __init__(self, path: Path | str, metrics: Metrics | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._metrics = metrics
        self._lock = threading.Lock()
        self.writes_enabled = True
        try:
            self._conn = duckdb.connect(str(self.path))
            self._conn.execute(SCHEMA)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open DuckDB file {self.path}: {exc}") from exc
        if metrics is not None:
            self._timers = {op: metrics.duckdb_query_duration.labels(op) for op in DUCKDB_OPS}

    @contextmanager
    def _timed(self, op: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._metrics is not None:
                self._timers[op].observe(time.perf_counter() - start)

    def set_writes_enabled(self, enabled: bool) -> None:
        self.writes_enabled = enabled
        if self._metrics is not None:
            self._metrics.duckdb_writes_enabled.set(1 if enabled else 0)

    def _write(self, op: str, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one write transaction; count a write failure and a rolled-back transaction."""
        if not self.writes_enabled:
            raise WritesStopped("DuckDB writes are stopped")
        with self._lock, self._timed(op):
            try:
                self._conn.execute("BEGIN TRANSACTION")
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except duckdb.Error as exc:
                with suppress(duckdb.Error):
                    self._conn.execute("ROLLBACK")
                if self._metrics is not None:
                    self._metrics.duckdb_write_failures.inc()
                    self._metrics.duckdb_transaction_failures.inc()
                raise StoreError(f"DuckDB {op} failed: {exc}") from exc

    def insert_results(self, results: Sequence[TradeResult]) -> None:
        """Insert results; a signal id already stored is kept as it is (idempotent)."""
        if not results:
            return
        self._write(
            "insert_results",
            "INSERT OR IGNORE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    r.signal_id,
                    r.account,
                    r.symbol,
                    r.action,
                    r.volume,
                    r.status,
                    r.requested_price,
                    r.fill_price,
                    r.slippage,
                    r.execution_seconds,
                    r.created_at,
                    r.executed_at,
                    r.engine,
                    r.detail,
                )
                for r in results
            ],
        )

    def upsert_states(self, states: Sequence[AccountState]) -> None:
        if not states:
            return
        self._write(
            "upsert_state",
            # Never replace a row with one that has fewer trades: a Redis that lost state
            # must not erase the durable copy before the consistency check sees the loss.
            "INSERT INTO account_state VALUES (?,?,?,?,?,?,?) ON CONFLICT (account) DO UPDATE "
            "SET balance = excluded.balance, equity = excluded.equity, "
            "leverage = excluded.leverage, trades = excluded.trades, "
            "positions = excluded.positions, updated_at = excluded.updated_at "
            "WHERE excluded.trades >= account_state.trades",
            [
                (
                    s.account,
                    s.balance,
                    s.equity,
                    s.leverage,
                    s.trades,
                    json.dumps(s.positions, sort_keys=True),
                    s.updated_at,
                )
                for s in states
            ],
        )

    def states(self) -> dict[str, AccountState]:
        with self._lock, self._timed("read_state"):
            rows = self._conn.execute(
                "SELECT account, balance, equity, leverage, trades, positions, updated_at "
                "FROM account_state"
            ).fetchall()
        return {
            r[0]: AccountState(
                account=r[0],
                balance=r[1],
                equity=r[2],
                leverage=r[3],
                trades=r[4],
                positions=json.loads(r[5]),
                updated_at=r[6],
            )
            for r in rows
        }

    def fills(self, account: str) -> list[Fill]:
        """The account's filled results as fills, in the order the engine applied them (a
        leader handles one signal at a time, stamping ``executed_at`` before it applies)."""
        with self._lock, self._timed("read_state"):
            rows = self._conn.execute(
                "SELECT symbol, action, volume, fill_price FROM results "
                "WHERE account = ? AND status = 'filled' AND fill_price IS NOT NULL "
                "ORDER BY executed_at, signal_id",
                [account],
            ).fetchall()
        return [Fill(account, str(r[0]), str(r[1]), float(r[2]), float(r[3])) for r in rows]

    def fill_counts(self) -> dict[str, int]:
        """Filled results per account: the trades Redis must count at least."""
        with self._lock, self._timed("check"):
            rows = self._conn.execute(
                "SELECT account, count(*) FROM results "
                "WHERE status = 'filled' AND fill_price IS NOT NULL GROUP BY account"
            ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def result_counts(self) -> dict[str, int]:
        with self._lock, self._timed("check"):
            rows = self._conn.execute(
                "SELECT status, count(*) FROM results GROUP BY status"
            ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def result_ids(self) -> list[str]:
        with self._lock, self._timed("check"):
            rows = self._conn.execute("SELECT signal_id FROM results").fetchall()
        return [str(r[0]) for r in rows]

    def memory(self) -> tuple[float, float]:
        """(bytes in use, memory limit in bytes) as DuckDB reports them."""
        with self._lock:
            used = self._conn.execute(
                "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()"
            ).fetchone()
            limit = self._conn.execute("SELECT current_setting('memory_limit')").fetchone()
        return float(used[0] if used else 0), parse_size(str(limit[0]) if limit else "0")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "KIB": 1024,
    "MB": 1000**2,
    "MIB": 1024**2,
    "GB": 1000**3,
    "GIB": 1024**3,
    "TB": 1000**4,
    "TIB": 1024**4,
}


def parse_size(text: str) -> float:
    """'12.5 GiB' -> bytes, as DuckDB prints memory_limit."""
    parts = text.strip().split()
    try:
        number = float(parts[0])
        unit = parts[1].upper() if len(parts) > 1 else ""
        return number * _UNITS[unit]
    except (IndexError, ValueError, KeyError):
        return 0.0
