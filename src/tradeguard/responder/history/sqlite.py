"""Alert history in a SQLite file: the embedded default, nothing to run beside the responder.

One connection shared under a lock: the responder's write rate is a few deliveries a second at
most, and one connection keeps the idempotency check and the insert in the same transaction
without SQLite's busy-retry dance. WAL lets another process (a CLI, a report) read meanwhile.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from tradeguard.responder.events import AlertEvent, iso, parse_iso
from tradeguard.responder.history.base import (
    ACKS,
    TABLE,
    HistoryError,
    SQLHistoryReads,
)
from tradeguard.responder.payload import AlertStatus

# Timestamps are fixed-width UTC text (events.iso), so text order is time order and equal
# instants compare equal in the UNIQUE constraint.
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    alertname TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_at TEXT NOT NULL,
    ends_at TEXT,
    severity TEXT,
    component TEXT,
    instance TEXT,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    received_at TEXT NOT NULL,
    receiver TEXT NOT NULL,
    UNIQUE (fingerprint, starts_at, status)
);
CREATE INDEX IF NOT EXISTS {TABLE}_alertname ON {TABLE} (alertname, id);
CREATE INDEX IF NOT EXISTS {TABLE}_status ON {TABLE} (status, fingerprint);
CREATE TABLE IF NOT EXISTS {ACKS} (
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    acked_at TEXT NOT NULL,
    acked_by TEXT NOT NULL,
    false_positive INTEGER NOT NULL,
    note TEXT NOT NULL,
    PRIMARY KEY (fingerprint, starts_at)
);
"""

INSERT_SQL = f"""
INSERT INTO {TABLE} (fingerprint, alertname, status, starts_at, ends_at, severity, component,
                     instance, labels, annotations, received_at, receiver)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (fingerprint, starts_at, status) DO NOTHING
"""


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


class SQLiteHistory(SQLHistoryReads):
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

    def insert(self, event: AlertEvent) -> bool:
        return self.insert_many([event])[0]

    def insert_many(self, events: Sequence[AlertEvent]) -> list[bool]:
        rows = [_row(e) for e in events]
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    new = [self._conn.execute(INSERT_SQL, row).rowcount == 1 for row in rows]
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise HistoryError(f"storing alert events in {self.path} failed: {exc}") from exc
        return new

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
