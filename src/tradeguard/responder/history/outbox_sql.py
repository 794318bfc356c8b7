"""The delivery outbox's SQL, shared by both history backends (it lives in the history database
so an entry is written in the same transaction as the event it is about).

Several responders may share one PostgreSQL history: a sender *claims* the entries it is about
to deliver (``claimed_by``/``claimed_until``, and ``FOR UPDATE SKIP LOCKED`` where the database
has it), so two senders never deliver the same entry at once. A claim is a lease: the entries of
a sender that died mid-delivery become due again when it expires, and a restarted sender with the
same id takes its own claims back at once.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from tradeguard.responder.history.base import (
    ATTEMPTS,
    OUTBOX,
    ROWS_PER_INSERT,
    SQLHistoryReads,
    flat,
    values_list,
)
from tradeguard.responder.history.schema import OPEN_ONLY
from tradeguard.responder.notification import Notification
from tradeguard.responder.outbox import (
    OutboxCounts,
    OutboxEntry,
    OutboxState,
    Outcome,
)

ENTRY_COLUMNS = (
    "o.id, o.channel, o.category, o.state, o.body, o.created_at, o.next_attempt_at, "
    "o.attempts, o.last_error, o.done_at, o.carried_by"
)
WAITING_STATES = ("pending", "held")
_T = TypeVar("_T")


def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), ROWS_PER_INSERT):
        yield items[start : start + ROWS_PER_INSERT]


class SQLOutbox(SQLHistoryReads):
    """Outbox operations over the backend's transactions and placeholders."""

    # Appended to the claiming sub-select: PostgreSQL's row locks keep two senders off the same
    # entries; SQLite has one writer at a time anyway.
    skip_locked = ""

    @staticmethod
    @abstractmethod
    def _time(value: Any) -> datetime: ...

    def _entry(self, row: Sequence[Any]) -> OutboxEntry:
        return OutboxEntry(
            id=int(row[0]),
            channel=row[1],
            category=row[2],
            state=cast(OutboxState, row[3]),
            notification=Notification.from_json(json.loads(row[4])),
            created_at=self._time(row[5]),
            next_attempt_at=self._time(row[6]),
            attempts=int(row[7]),
            last_error=row[8],
            done_at=self._time(row[9]) if row[9] is not None else None,
            carried_by=int(row[10]) if row[10] is not None else None,
        )

    def outbox_claim(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        state: OutboxState = "pending",
        channel: str | None = None,
        category: str | None = None,
    ) -> list[OutboxEntry]:
        """Claim up to ``limit`` entries in ``state`` that are due and unclaimed, oldest first.

        A pending entry waits while an older pending entry of the same channel and alert exists,
        so a resolved notice never overtakes the firing notice it follows.
        """
        if state not in ("pending", "held"):
            raise ValueError(f"only pending or held entries are claimed, not {state!r}")
        ph = self.placeholder
        t_now = self._to_db_time(now)
        where = [
            f"o.state = '{state}' AND o.{OPEN_ONLY}",
            f"(o.claimed_until IS NULL OR o.claimed_until < {ph})",
        ]
        params: list[object] = [t_now]
        if state == "pending":
            where.append(f"o.next_attempt_at <= {ph}")
            params.append(t_now)
            where.append(
                f"NOT EXISTS (SELECT 1 FROM {OUTBOX} p WHERE p.channel = o.channel "
                "AND p.fingerprint = o.fingerprint AND p.id < o.id AND p.state = 'pending')"
            )
        if channel is not None:
            where.append(f"o.channel = {ph}")
            params.append(channel)
        if category is not None:
            where.append(f"o.category = {ph}")
            params.append(category)
        # Most passes find nothing: look before taking the write lock the intake needs.
        probe = f"SELECT 1 FROM {OUTBOX} o WHERE {' AND '.join(where)} LIMIT 1"
        if not self._query(probe, tuple(params)):
            return []
        sql = (
            f"UPDATE {OUTBOX} SET claimed_by = {ph}, claimed_until = {ph} WHERE id IN ("
            f"SELECT o.id FROM {OUTBOX} o WHERE {' AND '.join(where)} "
            f"ORDER BY o.id LIMIT {ph}{self.skip_locked}) "
            f"RETURNING {ENTRY_COLUMNS.replace('o.', '')}"
        )
        args = (owner, self._to_db_time(lease_until), *params, limit)
        with self._transaction("claiming notifications", durable=False) as tx:
            rows = tx.query(sql, args)
        return sorted((self._entry(r) for r in rows), key=lambda e: e.id)

    def outbox_held_keys(self) -> list[tuple[str, str]]:
        """Every (channel, category) with held entries."""
        rows = self._query(
            f"SELECT DISTINCT channel, category FROM {OUTBOX} WHERE state = 'held' AND {OPEN_ONLY}",
            (),
        )
        return [(r[0], r[1]) for r in rows]

    def outbox_hold(self, entry_ids: Sequence[int]) -> None:
        """Park entries that their channel's throttle has no room for."""
        if not entry_ids:
            return
        ph = self.placeholder
        with self._transaction("holding notifications", durable=False) as tx:
            tx.execute_many(
                f"UPDATE {OUTBOX} SET state = 'held', claimed_by = NULL, "
                f"claimed_until = NULL WHERE id = {ph}",
                [(entry_id,) for entry_id in entry_ids],
            )

    def outbox_apply(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Write back what became of claimed entries, with their attempts, in one transaction.

        A few statements whatever the number of outcomes: entries that end alike (most often
        every one of a pass: sent, no error) are updated by one ``WHERE id IN (...)``, and the
        attempts go in by multi-row INSERTs. A statement per entry would hold the history's
        lock, which every webhook's group commit waits for, once per entry.
        """
        if not outcomes:
            return
        ph = self.placeholder
        t_now = self._to_db_time(now)
        alike: dict[tuple[object, ...], list[int]] = {}
        for o in outcomes:
            key: tuple[object, ...] = (
                o.state,
                1 if o.attempt is not None else 0,
                o.attempt.error if o.attempt is not None else None,
                self._to_db_time(o.retry_at) if o.retry_at is not None else None,
                t_now if o.state in ("sent", "dead") else None,
            )
            alike.setdefault(key, []).append(o.entry_id)
        carried: dict[int, list[int]] = {}
        for o in outcomes:
            if o.merged:
                carried.setdefault(o.entry_id, []).extend(o.merged)
        attempts: list[tuple[object, ...]] = [
            (o.entry_id, self._to_db_time(o.attempt.at), o.attempt.outcome, o.attempt.error)
            for o in outcomes
            if o.attempt is not None
        ]
        with self._transaction("recording deliveries", durable=False) as tx:
            for key, ids in alike.items():
                for chunk in _chunks(ids):
                    tx.execute(
                        f"UPDATE {OUTBOX} SET state = {ph}, attempts = attempts + {ph}, "
                        f"last_error = {ph}, next_attempt_at = COALESCE({ph}, next_attempt_at), "
                        f"done_at = {ph}, claimed_by = NULL, claimed_until = NULL "
                        f"WHERE id IN ({', '.join([ph] * len(chunk))})",
                        (*key, *chunk),
                    )
            for carrier, ids in carried.items():
                for chunk in _chunks(ids):
                    tx.execute(
                        f"UPDATE {OUTBOX} SET state = 'merged', carried_by = {ph}, "
                        f"done_at = {ph}, claimed_by = NULL, claimed_until = NULL "
                        f"WHERE id IN ({', '.join([ph] * len(chunk))})",
                        (carrier, t_now, *chunk),
                    )
            for rows in _chunks(attempts):
                tx.execute(
                    f"INSERT INTO {ATTEMPTS} (outbox_id, attempted_at, outcome, error) "
                    f"VALUES {values_list(ph, rows)}",
                    flat(rows),
                )

    def outbox_release_claims(self, owner: str) -> int:
        """Give back every claim ``owner`` holds (a restarted sender, or one stopping)."""
        with self._transaction("releasing notification claims", durable=False) as tx:
            return tx.execute(
                f"UPDATE {OUTBOX} SET claimed_by = NULL, claimed_until = NULL "
                f"WHERE claimed_by = {self.placeholder}",
                (owner,),
            )

    def outbox_counts(self) -> OutboxCounts:
        rows = self._query(
            f"SELECT state, count(*), min(created_at) FROM {OUTBOX} "
            f"WHERE {OPEN_ONLY} GROUP BY state",
            (),
        )
        by_state = {r[0]: int(r[1]) for r in rows}
        waiting = [self._time(r[2]) for r in rows if r[0] in WAITING_STATES and r[2] is not None]
        return OutboxCounts(by_state, min(waiting) if waiting else None)

    def outbox_sent_since(self, since: datetime) -> list[tuple[str, str, datetime]]:
        """(channel, category, when) of every delivery since ``since``: a restarted sender's
        throttle windows start where the last one's ended."""
        rows = self._query(
            f"SELECT channel, category, done_at FROM {OUTBOX} "
            f"WHERE state = 'sent' AND done_at >= {self.placeholder}",
            (self._to_db_time(since),),
        )
        return [(r[0], r[1], self._time(r[2])) for r in rows]

    def outbox_list(
        self, limit: int, states: Sequence[OutboxState] | None = None
    ) -> list[OutboxEntry]:
        """The newest ``limit`` entries (of ``states``), newest first."""
        ph = self.placeholder
        where = ""
        params: tuple[object, ...] = ()
        if states:
            where = f"WHERE o.state IN ({', '.join([ph] * len(states))}) "
            params = tuple(states)
        rows = self._query(
            f"SELECT {ENTRY_COLUMNS} FROM {OUTBOX} o {where}ORDER BY o.id DESC LIMIT {ph}",
            (*params, limit),
        )
        return [self._entry(r) for r in rows]
