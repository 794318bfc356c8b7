"""What the console's pages show, shaped from history records: pure functions, so each figure
is tested without a browser, and every page computes it the same way.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tradeguard.responder.console.prometheus import Sample
from tradeguard.responder.console.svg import Span
from tradeguard.responder.durations import span_text
from tradeguard.responder.events import AlertEvent
from tradeguard.responder.history.base import Ack, ActionAttempt, Occurrence

SEVERITY_ORDER = ("critical", "warning", "info")


def severity_rank(severity: str | None) -> int:
    """Critical first, then warning, info, and anything else last."""
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


@dataclass(frozen=True)
class FiringRow:
    """One firing alert as the *Now* page lists it."""

    event: AlertEvent
    age_seconds: float
    ack: Ack | None
    actions: list[ActionAttempt]

    @property
    def runbook(self) -> str | None:
        """The runbook's page name when the alert names one (its ``runbook_url`` ends in
        ``<Alert>.md`` or ``/runbooks/<Alert>``)."""
        url = self.event.annotations.get("runbook_url", "")
        tail = url.rstrip("/").rsplit("/", 1)[-1]
        name = tail.removesuffix(".md")
        return name or None


def firing_rows(
    events: Sequence[AlertEvent],
    acks: Mapping[tuple[str, datetime], Ack],
    actions: Mapping[tuple[str, datetime], list[ActionAttempt]],
    now: datetime,
) -> dict[str, list[FiringRow]]:
    """The firing alerts grouped by severity (critical first), oldest first in each group,
    each with its acknowledgement and what remediation did for this occurrence."""
    groups: dict[str, list[FiringRow]] = {}
    ordered = sorted(events, key=lambda e: (severity_rank(e.severity), e.starts_at))
    for event in ordered:
        key = (event.fingerprint, event.starts_at)
        row = FiringRow(
            event,
            (now - event.starts_at).total_seconds(),
            acks.get(key),
            sorted(actions.get(key, []), key=lambda a: a.decided_at),
        )
        groups.setdefault(event.severity or "other", []).append(row)
    return groups


def per_day(
    occurrences: Sequence[Occurrence], since: datetime, until: datetime
) -> list[tuple[str, float]]:
    """Occurrences first notified on each UTC day of the window, every day shown (0 too)."""
    counts = Counter(o.notified_at.date() for o in occurrences if since <= o.notified_at <= until)
    days = []
    day = since.date()
    while day <= until.date():
        days.append((day.isoformat(), float(counts.get(day, 0))))
        day += timedelta(days=1)
    return days


def lanes(
    occurrences: Sequence[Occurrence], until: datetime, limit: int = 30
) -> list[tuple[str, list[Span]]]:
    """The timeline's lanes: one per alert name, the busiest first (at most ``limit``), each
    firing a span from its start to its end (or to ``until`` while it fires)."""
    spans: dict[str, list[Span]] = defaultdict(list)
    for o in occurrences:
        end = o.ends_at
        lasted = span_text(((end or until) - o.starts_at).total_seconds())
        state = "resolved" if end is not None else "still firing"
        acked = f", acknowledged by {o.ack.acked_by}" if o.ack is not None else ""
        title = f"{o.alertname}: from {o.starts_at:%Y-%m-%d %H:%M:%S} UTC, {lasted}, {state}{acked}"
        spans[o.alertname].append(Span(o.starts_at, end, o.severity, title))
    busiest = sorted(spans.items(), key=lambda item: (-len(item[1]), item[0]))[:limit]
    return [(name, sorted(found, key=lambda s: s.start)) for name, found in busiest]


@dataclass(frozen=True)
class ReplicaRow:
    """One engine replica as the HA page lists it, from Prometheus."""

    replica: str
    up: bool
    leads: bool
    epoch: int | None
    heartbeat_age_seconds: float | None
    mode: str | None


def replica_rows(
    leads: Sequence[Sample],
    epochs: Sequence[Sample],
    beats: Sequence[Sample],
    modes: Sequence[Sample],
    ups: Sequence[Sample],
) -> list[ReplicaRow]:
    """One row per replica any of the vectors names (by the ``replica`` label, else the
    ``instance`` one), sorted by name."""

    def by_replica(samples: Sequence[Sample]) -> dict[str, Sample]:
        return {s.labels.get("replica") or s.labels.get("instance", "?"): s for s in samples}

    lead, epoch, beat, mode, up = (by_replica(v) for v in (leads, epochs, beats, modes, ups))
    names = sorted(set(lead) | set(epoch) | set(beat) | set(mode) | set(up))
    return [
        ReplicaRow(
            name,
            up=name in up and up[name].value == 1,
            leads=name in lead and lead[name].value == 1,
            epoch=int(epoch[name].value) if name in epoch else None,
            heartbeat_age_seconds=beat[name].value if name in beat else None,
            mode=mode[name].labels.get("state") if name in mode else None,
        )
        for name in names
    ]
