"""What every alert-history backend offers, and the SQL they share.

The responder depends on this protocol only, so the embedded default (SQLite) and the
production store (PostgreSQL) are interchangeable, and later parts (throttling summaries, the
acknowledgement API, the effectiveness report) can query history without knowing which it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tradeguard.errors import TradeguardError
from tradeguard.responder.events import AlertEvent, iso
from tradeguard.responder.outbox import OutboxItem, OutboxStore

TABLE = "alert_events"
MAX_HISTORY_LIMIT = 1000

# The columns in the order every SELECT returns them (see ``row_to_event`` in each backend).
COLUMNS = (
    "fingerprint",
    "alertname",
    "status",
    "starts_at",
    "ends_at",
    "severity",
    "component",
    "instance",
    "labels",
    "annotations",
    "received_at",
    "receiver",
)
SELECT_COLUMNS = ", ".join(f"e.{c}" for c in COLUMNS)

# An occurrence (fingerprint, starts_at) is firing while it has no resolved event. "Resolved
# wins" rather than "last received wins": replicas may deliver the firing notice after the
# resolved one, and a resolved occurrence never fires again under the same startsAt. Only the
# newest occurrence of a fingerprint counts: Alertmanager holds one alert per label set, so a
# newer startsAt means the older occurrence ended even if its resolved notice was lost.
FIRING_SQL = f"""
SELECT {SELECT_COLUMNS} FROM {TABLE} e
WHERE e.status = 'firing'
  AND NOT EXISTS (
    SELECT 1 FROM {TABLE} r
    WHERE r.fingerprint = e.fingerprint AND r.starts_at = e.starts_at AND r.status = 'resolved'
  )
  AND NOT EXISTS (
    SELECT 1 FROM {TABLE} n WHERE n.fingerprint = e.fingerprint AND n.starts_at > e.starts_at
  )
ORDER BY e.starts_at DESC, e.id DESC
"""

COUNT_SQL = f"SELECT count(*) FROM {TABLE}"

EVENT_INSERT_COLUMNS = (
    "fingerprint, alertname, status, starts_at, ends_at, severity, component, instance, labels, "
    "annotations, received_at, receiver"
)

OUTBOX = "notification_outbox"
ATTEMPTS = "notification_attempts"

# Decides which channels owe a notification for a newly stored event (empty: none).
OutboxPlan = Callable[[AlertEvent], Sequence[OutboxItem]]

ACKS = "alert_acks"


@dataclass(frozen=True)
class Ack:
    """Someone took charge of one alert occurrence (the first acknowledgement counts)."""

    fingerprint: str
    starts_at: datetime
    acked_at: datetime
    acked_by: str
    false_positive: bool
    note: str

    def to_json(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "starts_at": iso(self.starts_at),
            "acked_at": iso(self.acked_at),
            "acked_by": self.acked_by,
            "false_positive": self.false_positive,
            "note": self.note,
        }


@dataclass(frozen=True)
class Occurrence:
    """One firing of one alert (fingerprint + startsAt), with what became of it."""

    fingerprint: str
    alertname: str
    severity: str | None
    starts_at: datetime
    notified_at: datetime  # when the responder first received it firing
    ends_at: datetime | None  # from its resolved event
    ack: Ack | None


class HistoryError(TradeguardError):
    """The history store failed (unreachable, disk full, ...): a server-side problem."""


def display_url(url: str) -> str:
    """``url`` without user or password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    location, slash, path = rest.partition("/")
    host = location.rpartition("@")[2]
    return f"{scheme}://{host}{slash}{path.partition('?')[0]}"


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_HISTORY_LIMIT}, got {limit}")
    return limit


class Tx(Protocol):
    """The statements of one open transaction."""

    def execute(self, sql: str, params: tuple[object, ...]) -> int:
        """Run ``sql``; the number of rows it changed."""
        ...

    def query(self, sql: str, params: tuple[object, ...]) -> list[Any]: ...


class AlertHistory(OutboxStore, Protocol):
    """Durable, idempotent record of alert events, and the delivery outbox beside it."""

    def insert(self, event: AlertEvent) -> bool:
        """Store ``event``; True if it was new, False if its key was already stored."""
        ...

    def insert_many(
        self, events: Sequence[AlertEvent], outbox: OutboxPlan | None = None
    ) -> list[bool]:
        """Store all of ``events`` in one transaction (all or nothing); one flag per event.

        For each new event ``outbox`` names, the notifications it owes are written to the
        outbox in the same transaction, except for a firing event whose occurrence is already
        resolved (it arrived late: it is stored, and nobody is told it fires).
        """
        ...

    def firing(self) -> list[AlertEvent]:
        """The firing event of every alert occurrence not yet resolved, newest first."""
        ...

    def history(self, limit: int = 50, alertname: str | None = None) -> list[AlertEvent]:
        """The last ``limit`` stored events (optionally of one alert), newest first."""
        ...

    def count(self) -> int:
        """How many events are stored."""
        ...

    def acknowledge(
        self, fingerprint: str, by: str, false_positive: bool, note: str, at: datetime
    ) -> Ack | None:
        """Acknowledge the newest occurrence of ``fingerprint``; the stored (first) ack, or
        None when no such alert fired."""
        ...

    def occurrences(self, since: datetime) -> list[Occurrence]:
        """Every occurrence first received firing at or after ``since``, oldest first."""
        ...

    def check(self) -> None:
        """Raise :class:`HistoryError` unless the store answers a trivial query."""
        ...

    def close(self) -> None:
        """Release connections; the object is unusable afterwards."""
        ...


class SQLHistoryReads(ABC):
    """The SQL both backends share; they differ only in the parameter placeholder, in how a
    row encodes and decodes (text columns in SQLite, timestamptz/jsonb in PostgreSQL) and in
    how a transaction opens."""

    placeholder = "?"

    @abstractmethod
    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any]: ...

    @abstractmethod
    def _transaction(self, what: str) -> AbstractContextManager[Tx]:
        """One transaction, committed when the block ends (HistoryError naming ``what``)."""

    @abstractmethod
    def _event_row(self, event: AlertEvent) -> tuple[object, ...]:
        """``event`` as the values of EVENT_INSERT_COLUMNS."""

    def insert(self, event: AlertEvent) -> bool:
        return self.insert_many([event])[0]

    def insert_many(
        self, events: Sequence[AlertEvent], outbox: OutboxPlan | None = None
    ) -> list[bool]:
        ph = self.placeholder
        insert_event = (
            f"INSERT INTO {TABLE} ({EVENT_INSERT_COLUMNS}) VALUES ({', '.join([ph] * 12)}) "
            "ON CONFLICT (fingerprint, starts_at, status) DO NOTHING"
        )
        already_resolved = (
            f"SELECT 1 FROM {TABLE} WHERE fingerprint = {ph} AND starts_at = {ph} "
            "AND status = 'resolved'"
        )
        insert_item = (
            f"INSERT INTO {OUTBOX} (channel, category, fingerprint, alertname, state, body, "
            f"created_at, next_attempt_at, attempts) "
            f"VALUES ({ph}, {ph}, {ph}, {ph}, 'pending', {ph}, {ph}, {ph}, 0)"
        )
        rows = [self._event_row(e) for e in events]
        with self._transaction("storing alert events") as tx:
            flags = [tx.execute(insert_event, row) == 1 for row in rows]
            if outbox is None:
                return flags
            for event, row, new in zip(events, rows, flags, strict=True):
                if not new:
                    continue
                if event.status == "firing" and tx.query(already_resolved, (row[0], row[3])):
                    continue
                now = self._to_db_time(event.received_at)
                for item in outbox(event):
                    n = item.notification
                    tx.execute(
                        insert_item,
                        (
                            item.channel,
                            item.category,
                            n.fingerprint,
                            n.alertname,
                            item.body(),
                            now,
                            now,
                        ),
                    )
        return flags

    @staticmethod
    @abstractmethod
    def _decode(row: Sequence[Any]) -> AlertEvent: ...

    def firing(self) -> list[AlertEvent]:
        return [self._decode(r) for r in self._query(FIRING_SQL, ())]

    def history(self, limit: int = 50, alertname: str | None = None) -> list[AlertEvent]:
        check_limit(limit)
        ph = self.placeholder
        if alertname is None:
            sql = f"SELECT {SELECT_COLUMNS} FROM {TABLE} e ORDER BY e.id DESC LIMIT {ph}"
            return [self._decode(r) for r in self._query(sql, (limit,))]
        sql = (
            f"SELECT {SELECT_COLUMNS} FROM {TABLE} e WHERE e.alertname = {ph} "
            f"ORDER BY e.id DESC LIMIT {ph}"
        )
        return [self._decode(r) for r in self._query(sql, (alertname, limit))]

    def count(self) -> int:
        return int(self._query(COUNT_SQL, ())[0][0])

    @staticmethod
    @abstractmethod
    def _time(value: Any) -> datetime:
        """A timestamp column as an aware UTC datetime."""

    @abstractmethod
    def _to_db_time(self, value: datetime) -> object:
        """A datetime as the backend stores timestamps."""

    @abstractmethod
    def _execute(self, sql: str, params: tuple[object, ...]) -> None: ...

    def acknowledge(
        self, fingerprint: str, by: str, false_positive: bool, note: str, at: datetime
    ) -> Ack | None:
        ph = self.placeholder
        newest = self._query(
            f"SELECT max(starts_at) FROM {TABLE} WHERE fingerprint = {ph} AND status = 'firing'",
            (fingerprint,),
        )
        if not newest or newest[0][0] is None:
            return None
        starts_at = newest[0][0]
        self._execute(
            f"INSERT INTO {ACKS} (fingerprint, starts_at, acked_at, acked_by, false_positive, "
            f"note) VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}) "
            "ON CONFLICT (fingerprint, starts_at) DO NOTHING",
            (fingerprint, starts_at, self._to_db_time(at), by, false_positive, note),
        )
        rows = self._query(
            f"SELECT acked_at, acked_by, false_positive, note FROM {ACKS} "
            f"WHERE fingerprint = {ph} AND starts_at = {ph}",
            (fingerprint, starts_at),
        )
        acked_at, acked_by, fp, stored_note = rows[0]
        return Ack(
            fingerprint,
            self._time(starts_at),
            self._time(acked_at),
            acked_by,
            bool(fp),
            stored_note,
        )

    def occurrences(self, since: datetime) -> list[Occurrence]:
        ph = self.placeholder
        firing = self._query(
            f"SELECT fingerprint, starts_at, min(alertname), min(severity), min(received_at) "
            f"FROM {TABLE} WHERE status = 'firing' GROUP BY fingerprint, starts_at "
            f"HAVING min(received_at) >= {ph}",
            (self._to_db_time(since),),
        )
        ends = {
            (f, self._time(s)): self._time(e)
            for f, s, e in self._query(
                f"SELECT fingerprint, starts_at, ends_at FROM {TABLE} "
                "WHERE status = 'resolved' AND ends_at IS NOT NULL",
                (),
            )
        }
        acks = {
            (f, self._time(s)): Ack(f, self._time(s), self._time(a), by, bool(fp), note)
            for f, s, a, by, fp, note in self._query(
                f"SELECT fingerprint, starts_at, acked_at, acked_by, false_positive, note "
                f"FROM {ACKS}",
                (),
            )
        }
        found = []
        for fingerprint, starts_raw, alertname, severity, received in firing:
            key = (fingerprint, self._time(starts_raw))
            found.append(
                Occurrence(
                    fingerprint,
                    alertname,
                    severity,
                    key[1],
                    self._time(received),
                    ends.get(key),
                    acks.get(key),
                )
            )
        return sorted(found, key=lambda o: o.notified_at)

    def check(self) -> None:
        self._query("SELECT 1", ())
