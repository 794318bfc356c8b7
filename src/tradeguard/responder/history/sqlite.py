"""Alert history in a SQLite file: the embedded default, nothing to run beside the responder.

One connection shared under a lock: the responder's write rate is a few deliveries a second at
most, and one connection keeps the idempotency check and the insert in the same transaction
without SQLite's busy-retry dance. WAL lets another process (a CLI, a report) read meanwhile.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from tradeguard.responder.events import AlertEvent, iso, parse_iso
from tradeguard.responder.history.actions_sql import SQLActions
from tradeguard.responder.history.base import (
    EVENT_INSERT_COLUMNS,
    ROWS_PER_INSERT,
    TABLE,
    HistoryError,
    Tx,
    flat,
    values_list,
)
from tradeguard.responder.history.outbox_sql import SQLOutbox
from tradeguard.responder.history.schema import statements
from tradeguard.responder.payload import AlertStatus

# Timestamps are fixed-width UTC text (events.iso), so text order is time order and equal
# instants compare equal in the UNIQUE constraint.
SCHEMA = ";\n".join(statements("sqlite")) + ";"


class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple[object, ...]) -> int:
        return self._conn.execute(sql, params).rowcount

    def query(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    def execute_many(self, sql: str, params: Sequence[tuple[object, ...]]) -> None:
        if params:
            self._conn.executemany(sql, params)


def _row(event: AlertEvent) -> tuple[object, ...]:
    return (
        event.fingerprint,
        event.alertname,
        event.status,
        iso(event.starts_at),
        iso(event.ends_at) if event.ends_at else None,
        event.severity,
        event.component,
        event.instance,
        json.dumps(dict(event.labels), sort_keys=True),
        json.dumps(dict(event.annotations), sort_keys=True),
        iso(event.received_at),
        event.receiver,
    )


def decode_row(row: Sequence[Any]) -> AlertEvent:
    return AlertEvent(
        fingerprint=row[0],
        alertname=row[1],
        status=cast(AlertStatus, row[2]),
        starts_at=parse_iso(row[3]),
        ends_at=parse_iso(row[4]) if row[4] else None,
        severity=row[5],
        component=row[6],
        instance=row[7],
        labels=json.loads(row[8]),
        annotations=json.loads(row[9]),
        received_at=parse_iso(row[10]),
        receiver=row[11],
    )


class SQLiteHistory(SQLOutbox, SQLActions):
    """:class:`~tradeguard.responder.history.base.AlertHistory` over one SQLite file."""

    _decode = staticmethod(decode_row)

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: no implicit transactions; insert_many opens its own.
            self._conn = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot open alert history {self.path}: {exc}") from exc

    @contextmanager
    def _transaction(self, what: str, durable: bool = True) -> Iterator[Tx]:
        with self._lock:
            try:
                if not durable:  # WAL: NORMAL appends the commit without an fsync
                    self._conn.execute("PRAGMA synchronous=NORMAL")
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield _SQLiteTx(self._conn)
                        self._conn.execute("COMMIT")
                    except BaseException:
                        self._conn.execute("ROLLBACK")
                        raise
                finally:
                    if not durable:
                        self._conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise HistoryError(f"{what} in {self.path} failed: {exc}") from exc

    def _event_row(self, event: AlertEvent) -> tuple[object, ...]:
        return _row(event)

    def _insert_events(
        self, tx: Tx, rows: Sequence[tuple[object, ...]], known: set[tuple[object, ...]]
    ) -> list[bool]:
        """New is what ``known`` lacks: BEGIN IMMEDIATE took SQLite's one write lock before
        ``known`` was read, so nobody stored anything since. A plain multi-row INSERT of the new
        rows then costs one statement, where RETURNING costs a step (and a GIL hand-off) a row."""
        seen = set(known)
        flags: list[bool] = []
        fresh: list[tuple[object, ...]] = []
        for row in rows:
            key = (row[0], row[3], row[2])  # fingerprint, starts_at, status
            flags.append(key not in seen)
            if key not in seen:
                seen.add(key)
                fresh.append(row)
        for start in range(0, len(fresh), ROWS_PER_INSERT):
            chunk = fresh[start : start + ROWS_PER_INSERT]
            tx.execute(
                f"INSERT INTO {TABLE} ({EVENT_INSERT_COLUMNS}) VALUES {values_list('?', chunk)}",
                flat(chunk),
            )
        return flags

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @staticmethod
    def _time(value: Any) -> datetime:
        return parse_iso(value)

    def _to_db_time(self, value: datetime) -> object:
        return iso(value)

    def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        with self._lock:
            try:
                self._conn.execute(sql, params)
            except sqlite3.Error as exc:
                raise HistoryError(f"writing alert history {self.path} failed: {exc}") from exc

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise HistoryError(f"reading alert history {self.path} failed: {exc}") from exc

    def __repr__(self) -> str:
        return f"<SQLiteHistory {self.path}>"
