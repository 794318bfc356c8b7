"""The remediation audit's SQL, shared by both history backends (see history/actions.py).

A claim is one ``INSERT ... ON CONFLICT (fingerprint, starts_at, action, attempt) DO NOTHING
RETURNING id`` in its own durable transaction: under concurrent claims of the same attempt the
database's unique index lets one insert through (PostgreSQL makes the others wait for its commit
and then skip; SQLite has one writer at a time), so the others see no row and issue nothing,
without an exception to tell apart from a real failure. The claim commits durably: a claim
undone by a crash while its command went out could let a second replica issue it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from tradeguard.responder.history.actions import (
    FINAL_OUTCOMES,
    ActionAttempt,
    ActionOutcome,
    ActionVerdict,
    check_outcome,
    check_verdict,
)
from tradeguard.responder.history.base import REMEDIATION, SQLHistoryReads, check_limit

INSERT_COLUMNS = (
    "fingerprint, starts_at, alertname, action, target, attempt, decided_by, decided_at, "
    "verdict, reason, command_id, outcome, detail, finished_at, duration_seconds"
)
SELECT_COLUMNS = f"id, {INSERT_COLUMNS}"


def _text(value: str) -> str:
    """Free text (a reason, an engine's detail) as both databases take it: PostgreSQL's text
    cannot hold NUL, and an engine's answer is not ours to trust."""
    return value.replace("\x00", "")


class SQLActions(SQLHistoryReads):
    """The remediation audit over the backend's transactions and placeholders."""

    def _attempt(self, row: Sequence[Any]) -> ActionAttempt:
        return ActionAttempt(
            id=int(row[0]),
            fingerprint=row[1],
            starts_at=self._time(row[2]),
            alertname=row[3],
            action=row[4],
            target=row[5],
            attempt=int(row[6]),
            decided_by=row[7],
            decided_at=self._time(row[8]),
            verdict=cast(ActionVerdict, row[9]),
            reason=row[10],
            command_id=row[11],
            outcome=cast(ActionOutcome, row[12]),
            detail=row[13],
            finished_at=self._time(row[14]) if row[14] is not None else None,
            duration_seconds=float(row[15]) if row[15] is not None else None,
        )

    def claim_action_attempt(
        self,
        *,
        fingerprint: str,
        starts_at: datetime,
        alertname: str,
        action: str,
        target: str,
        attempt: int,
        decided_by: str,
        decided_at: datetime,
        verdict: ActionVerdict,
        reason: str,
        command_id: str | None = None,
        outcome: ActionOutcome = "pending",
        detail: str = "",
        finished_at: datetime | None = None,
        duration_seconds: float | None = None,
    ) -> int | None:
        """See :meth:`~tradeguard.responder.history.actions.ActionAudit.claim_action_attempt`.

        A decision stored with a final outcome and no ``finished_at`` finished when it was
        decided.
        """
        check_verdict(verdict)
        check_outcome(outcome)
        if verdict == "skip" and attempt != 0:
            raise ValueError(f"a skip is stored as attempt 0 (once per occurrence), not {attempt}")
        if verdict != "skip" and attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt} for a {verdict}")
        if outcome == "pending":
            if finished_at is not None or duration_seconds is not None:
                raise ValueError("a pending attempt has no finished_at or duration yet")
        elif finished_at is None:
            finished_at = decided_at
        ph = self.placeholder
        values: tuple[object, ...] = (
            fingerprint,
            self._to_db_time(starts_at),
            alertname,
            action,
            target,
            attempt,
            decided_by,
            self._to_db_time(decided_at),
            verdict,
            _text(reason),
            command_id,
            outcome,
            _text(detail),
            self._to_db_time(finished_at) if finished_at is not None else None,
            duration_seconds,
        )
        sql = (
            f"INSERT INTO {REMEDIATION} ({INSERT_COLUMNS}) VALUES ({', '.join([ph] * 15)}) "
            "ON CONFLICT (fingerprint, starts_at, action, attempt) DO NOTHING RETURNING id"
        )
        with self._transaction("recording a remediation decision") as tx:
            rows = tx.query(sql, values)
        return int(rows[0][0]) if rows else None

    def finish_action(
        self,
        row_id: int,
        outcome: ActionOutcome,
        detail: str,
        duration_seconds: float | None,
        finished_at: datetime,
        *,
        command_id: str | None = None,
    ) -> bool:
        """See :meth:`~tradeguard.responder.history.actions.ActionAudit.finish_action`."""
        check_outcome(outcome, FINAL_OUTCOMES)
        ph = self.placeholder
        with self._transaction("recording a remediation outcome") as tx:
            changed = tx.execute(
                f"UPDATE {REMEDIATION} SET outcome = {ph}, detail = {ph}, "
                f"duration_seconds = {ph}, finished_at = {ph}, "
                f"command_id = COALESCE(command_id, {ph}) "
                f"WHERE id = {ph} AND outcome = 'pending'",
                (
                    outcome,
                    _text(detail),
                    duration_seconds,
                    self._to_db_time(finished_at),
                    command_id,
                    row_id,
                ),
            )
        return changed == 1

    def action_attempts(self, fingerprint: str, starts_at: datetime) -> list[ActionAttempt]:
        ph = self.placeholder
        rows = self._query(
            f"SELECT {SELECT_COLUMNS} FROM {REMEDIATION} "
            f"WHERE fingerprint = {ph} AND starts_at = {ph} ORDER BY id",
            (fingerprint, self._to_db_time(starts_at)),
        )
        return [self._attempt(r) for r in rows]

    def attempts_of(
        self, keys: Sequence[tuple[str, datetime]]
    ) -> dict[tuple[str, datetime], list[ActionAttempt]]:
        found: dict[tuple[str, datetime], list[ActionAttempt]] = {}
        for row in self._of_occurrences(REMEDIATION, SELECT_COLUMNS, keys):
            attempt = self._attempt(row)
            found.setdefault((attempt.fingerprint, attempt.starts_at), []).append(attempt)
        for attempts in found.values():
            attempts.sort(key=lambda a: a.id)
        return found

    def recent_action_attempts(self, since: datetime) -> list[ActionAttempt]:
        ph = self.placeholder
        rows = self._query(
            f"SELECT {SELECT_COLUMNS} FROM {REMEDIATION} "
            f"WHERE decided_at >= {ph} ORDER BY decided_at, id",
            (self._to_db_time(since),),
        )
        return [self._attempt(r) for r in rows]

    def list_actions(
        self,
        limit: int = 50,
        action: str | None = None,
        outcome: ActionOutcome | None = None,
        alertname: str | None = None,
    ) -> list[ActionAttempt]:
        check_limit(limit)
        ph = self.placeholder
        where: list[str] = []
        params: list[object] = []
        if action is not None:
            where.append(f"action = {ph}")
            params.append(action)
        if outcome is not None:
            where.append(f"outcome = {ph}")
            params.append(check_outcome(outcome))
        if alertname is not None:
            where.append(f"alertname = {ph}")
            params.append(alertname)
        condition = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._query(
            f"SELECT {SELECT_COLUMNS} FROM {REMEDIATION} {condition}ORDER BY id DESC LIMIT {ph}",
            (*params, limit),
        )
        return [self._attempt(r) for r in rows]
