"""The remediation audit: one row per remediation attempt the responder decided, with its outcome.

The row's key, (fingerprint, starts_at, action, attempt), is what makes a remediation idempotent
per alert occurrence: responder replicas sharing one PostgreSQL history, and Alertmanager
retrying a delivery, all try to *claim* attempt N of the same occurrence and action; the
database lets exactly one insert through (:meth:`ActionAudit.claim_action_attempt` returns its
row id, the others get None), and only the replica holding the row issues the command.

What is stored, per decision: the verdicts ``run`` (a command is issued), ``dry_run`` (it would
have been), ``exhausted`` (the attempt limit is reached) and ``skip`` (the action is off, needs
a human, ...). A skip is stored as attempt 0: once per occurrence and action, by the same key,
and never in the way of a real attempt 1 should the action be turned on meanwhile. A ``wait``
(cool-down, rate limit) is not stored: the next pass decides again. The outcome starts
``pending`` for a run and is written once, when the engines answer or the command's deadline
passes (:meth:`ActionAudit.finish_action`: the first outcome stays); a decision that issues
nothing is stored with its final outcome at once (``dry_run``, ``exhausted``,
``skipped`` for a skip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, get_args

from tradeguard.responder.events import iso

# The verdicts the audit stores (see the module docstring: a `wait` is never stored).
ActionVerdict = Literal["run", "dry_run", "skip", "exhausted"]
ACTION_VERDICTS: tuple[ActionVerdict, ...] = get_args(ActionVerdict)
# metrics.vocabulary.REMEDIATION_OUTCOMES, typed (a test keeps the two equal).
ActionOutcome = Literal[
    "pending",
    "done",
    "refused",
    "failed",
    "timed_out",
    "not_applicable",
    "dry_run",
    "skipped",
    "exhausted",
]
ACTION_OUTCOMES: tuple[ActionOutcome, ...] = get_args(ActionOutcome)
FINAL_OUTCOMES: tuple[ActionOutcome, ...] = tuple(o for o in ACTION_OUTCOMES if o != "pending")


@dataclass(frozen=True)
class ActionAttempt:
    """One stored remediation decision and what became of it."""

    id: int
    fingerprint: str
    starts_at: datetime  # the alert occurrence's startsAt
    alertname: str
    action: str
    target: str  # the engine replica the command went to, "*" for any engine, "" for none
    attempt: int  # 1-based, per occurrence and action; 0 for a skip
    decided_by: str  # the responder replica (its sender id) that decided
    decided_at: datetime
    verdict: ActionVerdict
    reason: str
    command_id: str | None
    outcome: ActionOutcome
    detail: str
    finished_at: datetime | None
    duration_seconds: float | None

    @property
    def finished(self) -> bool:
        return self.outcome != "pending"

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "starts_at": iso(self.starts_at),
            "alertname": self.alertname,
            "action": self.action,
            "target": self.target,
            "attempt": self.attempt,
            "decided_by": self.decided_by,
            "decided_at": iso(self.decided_at),
            "verdict": self.verdict,
            "reason": self.reason,
            "command_id": self.command_id,
            "outcome": self.outcome,
            "detail": self.detail,
            "finished_at": iso(self.finished_at) if self.finished_at is not None else None,
            "duration_seconds": self.duration_seconds,
        }


def check_verdict(verdict: str) -> ActionVerdict:
    for known in ACTION_VERDICTS:
        if verdict == known:
            return known
    raise ValueError(f"verdict must be one of {', '.join(ACTION_VERDICTS)}, got {verdict!r}")


def check_outcome(
    outcome: str, allowed: Sequence[ActionOutcome] = ACTION_OUTCOMES
) -> ActionOutcome:
    for known in allowed:
        if outcome == known:
            return known
    raise ValueError(f"outcome must be one of {', '.join(allowed)}, got {outcome!r}")


class ActionAudit(Protocol):
    """The remediation audit every history backend keeps beside the alert events."""

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
        """Record the decision on attempt ``attempt`` (1-based; 0 for a skip) of ``action`` for
        the alert
        occurrence (``fingerprint``, ``starts_at``): the new row's id, or None when that
        attempt is stored already (another replica, or an earlier delivery of the same alert,
        holds it; the caller must not issue anything then). Never raises for a duplicate.

        A decision that issues nothing passes its final ``outcome`` (and ``finished_at``) here;
        a run starts ``pending`` and is finished by :meth:`finish_action`. ValueError for a
        verdict or outcome outside ACTION_VERDICTS / ACTION_OUTCOMES, an attempt below 1 for a
        verdict other than skip, or a skip that is not attempt 0.
        """
        ...

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
        """Record the final ``outcome`` of the pending attempt ``row_id`` (and its
        ``command_id`` when given and not stored yet). True if this call recorded it; False
        when the row is not pending (the first outcome stays) or does not exist. ValueError
        for ``pending`` or an unknown outcome."""
        ...

    def action_attempts(self, fingerprint: str, starts_at: datetime) -> list[ActionAttempt]:
        """Every stored attempt of every action for one alert occurrence, in decision order."""
        ...

    def recent_action_attempts(self, since: datetime) -> list[ActionAttempt]:
        """Every attempt decided at or after ``since``, of any occurrence, oldest first: the
        cool-down and rate-limit windows that span occurrences."""
        ...

    def attempts_of(
        self, keys: Sequence[tuple[str, datetime]]
    ) -> dict[tuple[str, datetime], list[ActionAttempt]]:
        """Every attempt for each of the occurrences ``keys`` that has any, in decision
        order: what the *Now* page shows beside each firing alert."""
        ...

    def list_actions(
        self,
        limit: int = 50,
        action: str | None = None,
        outcome: ActionOutcome | None = None,
        alertname: str | None = None,
    ) -> list[ActionAttempt]:
        """The newest ``limit`` attempts (of one action, outcome and alert when given),
        newest first."""
        ...
