"""What a person is told about one alert event, independent of the channel that tells them.

Channels (console, JSONL, later apprise URLs and PagerDuty) render the same
:class:`Notification`, so a firing notice reads the same everywhere and a resolved notice always
says what recovered: the rule's ``resolved_summary`` annotation when it has one ("latency back
below 5 ms"), else the threshold quoted in its description, and how long it lasted.

A notice about an alert whose rule names an ``action`` also says what was done about it, in one
line (:func:`remediation_line`): the sender reads the occurrence's remediation attempts as it
sends, so the resolved notice says which action healed the alert, or that none could.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from tradeguard.remediation.registry import REGISTRY
from tradeguard.responder.events import AlertEvent, iso, parse_iso
from tradeguard.responder.payload import AlertStatus

if TYPE_CHECKING:  # the history imports this module (through the outbox)
    from tradeguard.responder.history.actions import ActionAttempt

# Rule descriptions in deploy/prometheus/rules quote their threshold as "(threshold 80%)" or
# "(threshold: more than 5)".
_THRESHOLD = re.compile(r"\(threshold:?\s*([^)]+)\)", re.IGNORECASE)
HELD_BACK_LISTED = 10  # a summary names at most this many held-back notifications
HELD_BACK_KEPT = 100  # a summary carries at most this many held-back descriptions
# The order severities rank in when a summary takes the highest one of what it carries.
SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1}
NO_ACTION = "none"  # the ``action`` annotation of a rule that remediates nothing
# The alert the remediation controller raises when it gives up on an occurrence: its
# EXHAUSTED_ALERT, not imported (that module imports the history, which imports this one).
EXHAUSTED_ALERT = "RemediationExhausted"
DETAIL_LIMIT = 200  # an engine's detail quoted in a remediation line is cut to this length
_OUTCOME_WORDS = {
    "pending": "in progress",
    "timed_out": "timed out",
    "not_applicable": "not applicable",
}


def severity_rank(severity: str) -> int:
    """Higher for more severe; unknown severities (and "none") rank lowest."""
    return SEVERITY_RANK.get(severity, 0)


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _recovered(event: AlertEvent) -> str:
    """One sentence on what recovered, from the rule's own words where it provides them."""
    subject = event.alertname + (f" on {event.instance}" if event.instance else "")
    lasted = f" after {_duration(event.ends_at - event.starts_at)}" if event.ends_at else ""
    explicit = event.annotations.get("resolved_summary")
    if explicit:
        return f"{subject} recovered{lasted}: {explicit}"
    match = _THRESHOLD.search(event.annotations.get("description", ""))
    back = f": back within threshold ({match.group(1).strip()})" if match else ""
    was = event.annotations.get("summary")
    return f"{subject} recovered{lasted}{back}" + (f" (was: {was})" if was else "")


def _action_of(event: AlertEvent) -> str | None:
    action = event.annotations.get("action", "").strip()
    return action if action and action != NO_ACTION else None


def _on(target: str) -> str:
    return f" on {target}" if target and target != "*" else ""  # "*": any engine


def _runs(action: str, runs: Sequence[ActionAttempt]) -> str:
    """The commands issued, as their outcomes in order, repeats counted: "timed out ×2, done in
    0.4 s (attempt 3)"."""
    groups: list[tuple[str, int]] = []
    for run in runs:
        if groups and groups[-1][0] == run.outcome:
            groups[-1] = (run.outcome, groups[-1][1] + 1)
        else:
            groups.append((run.outcome, 1))
    said = [_OUTCOME_WORDS.get(o, o) + (f" ×{n}" if n > 1 else "") for o, n in groups]
    last = runs[-1]
    if last.outcome == "done":
        took = f" in {last.duration_seconds:.1f} s" if last.duration_seconds is not None else ""
        said[-1] += f"{took} (attempt {last.attempt})"
    elif last.outcome in ("refused", "failed", "not_applicable") and last.detail:
        detail = last.detail[:DETAIL_LIMIT] + ("…" if len(last.detail) > DETAIL_LIMIT else "")
        said[-1] += f" ({detail})"
    return f"{action}{_on(last.target)} " + ", ".join(said)


def remediation_line(action: str, attempts: Sequence[ActionAttempt]) -> str | None:
    """What was done about one alert occurrence whose rule names ``action``, in one line, from
    the occurrence's stored ``attempts`` (decision order); None when nothing was decided.

    "Remediation: stop_duckdb_writes on engine-a done in 0.1 s (attempt 1); undone:
    resume_duckdb_writes done", "Remediation: restart_instance timed out ×3, gave up
    (RemediationExhausted)", "Remediation: throttle_intake is off (...) (skipped)".
    """
    mine = [a for a in attempts if a.action == action]
    if not mine:
        return None
    runs = [a for a in mine if a.verdict == "run"]
    dry_runs = [a for a in mine if a.verdict == "dry_run"]
    skips = [a for a in mine if a.verdict == "skip"]
    if runs:
        text = _runs(action, runs)
    elif dry_runs:
        text = f"{action}{_on(dry_runs[-1].target)} would have run (dry run)"
    elif skips:
        reason = skips[-1].reason
        if reason.startswith(action):
            text = f"{reason} (skipped)"
        else:
            text = f"{action} skipped" + (f": {reason}" if reason else "")
    else:
        text = action
    if any(a.outcome == "exhausted" for a in mine):
        text += f", gave up ({EXHAUSTED_ALERT})"
    spec = REGISTRY.get(action)
    undos = [a for a in attempts if spec is not None and a.action == spec.undo]
    if undos:
        undo = undos[-1]
        if undo.outcome == "done":
            text += f"; undone: {undo.action} done"
        else:
            text += f"; undo: {undo.action} {_OUTCOME_WORDS.get(undo.outcome, undo.outcome)}"
    return f"Remediation: {text}"


@dataclass(frozen=True)
class Notification:
    """One notice for one new alert event."""

    status: AlertStatus
    alertname: str
    severity: str
    instance: str | None
    component: str | None
    summary: str
    description: str
    runbook_url: str | None
    recovered: str | None  # resolved notices only: what recovered, in one sentence
    fingerprint: str
    starts_at: datetime
    ends_at: datetime | None
    receiver: str
    labels: Mapping[str, str] = field(default_factory=dict)
    # Notifications of the same category that throttling held back and this one now reports
    # (see tradeguard.responder.throttle), oldest first, as one-line descriptions; at most
    # HELD_BACK_KEPT of them, ``held_back_count`` says how many there were in all.
    held_back: tuple[str, ...] = ()
    held_back_count: int = 0
    # The rule's ``action`` annotation (None when it names none): the sender looks up what was
    # done about the occurrence only for these, and puts it in ``remediation`` as it sends
    # (see remediation_line): the outbox's copy, written by the intake, has none.
    action: str | None = None
    remediation: str | None = None
    # Who the on-call roster names at the moment the notification goes out (set as it is
    # sent, like ``remediation``); None without a roster or in a gap between shifts.
    on_call: str | None = None

    @classmethod
    def from_event(cls, event: AlertEvent) -> Notification:
        annotations = event.annotations
        return cls(
            status=event.status,
            alertname=event.alertname,
            severity=event.severity or "none",
            instance=event.instance,
            component=event.component,
            summary=annotations.get("summary", ""),
            description=annotations.get("description", ""),
            runbook_url=annotations.get("runbook_url"),
            recovered=_recovered(event) if event.status == "resolved" else None,
            fingerprint=event.fingerprint,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            receiver=event.receiver,
            labels=dict(event.labels),
            action=_action_of(event),
        )

    def to_json(self) -> dict[str, Any]:
        """The notification as the delivery outbox stores it."""
        return {
            "status": self.status,
            "alertname": self.alertname,
            "severity": self.severity,
            "instance": self.instance,
            "component": self.component,
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url,
            "recovered": self.recovered,
            "fingerprint": self.fingerprint,
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at) if self.ends_at else None,
            "receiver": self.receiver,
            "labels": dict(self.labels),
            "action": self.action,
            "remediation": self.remediation,
            "on_call": self.on_call,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notification:
        """The inverse of :meth:`to_json`."""
        return cls(
            status=cast(AlertStatus, data["status"]),
            alertname=data["alertname"],
            severity=data["severity"],
            instance=data["instance"],
            component=data["component"],
            summary=data["summary"],
            description=data["description"],
            runbook_url=data["runbook_url"],
            recovered=data["recovered"],
            fingerprint=data["fingerprint"],
            starts_at=parse_iso(data["starts_at"]),
            ends_at=parse_iso(data["ends_at"]) if data["ends_at"] else None,
            receiver=data["receiver"],
            labels=dict(data["labels"]),
            action=data.get("action"),  # absent from entries stored by older versions
            remediation=data.get("remediation"),
            on_call=data.get("on_call"),
        )

    def carrying(self, held: Sequence[Notification]) -> Notification:
        """This notification reporting ``held`` (oldest first) as held back by throttling.

        The summary takes the highest severity among itself and what it carries, so a critical
        that a channel's throttle held is announced as a critical, not as the warning that
        happened to go out next.
        """
        if not held:
            return self
        briefs = self.held_back + tuple(n.brief for n in held)
        highest = max([self, *held], key=lambda n: severity_rank(n.severity))  # ties: self
        return replace(
            self,
            severity=highest.severity,
            held_back=briefs[-HELD_BACK_KEPT:],
            held_back_count=self.held_back_total + len(held),
        )

    @property
    def held_back_total(self) -> int:
        """How many held-back notifications this one reports (listed or not)."""
        return max(self.held_back_count, len(self.held_back))

    @property
    def brief(self) -> str:
        """Alert, place and status in a few words: how a held-back notification is listed."""
        where = f" on {self.instance}" if self.instance else ""
        return f"{self.alertname}{where} {self.status}"

    @property
    def held_back_text(self) -> str:
        """ " (+N held back: A, B, ...)" when throttling held notifications back, else ""."""
        if not self.held_back:
            return ""
        total = self.held_back_total
        shown = ", ".join(self.held_back[:HELD_BACK_LISTED])
        more = total - min(len(self.held_back), HELD_BACK_LISTED)
        tail = f" and {more} more" if more > 0 else ""
        return f" (+{total} held back: {shown}{tail})"

    @property
    def headline(self) -> str:
        """The one-line text every channel can fall back to."""
        where = f" on {self.instance}" if self.instance else ""
        if self.status == "resolved":
            return f"RESOLVED [{self.severity}] {self.recovered}{self.held_back_text}"
        text = f"FIRING [{self.severity}] {self.alertname}{where}"
        return text + (f": {self.summary}" if self.summary else "") + self.held_back_text
