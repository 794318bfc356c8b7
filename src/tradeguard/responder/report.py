"""How well the alerting itself works, from the alert history: the effectiveness report.

For a window (the last 7 days by default) over every alert occurrence the responder received:

- **alert rate**: occurrences per day, and per 8-hour operator shift;
- **MTTA**, mean time to acknowledge: from the first firing notice the responder received (when
  a person could first see it) to the first acknowledgement;
- **MTTR**, mean time to resolve: the alert's own duration, ``endsAt - startsAt``; and split
  in two, the resolved occurrences a remediation action healed (an attempt ended ``done``) and
  the others (no attempt, or none done), so the report shows what the actions are worth;
- **false-positive share**: of the acknowledged occurrences, those marked false positive;
- **unacknowledged**: how many fired and were never acknowledged (the alerts nobody read);
- the most frequent alerts, the first candidates for tuning;
- the **fatigue index**, alerts per operator per shift by the on-call roster
  (:mod:`tradeguard.responder.fatigue`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import fmean

from tradeguard.responder.fatigue import FatigueIndex, fatigue_index
from tradeguard.responder.history.base import Occurrence
from tradeguard.responder.roster import Roster

SHIFT = timedelta(hours=8)
TOP = 5


@dataclass(frozen=True)
class AlertAcks:
    """One alert's occurrences in the window and how people answered them."""

    alertname: str
    occurrences: int
    acknowledged: int
    false_positives: int

    def to_json(self) -> dict[str, object]:
        return {
            "alertname": self.alertname,
            "occurrences": self.occurrences,
            "acknowledged": self.acknowledged,
            "false_positives": self.false_positives,
        }


@dataclass(frozen=True)
class EffectivenessReport:
    since: datetime
    until: datetime
    occurrences: int
    per_day: float
    per_shift: float
    acknowledged: int
    resolved: int
    mtta_seconds: float | None  # None when nothing was acknowledged
    mttr_seconds: float | None  # None when nothing resolved
    false_positive_share: float | None  # of acknowledged; None when nothing was acknowledged
    top: list[tuple[str, int]]
    remediated_occurrences: int = 0  # those a remediation action ended done for (resolved or not)
    resolved_remediated: int = 0  # of the resolved, those healed by an action
    mttr_remediated_seconds: float | None = None  # over resolved_remediated; None if none
    mttr_unremediated_seconds: float | None = None  # over the other resolved; None if none
    # Every alert of the window, the most frequent first: the weekly review needs to know
    # which alerts nobody acknowledges and which are marked false positive, not only totals.
    per_alert: list[AlertAcks] = field(default_factory=list)
    fatigue: FatigueIndex = field(default_factory=lambda: FatigueIndex(roster=False))

    def to_json(self) -> dict[str, object]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "occurrences": self.occurrences,
            "per_day": self.per_day,
            "per_shift": self.per_shift,
            "acknowledged": self.acknowledged,
            "unacknowledged": self.occurrences - self.acknowledged,
            "resolved": self.resolved,
            "mtta_seconds": self.mtta_seconds,
            "mttr_seconds": self.mttr_seconds,
            "false_positive_share": self.false_positive_share,
            "top": [{"alertname": name, "occurrences": n} for name, n in self.top],
            "remediated_occurrences": self.remediated_occurrences,
            "resolved_remediated": self.resolved_remediated,
            "resolved_unremediated": self.resolved - self.resolved_remediated,
            "mttr_remediated_seconds": self.mttr_remediated_seconds,
            "mttr_unremediated_seconds": self.mttr_unremediated_seconds,
            "alerts": [a.to_json() for a in self.per_alert],
            "fatigue": self.fatigue.to_json(),
        }


def _mean_duration(occurrences: list[Occurrence]) -> float | None:
    """The mean of ``endsAt - startsAt`` over resolved ``occurrences``; None if there are none."""
    lasted = [
        max(0.0, (o.ends_at - o.starts_at).total_seconds())
        for o in occurrences
        if o.ends_at is not None
    ]
    return fmean(lasted) if lasted else None


def effectiveness(
    occurrences: list[Occurrence],
    since: datetime,
    until: datetime,
    roster: Roster | None = None,
) -> EffectivenessReport:
    """The report over ``occurrences`` first notified in ``[since, until]``; shifts and who
    was on call from ``roster`` (default: three 8-hour UTC shifts, nobody named)."""
    window = [o for o in occurrences if since <= o.notified_at <= until]
    span = max(until - since, timedelta(seconds=1))
    acked = [o for o in window if o.ack is not None]
    resolved = [o for o in window if o.ends_at is not None]
    mtta = [
        max(0.0, (o.ack.acked_at - o.notified_at).total_seconds())
        for o in acked
        if o.ack is not None
    ]
    healed = [o for o in resolved if o.remediated]
    false_positives = sum(1 for o in acked if o.ack is not None and o.ack.false_positive)
    return EffectivenessReport(
        since=since,
        until=until,
        occurrences=len(window),
        per_day=len(window) / (span / timedelta(days=1)),
        per_shift=len(window) / (span / SHIFT),
        acknowledged=len(acked),
        resolved=len(resolved),
        mtta_seconds=fmean(mtta) if mtta else None,
        mttr_seconds=_mean_duration(resolved),
        false_positive_share=false_positives / len(acked) if acked else None,
        top=Counter(o.alertname for o in window).most_common(TOP),
        remediated_occurrences=sum(1 for o in window if o.remediated),
        resolved_remediated=len(healed),
        mttr_remediated_seconds=_mean_duration(healed),
        mttr_unremediated_seconds=_mean_duration([o for o in resolved if not o.remediated]),
        per_alert=_per_alert(window),
        fatigue=fatigue_index(window, roster or Roster.default(), since, until),
    )


def _per_alert(window: list[Occurrence]) -> list[AlertAcks]:
    counts: dict[str, list[int]] = {}
    for o in window:
        row = counts.setdefault(o.alertname, [0, 0, 0])
        row[0] += 1
        if o.ack is not None:
            row[1] += 1
            row[2] += int(o.ack.false_positive)
    ranked = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))
    return [AlertAcks(name, n, acked, fp) for name, (n, acked, fp) in ranked]
