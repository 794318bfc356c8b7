"""Alert history in PostgreSQL: the production store, shared by several responder replicas.

The UNIQUE constraint does the deduplication, so two responders behind two Alertmanager
replicas can insert the same event concurrently and exactly one of them sees it as new (and
notifies). One connection per responder, under a lock, reconnected after a failure: the write
rate is tiny and a pool would be one more thing to size.

Every statement is bounded in time, as the HA ledger's are (tradeguard.ha.ledger): a statement
stuck on a lock, a runaway query, or a server that vanished from the network fails with
HistoryError after ``timeout`` seconds instead of holding the history's lock, and with it every
webhook, the outbox sender and the dead man's switch, for as long as TCP takes to give up.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from tradeguard.redact import redact_url
from tradeguard.responder.events import AlertEvent
from tradeguard.responder.history.actions_sql import SQLActions
from tradeguard.responder.history.base import (
    HistoryError,
    Tx,
)
from tradeguard.responder.history.outbox_sql import SQLOutbox
from tradeguard.responder.history.schema import statements
from tradeguard.responder.payload import AlertStatus

# Serialises schema creation between responders starting at the same time (CREATE TABLE IF NOT
# EXISTS is not safe under concurrency in PostgreSQL). Any constant; this one spells "tgrs".
_SCHEMA_LOCK = 0x74677273
# Longer than any statement the responder runs (the 90-day report included), short enough that
# Alertmanager's delivery, which waits on the history, gets its 503 and retries elsewhere soon.
DEFAULT_TIMEOUT_SECONDS = 10.0

SCHEMA = statements("postgresql")


class _PostgresTx:
    def __init__(self, cursor: psycopg.Cursor[TupleRow]) -> None:
        self._cur = cursor

    def execute(self, sql: str, params: tuple[object, ...]) -> int:
        self._cur.execute(sql, params)
        return self._cur.rowcount

    def query(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        self._cur.execute(sql, params)
        return self._cur.fetchall()

    def execute_many(self, sql: str, params: Sequence[tuple[object, ...]]) -> None:
        if params:
            self._cur.executemany(sql, params)  # pipelined by psycopg 3


def _row(event: AlertEvent) -> tuple[object, ...]:
    return (
        event.fingerprint,
        event.alertname,
        event.status,
        event.starts_at,
        event.ends_at,
        event.severity,
        event.component,
        event.instance,
        Jsonb(dict(event.labels)),
        Jsonb(dict(event.annotations)),
        event.received_at,
        event.receiver,
    )


def decode_row(row: Sequence[Any]) -> AlertEvent:
    return AlertEvent(
        fingerprint=row[0],
        alertname=row[1],
        status=cast(AlertStatus, row[2]),
        starts_at=row[3].astimezone(UTC),
        ends_at=row[4].astimezone(UTC) if row[4] else None,
        severity=row[5],
        component=row[6],
        instance=row[7],
        labels=row[8],
        annotations=row[9],
        received_at=row[10].astimezone(UTC),
        receiver=row[11],
    )


class PostgresHistory(SQLOutbox, SQLActions):
    """:class:`~tradeguard.responder.history.base.AlertHistory` in a PostgreSQL database."""

    placeholder = "%s"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    _decode = staticmethod(decode_row)

    def __init__(
        self, url: str, connect_timeout: float = 5.0, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        self._url = url
        self.where = redact_url(url)
        self._connect_timeout = connect_timeout
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[TupleRow] | None = None
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    for statement in SCHEMA:
                        conn.execute(statement)
            except psycopg.Error as exc:
                self._drop_if_broken()
                raise HistoryError(f"cannot open alert history {self.where}: {exc}") from exc

    def _connection(self) -> psycopg.Connection[TupleRow]:
        if self._conn is None or self._conn.closed:
            ms = max(1, int(self.timeout * 1000))
            self._conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=max(1, math.ceil(self._connect_timeout)),
                # statement_timeout bounds a runaway query, lock_timeout a wait behind another
                # session's lock (a replica's long transaction, a manual LOCK TABLE), and
                # idle_in_transaction_session_timeout frees the locks of a responder frozen or
                # cut off inside a transaction: ours never pause between statements.
                options=f"-c statement_timeout={ms} -c lock_timeout={ms} "
                f"-c idle_in_transaction_session_timeout={ms}",
                # Keepalives probe an idle connection; tcp_user_timeout bounds the wait for
                # the acknowledgement of a statement sent into a silent network (the kernel
                # would retransmit for ~15 minutes). A slow but reachable server acknowledges
                # at once, so neither cuts off a long statement: statement_timeout does that.
                keepalives=1,
                keepalives_idle=max(1, int(self.timeout)),
                keepalives_interval=1,
                keepalives_count=3,
                tcp_user_timeout=ms,
            )
        return self._conn

    def _drop_if_broken(self) -> None:
        if self._conn is not None and (self._conn.broken or self._conn.closed):
            self._conn.close()
            self._conn = None

    @contextmanager
    def _transaction(self, what: str, durable: bool = True) -> Iterator[Tx]:
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction(), conn.cursor() as cur:
                    if not durable:  # the commit returns before its WAL is flushed
                        cur.execute("SET LOCAL synchronous_commit = off")
                    yield _PostgresTx(cur)
            except psycopg.Error as exc:
                self._drop_if_broken()
                raise HistoryError(f"{what} in {self.where} failed: {exc}") from exc

    def _event_row(self, event: AlertEvent) -> tuple[object, ...]:
        return _row(event)

    @staticmethod
    def _time(value: Any) -> datetime:
        moment: datetime = value.astimezone(UTC)
        return moment

    def _to_db_time(self, value: datetime) -> object:
        return value

    def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        with self._lock:
            try:
                self._connection().execute(sql, params)
            except psycopg.Error as exc:
                self._drop_if_broken()
                raise HistoryError(f"writing alert history {self.where} failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _query(self, sql: str, params: tuple[object, ...]) -> list[TupleRow]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except psycopg.Error as exc:
                self._drop_if_broken()
                raise HistoryError(f"reading alert history {self.where} failed: {exc}") from exc

    def __repr__(self) -> str:
        return f"<PostgresHistory {self.where}>"
