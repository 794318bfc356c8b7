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
from tradeguard.remediation.registry import UNDO_ACTIONS
from tradeguard.responder.events import AlertEvent, iso
from tradeguard.responder.history.actions import ActionAttempt as ActionAttempt  # re-exported
from tradeguard.responder.history.actions import ActionAudit
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
WHERE e.status = 'firing'{{only}}
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
ROWS_PER_INSERT = 400  # 12 parameters a row: well under SQLite's and PostgreSQL's limits
ATTEMPTS = "notification_attempts"

# Decides which channels owe a notification for a newly stored event (empty: none).
OutboxPlan = Callable[[AlertEvent], Sequence[OutboxItem]]

ACKS = "alert_acks"
REMEDIATION = "remediation_actions"  # the remediation audit (history/actions.py)
# Outbox states that are over: nothing will happen to such an entry again, so retention may
# delete it (a pending or held entry is owed to someone and is never deleted).
FINISHED_STATES = ("sent", "merged", "dead")

# The occurrences first received firing at or after a moment, with their end and first ack.
# (fingerprint, starts_at, status) is unique, so an occurrence has one firing row, at most one
# resolved row and at most one ack: the joins add no rows, and only the window's occurrences
# (through the received_at index) are read, not every resolved event and ack ever stored.
# ``remediated``: a remediation action ended ``done`` for the occurrence (its undo, run once
# the alert resolved, does not count), looked up through the audit's unique key.
_UNDOS = ", ".join(f"'{name}'" for name in UNDO_ACTIONS)
OCCURRENCES_SQL = f"""
SELECT f.fingerprint, f.starts_at, f.alertname, f.severity, f.received_at, r.ends_at,
       a.acked_at, a.acked_by, a.false_positive, a.note,
       EXISTS (
         SELECT 1 FROM {REMEDIATION} m
         WHERE m.fingerprint = f.fingerprint AND m.starts_at = f.starts_at
           AND m.outcome = 'done' AND m.action NOT IN ({_UNDOS})
       ) AS remediated
FROM {TABLE} f
LEFT JOIN {TABLE} r ON r.fingerprint = f.fingerprint AND r.starts_at = f.starts_at
    AND r.status = 'resolved'
LEFT JOIN {ACKS} a ON a.fingerprint = f.fingerprint AND a.starts_at = f.starts_at
WHERE f.status = 'firing' AND f.received_at >= {{ph}}
ORDER BY f.received_at, f.id
"""

# Retention: the events of every occurrence that is over and was last heard of before the
# cutoff. "Over" means resolved, or replaced by a newer occurrence of the same fingerprint
# (FIRING_SQL's rule): an alert still firing keeps its firing event however old it is, because
# that event is what /api/alerts/firing shows and what makes Alertmanager's repeated deliveries
# of the same occurrence duplicates rather than new notifications. An occurrence goes as a
# whole, so a lone firing event never reappears as firing once its resolved event is gone.
PRUNE_EVENTS_SQL = f"""
DELETE FROM {TABLE} WHERE id IN (
  SELECT e.id FROM {TABLE} e
  WHERE e.received_at < {{ph}}
    AND NOT EXISTS (
      SELECT 1 FROM {TABLE} x
      WHERE x.fingerprint = e.fingerprint AND x.starts_at = e.starts_at AND x.received_at >= {{ph}}
    )
    AND (
      EXISTS (
        SELECT 1 FROM {TABLE} r
        WHERE r.fingerprint = e.fingerprint AND r.starts_at = e.starts_at AND r.status = 'resolved'
      )
      OR EXISTS (
        SELECT 1 FROM {TABLE} n WHERE n.fingerprint = e.fingerprint AND n.starts_at > e.starts_at
      )
    )
)
"""
# An ack belongs to the occurrence it names: once that occurrence's events are gone, so is it.
PRUNE_ACKS_SQL = f"""
DELETE FROM {ACKS} WHERE NOT EXISTS (
  SELECT 1 FROM {TABLE} e WHERE e.fingerprint = {ACKS}.fingerprint
    AND e.starts_at = {ACKS}.starts_at
)
"""
_FINISHED = ", ".join(f"'{state}'" for state in FINISHED_STATES)
PRUNE_ATTEMPTS_SQL = f"""
DELETE FROM {ATTEMPTS} WHERE outbox_id IN (
  SELECT id FROM {OUTBOX} WHERE state IN ({_FINISHED}) AND done_at < {{ph}}
)
"""
PRUNE_OUTBOX_SQL = f"DELETE FROM {OUTBOX} WHERE state IN ({_FINISHED}) AND done_at < {{ph}}"
# A remediation attempt goes with its occurrence, as an ack does, and only once it was decided
# before the cutoff too: the attempts of an alert still firing (however long) stay, or their
# occurrence would get its first attempt again after retention.
PRUNE_ACTIONS_SQL = f"""
DELETE FROM {REMEDIATION} WHERE decided_at < {{ph}} AND NOT EXISTS (
  SELECT 1 FROM {TABLE} e WHERE e.fingerprint = {REMEDIATION}.fingerprint
    AND e.starts_at = {REMEDIATION}.starts_at
)
"""


def values_list(ph: str, rows: Sequence[tuple[object, ...]]) -> str:
    """``(?, ?), (?, ?)``: the VALUES list of a multi-row statement over ``rows``."""
    one = f"({', '.join([ph] * len(rows[0]))})"
    return ", ".join([one] * len(rows))


def flat(rows: Sequence[tuple[object, ...]]) -> tuple[object, ...]:
    return tuple(v for row in rows for v in row)


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
    remediated: bool = False  # a remediation action ended done for it (healed by an action)


class HistoryError(TradeguardError):
    """The history store failed (unreachable, disk full, ...): a server-side problem."""


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

    def execute_many(self, sql: str, params: Sequence[tuple[object, ...]]) -> None:
        """Run ``sql`` once per parameter tuple (one round trip where the driver can)."""
        ...


class AlertHistory(OutboxStore, ActionAudit, Protocol):
    """Durable, idempotent record of alert events, and beside it the delivery outbox and the
    remediation audit."""

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

    def firing(self, fingerprint: str | None = None) -> list[AlertEvent]:
        """The firing event of every alert occurrence not yet resolved (of one alert, given its
        fingerprint), newest first."""
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

    def acks_of(self, keys: Sequence[tuple[str, datetime]]) -> dict[tuple[str, datetime], Ack]:
        """The acknowledgement of each of the occurrences ``keys`` (fingerprint, startsAt)
        that has one."""
        ...

    def prune(self, before: datetime) -> int:
        """Forget what is over and older than ``before``: the events of every occurrence last
        heard of before it that is resolved or replaced (a still-firing alert is kept), their
        acknowledgements and remediation attempts (those decided before the cutoff), and the
        outbox entries finished (sent, merged, dead) before it with their attempts. Pending and
        held entries are never deleted. The number of alert events, outbox entries and
        remediation attempts deleted."""
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
    def _transaction(self, what: str, durable: bool = True) -> AbstractContextManager[Tx]:
        """One transaction, committed when the block ends (HistoryError naming ``what``).

        ``durable=False`` commits without waiting for the disk: the transaction is atomic and
        visible at once, survives a crash of the process, and reaches the disk with the next
        durable commit (or the database's own flush); only a power loss can undo it. The
        sender's bookkeeping (claims, holds, outcomes) commits this way: undone, a
        notification is delivered again (at least once, as after any crash mid-delivery), and
        the intake's durable commits, which every 200 waits for, stop queueing behind its fsyncs.
        """

    @abstractmethod
    def _event_row(self, event: AlertEvent) -> tuple[object, ...]:
        """``event`` as the values of EVENT_INSERT_COLUMNS."""

    def insert(self, event: AlertEvent) -> bool:
        return self.insert_many([event])[0]

    def _known(self, tx: Tx, keys: Sequence[tuple[object, object]]) -> set[tuple[object, ...]]:
        """(fingerprint, starts_at, status) of the stored events of the occurrences ``keys``
        ((fingerprint, starts_at) as stored), in one query per few hundred keys."""
        found: set[tuple[object, ...]] = set()
        ph = self.placeholder
        for start in range(0, len(keys), ROWS_PER_INSERT):
            chunk = keys[start : start + ROWS_PER_INSERT]
            fingerprints = sorted({str(f) for f, _ in chunk})
            starts = sorted({s for _, s in chunk}, key=str)
            rows = tx.query(
                f"SELECT fingerprint, starts_at, status FROM {TABLE} "
                f"WHERE fingerprint IN ({', '.join([ph] * len(fingerprints))}) "
                f"AND starts_at IN ({', '.join([ph] * len(starts))})",
                (*fingerprints, *starts),
            )
            wanted = set(chunk)
            found |= {(r[0], r[1], r[2]) for r in rows if (r[0], r[1]) in wanted}
        return found

    def _insert_events(
        self, tx: Tx, rows: Sequence[tuple[object, ...]], known: set[tuple[object, ...]]
    ) -> list[bool]:
        """Insert ``rows`` (EVENT_INSERT_COLUMNS values) a few hundred per statement; True for
        each row this call stored, False for one already stored (or repeated in ``rows``).

        ``known`` are the keys this transaction found stored already. Here the database's
        answer decides (INSERT ... ON CONFLICT DO NOTHING RETURNING), which holds when several
        responders write at once; a backend with a single writer may trust ``known`` instead.
        """
        ph = self.placeholder
        flags: list[bool] = []
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start : start + ROWS_PER_INSERT]
            stored = {
                (r[0], r[1], r[2])
                for r in tx.query(
                    f"INSERT INTO {TABLE} ({EVENT_INSERT_COLUMNS}) VALUES {values_list(ph, chunk)} "
                    "ON CONFLICT (fingerprint, starts_at, status) DO NOTHING "
                    "RETURNING fingerprint, starts_at, status",
                    flat(chunk),
                )
            }
            for row in chunk:
                key = (row[0], row[3], row[2])  # fingerprint, starts_at, status
                flags.append(key in stored)
                stored.discard(key)  # a repeat within the chunk is not new
        return flags

    def insert_many(
        self, events: Sequence[AlertEvent], outbox: OutboxPlan | None = None
    ) -> list[bool]:
        ph = self.placeholder
        rows = [self._event_row(e) for e in events]
        # (fingerprint, starts_at) as stored: what a firing and its resolved event share
        keys = [(row[0], row[3]) for row in rows]
        with self._transaction("storing alert events") as tx:
            known = self._known(tx, keys)
            flags = self._insert_events(tx, rows, known)
            if outbox is None:
                return flags
            # Resolved before this transaction; then, in delivery order, within it.
            resolved = {(k[0], k[1]) for k in known if k[2] == "resolved"}
            items_rows: list[tuple[object, ...]] = []
            for event, key, new in zip(events, keys, flags, strict=True):
                if event.status == "resolved":
                    resolved.add(key)
                if not new or (event.status == "firing" and key in resolved):
                    continue  # known already, or it arrived after its own resolved event
                created = self._to_db_time(event.received_at)
                items_rows.extend(
                    (
                        item.channel,
                        item.category,
                        item.notification.fingerprint,
                        item.notification.alertname,
                        item.body(),
                        created,
                        created,
                    )
                    for item in outbox(event)
                )
            for start in range(0, len(items_rows), ROWS_PER_INSERT):
                chunk = items_rows[start : start + ROWS_PER_INSERT]
                tx.execute(
                    f"INSERT INTO {OUTBOX} (channel, category, fingerprint, alertname, body, "
                    f"created_at, next_attempt_at, state, attempts) VALUES "
                    + ", ".join([f"({', '.join([ph] * 7)}, 'pending', 0)"] * len(chunk)),
                    flat(chunk),
                )
        return flags

    @staticmethod
    @abstractmethod
    def _decode(row: Sequence[Any]) -> AlertEvent: ...

    def firing(self, fingerprint: str | None = None) -> list[AlertEvent]:
        if fingerprint is None:
            return [self._decode(r) for r in self._query(FIRING_SQL.format(only=""), ())]
        sql = FIRING_SQL.format(only=f" AND e.fingerprint = {self.placeholder}")
        return [self._decode(r) for r in self._query(sql, (fingerprint,))]

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

    def _of_occurrences(
        self, table: str, columns: str, keys: Sequence[tuple[str, datetime]]
    ) -> list[Any]:
        """The rows of ``table`` (``columns``, then its fingerprint and starts_at) that belong
        to the occurrences ``keys``: one query per few hundred keys, whatever their number."""
        ph = self.placeholder
        wanted = {(f, self._to_db_time(s)) for f, s in keys}
        unique = sorted(wanted, key=str)
        found: list[Any] = []
        for start in range(0, len(unique), ROWS_PER_INSERT):
            chunk = unique[start : start + ROWS_PER_INSERT]
            fingerprints = sorted({f for f, _ in chunk})
            starts = sorted({s for _, s in chunk}, key=str)
            rows = self._query(
                f"SELECT {columns}, fingerprint, starts_at FROM {table} "
                f"WHERE fingerprint IN ({', '.join([ph] * len(fingerprints))}) "
                f"AND starts_at IN ({', '.join([ph] * len(starts))})",
                (*fingerprints, *starts),
            )
            found.extend(r for r in rows if (r[-2], r[-1]) in wanted)
        return found

    def acks_of(self, keys: Sequence[tuple[str, datetime]]) -> dict[tuple[str, datetime], Ack]:
        columns = "acked_at, acked_by, false_positive, note"
        acks = {}
        for acked_at, by, fp, note, fingerprint, starts in self._of_occurrences(
            ACKS, columns, keys
        ):
            starts_at = self._time(starts)
            acks[(fingerprint, starts_at)] = Ack(
                fingerprint, starts_at, self._time(acked_at), by, bool(fp), note
            )
        return acks

    def occurrences(self, since: datetime) -> list[Occurrence]:
        rows = self._query(OCCURRENCES_SQL.format(ph=self.placeholder), (self._to_db_time(since),))
        found = []
        for fingerprint, starts, name, severity, received, ends, acked, by, fp, note, cured in rows:
            starts_at = self._time(starts)
            ack = (
                Ack(fingerprint, starts_at, self._time(acked), by, bool(fp), note)
                if acked is not None
                else None
            )
            found.append(
                Occurrence(
                    fingerprint,
                    name,
                    severity,
                    starts_at,
                    self._time(received),
                    self._time(ends) if ends is not None else None,
                    ack,
                    bool(cured),
                )
            )
        return sorted(found, key=lambda o: o.notified_at)

    def prune(self, before: datetime) -> int:
        ph = self.placeholder
        cutoff = self._to_db_time(before)
        with self._transaction("pruning history") as tx:
            events = tx.execute(PRUNE_EVENTS_SQL.format(ph=ph), (cutoff, cutoff))
            tx.execute(PRUNE_ACKS_SQL, ())
            tx.execute(PRUNE_ATTEMPTS_SQL.format(ph=ph), (cutoff,))
            entries = tx.execute(PRUNE_OUTBOX_SQL.format(ph=ph), (cutoff,))
            actions = tx.execute(PRUNE_ACTIONS_SQL.format(ph=ph), (cutoff,))
        return events + entries + actions

    def check(self) -> None:
        self._query("SELECT 1", ())
