"""How well the alerting itself works, from the alert history: the effectiveness report.

For a window (the last 7 days by default) over every alert occurrence the responder received:

- **alert rate**: occurrences per day, and per 8-hour operator shift;
- **MTTA**, mean time to acknowledge: from the first firing notice the responder received (when
  a person could first see it) to the first acknowledgement;
- **MTTR**, mean time to resolve: the alert's own duration, ``endsAt - startsAt``;
- **false-positive share**: of the acknowledged occurrences, those marked false positive;
- **unacknowledged**: how many fired and were never acknowledged (the alerts nobody read);
- the most frequent alerts, the first candidates for tuning.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import fmean

from tradeguard.responder.history.base import Occurrence

SHIFT = timedelta(hours=8)
TOP = 5


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
        }


def effectiveness(
    occurrences: list[Occurrence], since: datetime, until: datetime
) -> EffectivenessReport:
    """The report over ``occurrences`` first notified in ``[since, until]``."""
    window = [o for o in occurrences if since <= o.notified_at <= until]
    span = max(until - since, timedelta(seconds=1))
    acked = [o for o in window if o.ack is not None]
    resolved = [o for o in window if o.ends_at is not None]
    mtta = [
        max(0.0, (o.ack.acked_at - o.notified_at).total_seconds())
        for o in acked
        if o.ack is not None
    ]
    mttr = [
        max(0.0, (o.ends_at - o.starts_at).total_seconds())
        for o in resolved
        if o.ends_at is not None
    ]
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
        mttr_seconds=fmean(mttr) if mttr else None,
        false_positive_share=false_positives / len(acked) if acked else None,
        top=Counter(o.alertname for o in window).most_common(TOP),
    )
