"""What every alert-history backend offers, and the SQL they share.

The responder depends on this protocol only, so the embedded default (SQLite) and the
production store (PostgreSQL) are interchangeable, and later parts (throttling summaries, the
acknowledgement API, the effectiveness report) can query history without knowing which it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tradeguard.errors import TradeguardError
from tradeguard.responder.events import AlertEvent, iso

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


class AlertHistory(Protocol):
    """Durable, idempotent record of alert events."""

    def insert(self, event: AlertEvent) -> bool:
        """Store ``event``; True if it was new, False if its key was already stored."""
        ...

    def insert_many(self, events: Sequence[AlertEvent]) -> list[bool]:
        """Store all of ``events`` in one transaction (all or nothing); one flag per event."""
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
    """The read side both SQL backends share; they differ only in the parameter placeholder
    and in how a row decodes (text columns in SQLite, timestamptz/jsonb in PostgreSQL)."""

    placeholder = "?"

    @abstractmethod
    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any]: ...

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
