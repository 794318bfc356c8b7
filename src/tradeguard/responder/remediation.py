"""The remediation controller: what the responder does about the alerts that fire.

Level-triggered, like a Kubernetes controller rather than a webhook handler: once per tick it
looks at what is firing *now* (the history's open occurrences), so a restart, a lost webhook
or an Alertmanager retry changes nothing: each occurrence is judged again from the stored
attempts. Per tick:

1. **Follow** the commands this responder issued: a final answer from an engine finishes the
   attempt (done, refused, failed); none by the command's deadline is ``timed_out``.
2. **Decide** for every firing occurrence whose ``action`` annotation names a registered
   action, with the guard rails (:mod:`tradeguard.remediation.guard`). To run, the attempt is
   *claimed* in the history first: the claim's unique key (occurrence, action, attempt) lets
   one responder replica win, so the command goes out once however many replicas and
   Alertmanager peers saw the alert. A spent budget raises ``RemediationExhausted`` once,
   through the responder's own outbox, saying what was tried.
3. **Undo** a reversible action (resume DuckDB writes, resume intake) once its alert has
   resolved, claimed the same way.

The responder never reaches into a process: every effect is a command on the Redis command
stream that the engines carry out and answer (:mod:`tradeguard.bus.commands`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import cast

from redis.exceptions import RedisError

from tradeguard.bus.commands import ALL_ACTIONS, ANY_ENGINE, Command, CommandBus, turned_off
from tradeguard.metrics.catalog import Metrics
from tradeguard.remediation.guard import (
    Attempt,
    Conditions,
    GuardPolicy,
    Request,
    Verdict,
    VerdictKind,
    decide,
)
from tradeguard.remediation.registry import REGISTRY, UNDO_ACTIONS, Scope, action_spec
from tradeguard.responder.events import AlertEvent, iso
from tradeguard.responder.history.actions import ActionOutcome, ActionVerdict
from tradeguard.responder.history.base import ActionAttempt, AlertHistory

log = logging.getLogger(__name__)

EXHAUSTED_ALERT = "RemediationExhausted"
RECEIVER = "remediation"
RUNBOOK = "docs/runbooks/RemediationExhausted.md"
COMMAND_TIMEOUT_SECONDS = 30.0
UNDO_WINDOW = timedelta(days=1)  # a reversible action older than this is not undone any more
UNDO_RETRY_SECONDS = 5.0  # an undo that failed is tried again after 5 s, 10 s, 20 s, ...
UNDO_RETRY_MAX_SECONDS = 300.0
SPLIT_BRAIN_ALERTS = frozenset({"SplitBrainDetected", "MultipleLeaders"})
NO_LEADER_ALERTS = frozenset({"NoLeader"})
NO_ACTION = "none"


# How the controller hands its own alert events (RemediationExhausted) to the outbox.
Store = Callable[[list[AlertEvent]], object]


@dataclass(frozen=True)
class Pending:
    """A command this responder issued and still follows."""

    row_id: int
    command: Command
    action: str


def occurrence_key(fingerprint: str, starts_at: datetime) -> str:
    return f"{fingerprint}@{iso(starts_at)}"


class RemediationController:
    """Decides, issues and follows remediation commands; one :meth:`tick` at a time."""

    def __init__(
        self,
        history: AlertHistory,
        bus: CommandBus,
        policy: GuardPolicy,
        owner: str,
        metrics: Metrics,
        store: Store,
        alert_path_broken: Callable[[], bool],
        clock: Callable[[], datetime],
        command_timeout: float = COMMAND_TIMEOUT_SECONDS,
    ) -> None:
        self.history = history
        self.bus = bus
        self.policy = policy
        self.owner = owner
        self.metrics = metrics
        self.store = store
        self.alert_path_broken = alert_path_broken
        self.clock = clock
        self.command_timeout = command_timeout
        self._pending: dict[int, Pending] = {}
        self._policy = policy  # with the actions turned off at run time taken out
        self._resolved_notices: set[tuple[str, datetime, str]] = set()
        self._orphans_adopted = False

    # ---- one pass --------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock()
        self._follow(now)
        self._policy = self._current_policy()
        firing = self.history.firing()
        conditions = self._conditions(firing)
        window = max(
            self._policy.cooldown_seconds,
            self._policy.rate_window_seconds,
            self._policy.repeat_window_seconds,
        )
        # Undos restore what an action changed: they count for no cool-down or rate limit.
        recent = [
            _attempt(r)
            for r in self.history.recent_action_attempts(now - _seconds(window))
            if r.action not in UNDO_ACTIONS
        ]
        exhausted: list[AlertEvent] = []
        for event in firing:
            action = event.annotations.get("action", NO_ACTION)
            if action == NO_ACTION or event.alertname == EXHAUSTED_ALERT:
                continue
            verdict = self._decide(event, action, recent, conditions, now)
            if verdict is not None and verdict.kind is VerdictKind.EXHAUSTED:
                exhausted.extend(self._exhausted(event, action, verdict, now))
            elif verdict is not None and verdict.kind in (VerdictKind.RUN, VerdictKind.DRY_RUN):
                recent.append(
                    Attempt(
                        event.fingerprint,
                        event.starts_at,
                        action,
                        self._target(event, action),
                        now,
                        "pending" if verdict.kind is VerdictKind.RUN else "dry_run",
                    )
                )
        exhausted.extend(self._undo_resolved(firing, now))
        if exhausted:
            self.store(exhausted)

    def _current_policy(self) -> GuardPolicy:
        """The configured policy less the actions an operator turned off at run time (a
        Redis hash shared by every responder replica); unreadable: the configured one."""
        try:
            off = turned_off(self.bus.redis, self.bus.keys)
        except RedisError:
            return self._policy
        if ALL_ACTIONS in off:
            return replace(self.policy, enabled=frozenset())
        return replace(self.policy, enabled=self.policy.enabled - off)

    # ---- deciding --------------------------------------------------------------------------
    def _decide(
        self,
        event: AlertEvent,
        action: str,
        recent: Sequence[Attempt],
        conditions: Conditions,
        now: datetime,
    ) -> Verdict | None:
        target = self._target(event, action)
        request = Request(action, target, event.fingerprint, event.starts_at)
        stored = self.history.action_attempts(event.fingerprint, event.starts_at)
        mine = [_attempt(r) for r in stored]
        others = [a for a in recent if (a.fingerprint, a.starts_at) != request_key(request)]
        verdict = decide(request, [*mine, *others], conditions, self._policy, now)
        if verdict.kind is VerdictKind.WAIT:
            return verdict
        if verdict.kind is VerdictKind.SKIP:
            # Why nothing is done, recorded once per occurrence (attempt 0); not when the
            # occurrence was handled already (done, or its dry run recorded).
            if not any(a.action == action for a in stored):
                self._claim(event, action, target, 0, verdict, "skipped", now)
            return verdict
        if verdict.kind is VerdictKind.EXHAUSTED:
            return verdict
        if verdict.kind is VerdictKind.DRY_RUN:
            self._claim(event, action, target, verdict.attempt, verdict, "dry_run", now)
            log.info("dry run: would %s on %s for %s", action, target, event.alertname)
            return verdict
        self._run(event, action, target, verdict, now)
        return verdict

    def _run(
        self, event: AlertEvent, action: str, target: str, verdict: Verdict, now: datetime
    ) -> None:
        command = Command(
            action,
            target,
            self._params(event, action),
            occurrence_key(event.fingerprint, event.starts_at),
            now.timestamp(),
            self.command_timeout,
        )
        row = self._claim(
            event, action, target, verdict.attempt, verdict, "pending", now, command.command_id
        )
        if row is None:
            return  # another replica (or an earlier pass) holds this attempt
        try:
            self.bus.issue(command)
        except RedisError as exc:
            self._finish(row, action, "failed", f"the command stream is unreachable: {exc}", now)
            return
        self._pending[row] = Pending(row, command, action)
        log.info(
            "remediation: %s on %s for %s (attempt %d): %s",
            action,
            target,
            event.alertname,
            verdict.attempt,
            verdict.reason,
        )

    def _claim(
        self,
        event: AlertEvent,
        action: str,
        target: str,
        attempt: int,
        verdict: Verdict,
        outcome: ActionOutcome,
        now: datetime,
        command_id: str | None = None,
    ) -> int | None:
        row = self.history.claim_action_attempt(
            fingerprint=event.fingerprint,
            starts_at=event.starts_at,
            alertname=event.alertname,
            action=action,
            target=target,
            attempt=attempt,
            decided_by=self.owner,
            decided_at=now,
            verdict=_stored_verdict(verdict),
            reason=verdict.reason,
            command_id=command_id,
            outcome=outcome,
        )
        if row is not None and outcome in ("dry_run", "skipped", "exhausted"):
            self.metrics.remediation_actions.labels(action, outcome).inc()
        return row

    # ---- following -------------------------------------------------------------------------
    def _follow(self, now: datetime) -> None:
        self._adopt_orphans(now)
        for row, pending in list(self._pending.items()):
            try:
                answers = self.bus.answers(pending.command.command_id)
            except RedisError:
                answers = []
            final = next((a for a in answers if a.final), None)
            if final is not None:
                detail = f"{final.replica}: {final.detail}" if final.detail else final.replica
                outcome = cast(ActionOutcome, final.answer)  # a final answer is an outcome
                self._finish(row, pending.action, outcome, detail, now, final.duration_seconds)
            elif now.timestamp() > pending.command.expires_at:
                heard = sorted({a.replica for a in answers})
                detail = f"no outcome within {pending.command.timeout:g}s" + (
                    f" (answered: {', '.join(heard)})" if heard else " (no engine answered)"
                )
                self._finish(row, pending.action, "timed_out", detail, now)

    def _adopt_orphans(self, now: datetime) -> None:
        """Follow again, after a restart, the commands this responder issued before it: their
        answers are still in Redis, and their deadline still holds (so an attempt never stays
        pending in the audit for ever)."""
        if self._orphans_adopted:
            return
        self._orphans_adopted = True
        for row in self.history.recent_action_attempts(now - UNDO_WINDOW):
            if row.outcome != "pending" or row.decided_by != self.owner or row.id in self._pending:
                continue
            command = Command(
                row.action,
                row.target,
                occurrence=occurrence_key(row.fingerprint, row.starts_at),
                issued_at=row.decided_at.timestamp(),
                timeout=self.command_timeout,
                command_id=row.command_id or "",
            )
            self._pending[row.id] = Pending(row.id, command, row.action)

    def _finish(
        self,
        row: int,
        action: str,
        outcome: ActionOutcome,
        detail: str,
        now: datetime,
        duration: float | None = None,
    ) -> None:
        pending = self._pending.pop(row, None)
        if duration is None and pending is not None:
            duration = max(0.0, now.timestamp() - pending.command.issued_at)
        self.history.finish_action(row, outcome, detail, duration, now)
        self.metrics.remediation_actions.labels(action, outcome).inc()
        if duration is not None:
            self.metrics.remediation_action_duration.labels(action).observe(duration)
        log.log(
            logging.INFO if outcome == "done" else logging.WARNING,
            "remediation %s: %s (%s)",
            action,
            outcome,
            detail,
        )

    # ---- exhausted and undo ----------------------------------------------------------------
    def _exhausted(
        self, event: AlertEvent, action: str, verdict: Verdict, now: datetime
    ) -> list[AlertEvent]:
        target = self._target(event, action)
        row = self._claim(event, action, target, verdict.attempt, verdict, "exhausted", now)
        if row is None:
            return []  # raised already (by us or another replica)
        tried = self.history.action_attempts(event.fingerprint, event.starts_at)
        return [exhausted_event(event, action, tried, now, verdict.reason)]

    def _undo_resolved(self, firing: Sequence[AlertEvent], now: datetime) -> list[AlertEvent]:
        """Undo what a resolved alert made us do, and resolve our RemediationExhausted notices.
        An action whose outcome is unknown (timed out) may have acted: it is undone too (every
        undo is safe to repeat). An undo that failed or timed out (the command stream was down,
        the engine restarting) is tried again with a growing pause until it is done: writes or
        intake left stopped after their alert resolved would be a fault of our own making."""
        open_now = {(e.fingerprint, e.starts_at) for e in firing}
        notices: list[AlertEvent] = []
        rows = self.history.recent_action_attempts(now - UNDO_WINDOW)
        undos: dict[tuple[str, datetime, str], list[ActionAttempt]] = {}
        for row in rows:
            if row.action in UNDO_ACTIONS:
                undos.setdefault((row.fingerprint, row.starts_at, row.action), []).append(row)
        for row in rows:
            if (row.fingerprint, row.starts_at) in open_now:
                continue
            if row.outcome == "exhausted":
                key = (row.fingerprint, row.starts_at, row.action)
                if key not in self._resolved_notices:
                    self._resolved_notices.add(key)  # the history dedupes across restarts
                    notices.append(exhausted_resolved(row, now))
                continue
            spec = REGISTRY.get(row.action)
            if spec is None or spec.undo is None or row.outcome not in ("done", "timed_out"):
                continue
            tried = undos.get((row.fingerprint, row.starts_at, spec.undo), [])
            if any(t.outcome not in ("failed", "timed_out") for t in tried):
                continue  # done, in flight, or refused on purpose by the engine
            if tried:
                pause = min(UNDO_RETRY_MAX_SECONDS, UNDO_RETRY_SECONDS * 2 ** (len(tried) - 1))
                if now < max(t.decided_at for t in tried) + timedelta(seconds=pause):
                    continue
            self._run_undo(row, spec.undo, now, attempt=len(tried) + 1)
        return notices

    def _run_undo(self, done: ActionAttempt, undo: str, now: datetime, attempt: int = 1) -> None:
        command = Command(
            undo,
            done.target,
            {},
            occurrence_key(done.fingerprint, done.starts_at),
            now.timestamp(),
            self.command_timeout,
        )
        row = self.history.claim_action_attempt(
            fingerprint=done.fingerprint,
            starts_at=done.starts_at,
            alertname=done.alertname,
            action=undo,
            target=done.target,
            attempt=attempt,
            decided_by=self.owner,
            decided_at=now,
            verdict="run",
            reason=f"{done.alertname} resolved: undo {done.action}",
            command_id=command.command_id,
            outcome="pending",
        )
        if row is None:
            return
        try:
            self.bus.issue(command)
        except RedisError as exc:
            self._finish(row, undo, "failed", f"the command stream is unreachable: {exc}", now)
            return
        self._pending[row] = Pending(row, command, undo)
        log.info("remediation: %s on %s (%s resolved)", undo, done.target, done.alertname)

    # ---- inputs ----------------------------------------------------------------------------
    def _conditions(self, firing: Sequence[AlertEvent]) -> Conditions:
        names = {e.alertname for e in firing}
        return Conditions(
            alert_path_broken=self.alert_path_broken(),
            split_brain=bool(names & SPLIT_BRAIN_ALERTS),
            leader_known=not names & NO_LEADER_ALERTS,
        )

    @staticmethod
    def _target(event: AlertEvent, action: str) -> str:
        """The engine a command goes to: the alert's ``replica`` for a fault of one engine
        process, else any engine (the one that can answers; a leader-only action is run by
        the leader)."""
        spec = REGISTRY.get(action)
        if spec is not None and spec.scope is Scope.EACH:
            return event.labels.get("replica") or ANY_ENGINE
        return ANY_ENGINE

    @staticmethod
    def _params(event: AlertEvent, action: str) -> dict[str, str]:
        if action in ("restart_instance", "stop_instance") and event.labels.get("instance"):
            return {"instance": event.labels["instance"]}
        return {}


def _stored_verdict(verdict: Verdict) -> ActionVerdict:
    """The audit's name of a verdict that is stored (a wait never is)."""
    stored: dict[VerdictKind, ActionVerdict] = {
        VerdictKind.RUN: "run",
        VerdictKind.DRY_RUN: "dry_run",
        VerdictKind.SKIP: "skip",
        VerdictKind.EXHAUSTED: "exhausted",
    }
    return stored[verdict.kind]


def request_key(request: Request) -> tuple[str, datetime]:
    return (request.fingerprint, request.starts_at)


def _attempt(row: ActionAttempt) -> Attempt:
    return Attempt(
        row.fingerprint, row.starts_at, row.action, row.target, row.decided_at, row.outcome
    )


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _exhausted_fingerprint(fingerprint: str, starts_at: datetime) -> str:
    key = f"{EXHAUSTED_ALERT}:{occurrence_key(fingerprint, starts_at)}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def exhausted_event(
    event: AlertEvent,
    action: str,
    tried: Sequence[ActionAttempt],
    now: datetime,
    why: str = "",
) -> AlertEvent:
    """The critical notice that remediation gave up on one alert occurrence, with what was
    tried and why it stopped (``why``: the guard's reason: this occurrence's budget, or the
    same fault coming back occurrence after occurrence); raised by the responder itself (not
    through Alertmanager)."""
    attempts = [r for r in tried if r.attempt > 0 and r.outcome not in ("exhausted", "dry_run")]
    lines = "; ".join(
        f"#{r.attempt} {r.action} on {r.target} at {iso(r.decided_at)}: {r.outcome}"
        + (f" ({r.detail})" if r.detail else "")
        for r in attempts
    )
    spec = action_spec(action)
    cause = why or f"{len(attempts)} attempt(s) of {action} did not clear it"
    summary = f"Remediation gave up on {event.alertname}: {cause}; a person must act."
    return AlertEvent(
        fingerprint=_exhausted_fingerprint(event.fingerprint, event.starts_at),
        alertname=EXHAUSTED_ALERT,
        status="firing",
        starts_at=now,
        ends_at=None,
        severity="critical",
        component="meta",
        instance=event.instance,
        labels={
            "alertname": EXHAUSTED_ALERT,
            "severity": "critical",
            "component": "meta",
            "service": "responder",
            "for_alert": event.alertname,
            "action": action,
        },
        annotations={
            "summary": summary,
            "description": f"The action {spec.does}. Tried: {lines or 'nothing'}. "
            f"{event.alertname} still fires ({event.annotations.get('summary', '')}).",
            "runbook_url": RUNBOOK,
            "action": NO_ACTION,
            "resolved_summary": f"{event.alertname} resolved.",
        },
        received_at=now,
        receiver=RECEIVER,
    )


def exhausted_resolved(row: ActionAttempt, now: datetime) -> AlertEvent:
    """The resolved twin of :func:`exhausted_event`, once its alert no longer fires (the
    history stores it once: the transition is idempotent by fingerprint and start)."""
    return AlertEvent(
        fingerprint=_exhausted_fingerprint(row.fingerprint, row.starts_at),
        alertname=EXHAUSTED_ALERT,
        status="resolved",
        starts_at=row.decided_at.astimezone(UTC),
        ends_at=now,
        severity="critical",
        component="meta",
        instance=None,
        labels={
            "alertname": EXHAUSTED_ALERT,
            "severity": "critical",
            "component": "meta",
            "service": "responder",
            "for_alert": row.alertname,
            "action": row.action,
        },
        annotations={"summary": f"{row.alertname} resolved.", "action": NO_ACTION},
        received_at=now,
        receiver=RECEIVER,
    )
