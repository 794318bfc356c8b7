"""The guard rails of automatic remediation: one pure function says whether an action runs now.

The controller asks :func:`decide` before it issues any command, with everything the answer
depends on spelled out: the :class:`Request` (which action, on which target, for which alert
occurrence), the audit's :class:`Attempt` history, the :class:`Conditions` of the cluster, the
:class:`GuardPolicy` and the clock. Nothing here reads a clock, a database or Redis, so every
rail is a unit test away and the controller owns all I/O (the issuing, the waiting, the audit).

An alert *occurrence* is one firing of one alert: its fingerprint and its ``startsAt``. A
flapping alert that resolves and fires again is a new occurrence with a fresh budget; the
cool-down and the rate limit still see the attempts of the old one.

The checks run in this order; the first that applies decides. The order is part of the
contract, each position for a reason:

1. **Unknown action** → SKIP, **not automatic** (``Scope.NOBODY``) → SKIP, **action off** →
   SKIP. The configuration answers before anything else: nothing below matters for an action
   that never runs automatically, and the reason then names the setting to change.
2. **Already handled** → SKIP: an attempt of a *containing* action (one with an undo: stop
   writes, throttle intake) is ``done`` for this occurrence: it holds the fault until the alert
   resolves, and nothing more can be done automatically; or, in dry-run mode, its dry run is
   recorded already (one record of what it would do per occurrence, not one per evaluation).
   2b. **Being verified** → WAIT: a *healing* action (no undo: reconnect, restart, resync,
   demote) is ``done`` for this occurrence less than ``verify_seconds`` ago. "Done" says the
   command was carried out, not that the fault is gone: the alert gets that long (longer than
   its own rule needs to clear) to resolve. Still firing after it, the action runs again, and
   the budget below ends it: a fault the action cannot help ends in EXHAUSTED, never in a loop.
3. **In flight** → WAIT: an attempt of this occurrence is ``pending`` and younger than
   ``pending_timeout_seconds``. It comes before the budget so that a third attempt still
   waiting for its answer is not declared exhausted before it can succeed. A pending attempt
   older than that counts as ``timed_out`` (the controller died, or its answer never came),
   so it cannot block the occurrence for ever.
4. **Budget spent** → EXHAUSTED: ``budget`` attempts of this occurrence, and the alert still
   fires (none was ``done``, or those done were verified and did not heal it). It
   comes before the stale and safety checks so that the controller learns of the exhaustion
   (and notifies ``RemediationExhausted`` once, with what was tried) whatever else holds.
   :func:`decide` answers EXHAUSTED on every later call too; notifying once is the
   controller's, which knows what it notified.
   4b. **Repeats spent** → EXHAUSTED: this action ran ``repeat_limit`` times on this target
   within ``repeat_window_seconds`` over other occurrences: each time "done", the fault came
   back (a restart spawns a process that crashes again), and every occurrence would bring a
   fresh budget, so without this the loop would never end. Once it is recorded exhausted in
   the window, later occurrences are skipped (one notice, not one per occurrence).
5. **Stale alert** → SKIP: the occurrence started more than ``max_alert_age_seconds`` ago;
   a remediation chosen for an old state may be wrong for the present one.
6. **Unsafe now** → WAIT: the dead man's switch says the alert path is broken (the alerts we
   see may be old or partial), or split-brain, or no known leader. Nobody can say who acts
   on what, so nobody acts; once the condition clears the occurrence is looked at again.
7. **Cool-down** → WAIT: this action ran on this target (any occurrence) less than
   ``cooldown_seconds`` ago, or a command of it on this target is still in flight.
8. **Rate limit** → WAIT: ``rate_limit`` actions (any action, any target) were issued in the
   last ``rate_window_seconds``: many faults at once is a sign of something no single
   action heals, and a storm of remediations makes it worse.
9. **Dry-run mode** → DRY_RUN (the controller records it, issues nothing), else → RUN.

Which attempts count: the history is the audit's rows as they are, so it also holds rows that
record a decision rather than a command (``dry_run``, ``skipped``, ``exhausted``); those
changed nothing and count for nothing (a dry run only for rule 2, in dry-run mode). Every
command issued (``pending``, ``done``, ``refused``, ``failed``, ``timed_out``,
``not_applicable``), and any outcome this module does not know, counts towards the budget of
its occurrence, the cool-down of its action and target, and the global rate limit. Counting a
``refused`` or ``failed`` attempt errs on the side of doing less, the safe side for real money.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tradeguard.errors import ConfigError
from tradeguard.remediation.registry import REGISTRY, on_by_default

# The outcomes of an issued command, as the audit records them (``pending`` until it ends).
ISSUED_OUTCOMES = frozenset({"pending", "done", "refused", "failed", "timed_out", "not_applicable"})
# Audit rows that record a decision, not a command: nothing reached an engine.
DECISION_OUTCOMES = frozenset({"dry_run", "skipped", "exhausted"})


def _aware(name: str, value: datetime) -> None:
    """Refuse a naive datetime: compared with an aware one it raises deep inside a comparison,
    and read as local time it would shift every window by the host's UTC offset."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got {value!r}")


@dataclass(frozen=True)
class GuardPolicy:
    """The limits :func:`decide` enforces. The defaults are safe for real money: few attempts,
    a long cool-down, a low global rate, and only the actions the registry turns on by default.
    """

    budget: int = 3  # attempts per alert occurrence
    cooldown_seconds: float = 300.0  # per (action, target), across occurrences
    rate_limit: int = 6  # actions per rate window, across all actions and targets
    rate_window_seconds: float = 600.0
    max_alert_age_seconds: float = 1800.0  # an occurrence older than this is not acted on
    # The same action on the same target, across occurrences: a fault that comes back after
    # each "done" (a restart that spawns a process which crashes again) opens a new occurrence,
    # and a new budget, every time; this many within the window and the responder gives up.
    repeat_limit: int = 6
    repeat_window_seconds: float = 3600.0
    # A pending attempt older than this counts as timed out (about twice a command's timeout).
    pending_timeout_seconds: float = 120.0
    # How long a done healing action has for its alert to resolve before it runs again: longer
    # than the slowest rule takes to clear (a 1 m failure window, then Alertmanager's delivery).
    verify_seconds: float = 300.0
    dry_run: bool = False
    enabled: frozenset[str] = field(default_factory=lambda: frozenset(on_by_default()))

    def __post_init__(self) -> None:
        for name in ("budget", "rate_limit", "repeat_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"remediation {name} must be a positive integer, got {value!r}")
        for name in (
            "cooldown_seconds",
            "rate_window_seconds",
            "max_alert_age_seconds",
            "pending_timeout_seconds",
            "repeat_window_seconds",
            "verify_seconds",
        ):
            value = getattr(self, name)
            if not value > 0:  # also refuses NaN
                raise ConfigError(f"remediation {name} must be positive, got {value!r}")
        unknown = sorted(self.enabled - REGISTRY.keys())
        if unknown:
            raise ConfigError(f"remediation: unknown action(s) enabled: {', '.join(unknown)}")
        manual = sorted(a for a in self.enabled if not REGISTRY[a].automatic)
        if manual:
            raise ConfigError(
                f"remediation: {', '.join(manual)} need(s) a human and cannot be enabled"
            )

    @classmethod
    def from_settings(
        cls, enable: Iterable[str] = (), disable: Iterable[str] = (), **limits: Any
    ) -> GuardPolicy:
        """The policy from settings-like values: the registry's on-by-default actions, plus
        ``enable``, minus ``disable``; ``limits`` are the other fields (``budget=``, ...).

        A name in neither list keeps its default, so a new action added to the registry gets
        its reviewed default rather than whatever an old settings file implied. A name in both
        lists is a contradiction the operator must resolve, not one we guess at.
        """
        wanted, unwanted = set(enable), set(disable)
        for setting, names in (("enable", wanted), ("disable", unwanted)):
            unknown = sorted(names - REGISTRY.keys())
            if unknown:
                raise ConfigError(
                    f"responder_remediation_{setting}: unknown action(s) {', '.join(unknown)} "
                    f"(known: {', '.join(sorted(REGISTRY))})"
                )
        both = sorted(wanted & unwanted)
        if both:
            raise ConfigError(
                f"responder_remediation_enable and _disable both name {', '.join(both)}"
            )
        enabled = (set(on_by_default()) | wanted) - unwanted
        return cls(enabled=frozenset(enabled), **limits)


@dataclass(frozen=True)
class Attempt:
    """What the audit knows of one past attempt (or dry run) of an action."""

    fingerprint: str
    starts_at: datetime  # the occurrence's startsAt
    action: str
    target: str
    at: datetime  # when it was issued (or dry-run)
    outcome: str  # one of ISSUED_OUTCOMES or DECISION_OUTCOMES

    def __post_init__(self) -> None:
        _aware("Attempt.starts_at", self.starts_at)
        _aware("Attempt.at", self.at)

    def in_flight(self, now: datetime, policy: GuardPolicy) -> bool:
        """Pending and young enough to still get an answer; an older one counts as timed out."""
        return self.outcome == "pending" and _seconds(now - self.at) <= (
            policy.pending_timeout_seconds
        )

    @property
    def counts(self) -> bool:
        """Whether it counts for the budget, the cool-down and the rate limit: every command
        issued, and an outcome this module does not know too (counting it errs on the side of
        doing less); not a recorded decision (a dry run, a skip, an exhaustion), which changed
        nothing."""
        return self.outcome not in DECISION_OUTCOMES


@dataclass(frozen=True)
class Conditions:
    """What the controller knows of the cluster when it asks."""

    alert_path_broken: bool  # the dead man's switch is not arriving
    split_brain: bool
    leader_known: bool


@dataclass(frozen=True)
class Request:
    """One action an alert occurrence asks for, on one target."""

    action: str
    target: str
    fingerprint: str
    starts_at: datetime

    def __post_init__(self) -> None:
        _aware("Request.starts_at", self.starts_at)

    def same_occurrence(self, attempt: Attempt) -> bool:
        return attempt.fingerprint == self.fingerprint and attempt.starts_at == self.starts_at


class VerdictKind(StrEnum):
    """What the controller does with a request (the values are what the audit records)."""

    RUN = "run"  # issue the command
    DRY_RUN = "dry_run"  # record what would run, issue nothing
    WAIT = "wait"  # not now; ask again later
    SKIP = "skip"  # never for this occurrence
    EXHAUSTED = "exhausted"  # the budget is spent, the alert still fires: RemediationExhausted


@dataclass(frozen=True)
class Verdict:
    """The answer of :func:`decide`, with the sentence that explains it to a human."""

    kind: VerdictKind
    reason: str  # one sentence, shown by the audit and the notifications
    attempt: int  # the number this attempt would be for its occurrence, 1-based


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


def _s(seconds: float) -> str:
    return f"{seconds:.0f} s"


def decide(
    request: Request,
    history: Sequence[Attempt],
    conditions: Conditions,
    policy: GuardPolicy,
    now: datetime,
) -> Verdict:
    """Whether ``request`` runs now, in the order the module docstring gives and explains."""
    _aware("now", now)
    what = f"{request.action} on {request.target}"
    mine = [a for a in history if request.same_occurrence(a)]
    counted = [a for a in mine if a.counts]
    number = len(counted) + 1

    def verdict(kind: VerdictKind, reason: str) -> Verdict:
        return Verdict(kind, reason, number)

    # 1. Configuration.
    spec = REGISTRY.get(request.action)
    if spec is None:
        return verdict(VerdictKind.SKIP, f"unknown action {request.action!r}: not in the registry")
    if not spec.automatic:
        return verdict(
            VerdictKind.SKIP, f"{request.action} needs a human: it never runs automatically"
        )
    if request.action not in policy.enabled:
        return verdict(
            VerdictKind.SKIP,
            f"{request.action} is off (TRADEGUARD_RESPONDER_REMEDIATION_ENABLE turns it on, "
            "unless it was turned off at run time)",
        )
    # 2. Already handled (containing), or being verified (healing).
    done = [a for a in mine if a.outcome == "done"]
    if done and spec.undo is not None:
        return verdict(
            VerdictKind.SKIP,
            f"{what} is done already for this occurrence (it holds until the alert resolves)",
        )
    if done:
        since = _seconds(now - max(a.at for a in done))
        if since < policy.verify_seconds:
            return verdict(
                VerdictKind.WAIT,
                f"verifying: {what} was done {_s(since)} ago; the alert has "
                f"{_s(policy.verify_seconds - since)} more to resolve before it runs again",
            )
    if policy.dry_run and any(a.outcome == "dry_run" for a in mine):
        return verdict(VerdictKind.SKIP, f"dry run of {what} already recorded for this occurrence")
    # 3. In flight.
    if any(a.in_flight(now, policy) for a in mine):
        return verdict(VerdictKind.WAIT, f"in flight: an attempt of {what} awaits its answer")
    # 4. Budget.
    if len(counted) >= policy.budget:
        tried = ", ".join(
            "timed_out" if a.outcome == "pending" else a.outcome
            for a in sorted(counted, key=lambda a: a.at)
        )
        outcome = "the alert still fires" if done else "none done"
        return verdict(
            VerdictKind.EXHAUSTED,
            f"budget spent: {len(counted)} attempts of {what} ({tried}), {outcome}",
        )
    # 4b. The fault keeps coming back: across occurrences, within the repeat window.
    repeat_start = now - timedelta(seconds=policy.repeat_window_seconds)
    same = [
        a
        for a in history
        if a.action == request.action
        and a.target == request.target
        and a.at > repeat_start
        and not request.same_occurrence(a)
    ]
    repeats = [a for a in same if a.counts]
    if len(repeats) >= policy.repeat_limit:
        if any(a.outcome == "exhausted" for a in same):
            return verdict(
                VerdictKind.SKIP,
                f"gave up on {what} already: it keeps coming back; a person must act",
            )
        return verdict(
            VerdictKind.EXHAUSTED,
            f"{what} ran {len(repeats)} times in the last {_s(policy.repeat_window_seconds)} "
            "over several occurrences, and the fault keeps coming back",
        )
    # 5. Stale alert.
    age = _seconds(now - request.starts_at)
    if age > policy.max_alert_age_seconds:
        return verdict(
            VerdictKind.SKIP,
            f"stale alert: started {_s(age)} ago (limit {_s(policy.max_alert_age_seconds)})",
        )
    # 6. Safety conditions.
    unsafe = [
        text
        for holds, text in (
            (conditions.alert_path_broken, "the alert path is broken (dead man's switch)"),
            (conditions.split_brain, "split-brain"),
            (not conditions.leader_known, "no leader"),
        )
        if holds
    ]
    if unsafe:
        return verdict(VerdictKind.WAIT, f"unsafe now: {', '.join(unsafe)}")
    # 7. Cool-down of this action on this target, across occurrences.
    here = [
        a for a in history if a.counts and a.action == request.action and a.target == request.target
    ]
    if any(a.in_flight(now, policy) for a in here):
        return verdict(VerdictKind.WAIT, f"cool-down: {what} is still in flight")
    if here:
        last = max(here, key=lambda a: a.at)
        since = _seconds(now - last.at)
        if since < policy.cooldown_seconds:
            return verdict(
                VerdictKind.WAIT,
                f"cool-down: {what} ran {_s(since)} ago ({_s(policy.cooldown_seconds)}, "
                f"{_s(policy.cooldown_seconds - since)} left)",
            )
    # 8. Global rate limit.
    window_start = now - timedelta(seconds=policy.rate_window_seconds)
    recent = sorted(a.at for a in history if a.counts and a.at > window_start)
    if len(recent) >= policy.rate_limit:
        # The slot frees when enough of the oldest leave the window to drop below the limit.
        frees_at = recent[len(recent) - policy.rate_limit] + timedelta(
            seconds=policy.rate_window_seconds
        )
        return verdict(
            VerdictKind.WAIT,
            f"rate limit: {len(recent)} actions in the last {_s(policy.rate_window_seconds)} "
            f"(limit {policy.rate_limit}), next in {_s(_seconds(frees_at - now))}",
        )
    # 9. Go.
    if policy.dry_run:
        return verdict(VerdictKind.DRY_RUN, f"dry run: would run {what} (attempt {number})")
    return verdict(VerdictKind.RUN, f"run {what} (attempt {number} of {policy.budget})")
