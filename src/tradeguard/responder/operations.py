"""The daily look at the alerting (``tradeguard alerts summary``), as pure functions over the
records the responder's API serves.

What a person taking a shift wants first: what fires now, sorted by how bad and where
(severity, then component), and what changed since the day began: which alerts started
firing, which resolved, how many were acknowledged. The records come from the HTTP API as
JSON, so they are checked here field by field (:func:`events_from_json`): a record of another
shape is a :class:`MalformedRecord` naming the field, and the command says the responder
answered garbage instead of printing a table of question marks.

Also the occurrences (one firing of one alert: fingerprint and startsAt) that both this
summary and the weekly suggestions (:mod:`tradeguard.responder.optimize`) count.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from tradeguard.errors import TradeguardError
from tradeguard.responder.events import parse_iso
from tradeguard.responder.watchdog import WATCHDOG_ALERT

SEVERITY_ORDER = ("critical", "warning", "info")  # then any other, then none
NONE = "-"  # an alert without a severity or component label


class MalformedRecord(TradeguardError):
    """A record of the responder's API that lacks a field or has one of the wrong type; the
    message names it (``alerts[3].starts_at: not a time``)."""


@dataclass(frozen=True)
class EventRecord:
    """One stored alert event (firing or resolved), as ``/api/alerts/history`` and
    ``/api/alerts/firing`` serve it."""

    fingerprint: str
    alertname: str
    status: str  # "firing" or "resolved"
    starts_at: datetime
    ends_at: datetime | None
    severity: str | None
    component: str | None
    received_at: datetime

    @property
    def key(self) -> tuple[str, datetime]:
        """The occurrence this event belongs to."""
        return (self.fingerprint, self.starts_at)


def _text(raw: Mapping[str, Any], key: str, where: str, optional: bool = False) -> str | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not value and not optional):
        raise MalformedRecord(f"{where}.{key}: expected a non-empty string, got {value!r:.40}")
    return value or None


def _moment(
    raw: Mapping[str, Any], key: str, where: str, optional: bool = False
) -> datetime | None:
    text = _text(raw, key, where, optional)
    if text is None:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        raise MalformedRecord(f"{where}.{key}: not a time: {text[:40]!r}") from None


def event_from_json(raw: object, where: str = "alert") -> EventRecord:
    """One API record as an :class:`EventRecord`; :class:`MalformedRecord` if it is not one."""
    if not isinstance(raw, Mapping):
        raise MalformedRecord(f"{where}: expected an object, got {type(raw).__name__}")
    status = _text(raw, "status", where)
    if status not in ("firing", "resolved"):
        raise MalformedRecord(f"{where}.status: expected firing or resolved, got {status!r:.40}")
    starts_at = _moment(raw, "starts_at", where)
    received_at = _moment(raw, "received_at", where)
    assert starts_at is not None and received_at is not None  # not optional: checked above
    return EventRecord(
        fingerprint=str(_text(raw, "fingerprint", where)),
        alertname=str(_text(raw, "alertname", where)),
        status=status,
        starts_at=starts_at,
        ends_at=_moment(raw, "ends_at", where, optional=True),
        severity=_text(raw, "severity", where, optional=True),
        component=_text(raw, "component", where, optional=True),
        received_at=received_at,
    )


def events_from_json(records: Sequence[object], what: str = "alerts") -> list[EventRecord]:
    """Every record of one answer, checked (``what`` names the answer's list in errors)."""
    return [event_from_json(raw, f"{what}[{i}]") for i, raw in enumerate(records)]


# ---- occurrences ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertOccurrence:
    """One firing of one alert, from its firing event and, once over, its resolved event."""

    fingerprint: str
    alertname: str
    severity: str | None
    component: str | None
    starts_at: datetime
    notified_at: datetime  # when the responder first received it firing
    ends_at: datetime | None  # None while it fires

    def lasted(self, now: datetime) -> float:
        """Seconds it fired: until it ended, or until ``now`` while it still fires."""
        end = self.ends_at if self.ends_at is not None else now
        return max(0.0, (end - self.starts_at).total_seconds())


def occurrences(events: Iterable[EventRecord]) -> list[AlertOccurrence]:
    """The occurrences of ``events``, oldest notice first. Repeated events (several
    Alertmanagers, pages fetched twice) count once; an occurrence whose firing event is not
    among ``events`` is left out, as the effectiveness report leaves it out."""
    firing: dict[tuple[str, datetime], EventRecord] = {}
    ended: dict[tuple[str, datetime], datetime] = {}
    for e in events:
        if e.status == "firing":
            known = firing.get(e.key)
            if known is None or e.received_at < known.received_at:
                firing[e.key] = e
        else:
            ended[e.key] = e.ends_at or e.received_at
    found = [
        AlertOccurrence(
            e.fingerprint,
            e.alertname,
            e.severity,
            e.component,
            e.starts_at,
            e.received_at,
            ended.get(key),
        )
        for key, e in firing.items()
    ]
    return sorted(found, key=lambda o: (o.notified_at, o.fingerprint, o.starts_at))


# ---- what fires now ------------------------------------------------------------------------
@dataclass(frozen=True)
class FiringGroup:
    """The alerts firing now of one severity and component."""

    severity: str
    component: str
    count: int
    alerts: tuple[tuple[str, int], ...]  # (alert name, how many of it fire), most first


def severity_rank(severity: str) -> tuple[int, str]:
    """critical, warning, info, then any other alphabetically, then none."""
    if severity in SEVERITY_ORDER:
        return (SEVERITY_ORDER.index(severity), "")
    return (len(SEVERITY_ORDER) + (severity == NONE), severity)


def _named(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def group_firing(firing: Iterable[EventRecord]) -> list[FiringGroup]:
    """What fires now by severity (worst first), then component (alphabetically)."""
    grouped: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for e in firing:
        grouped[(e.severity or NONE, e.component or NONE)][e.alertname] += 1
    return [
        FiringGroup(severity, component, sum(names.values()), _named(names))
        for (severity, component), names in sorted(
            grouped.items(), key=lambda item: (severity_rank(item[0][0]), item[0][1])
        )
    ]


# ---- what changed --------------------------------------------------------------------------
@dataclass(frozen=True)
class Changes:
    """What happened to alerts since a moment."""

    since: datetime
    started: tuple[tuple[str, int], ...]  # occurrences that started firing, per alert
    still_firing: int  # of those, how many fire now
    resolved: tuple[tuple[str, int], ...]  # occurrences that resolved, per alert

    @property
    def started_total(self) -> int:
        return sum(n for _, n in self.started)

    @property
    def resolved_total(self) -> int:
        return sum(n for _, n in self.resolved)


def start_of_day(now: datetime) -> datetime:
    """The last UTC midnight at or before ``now``."""
    return datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)


def changes_since(
    events: Iterable[EventRecord], since: datetime, firing: Iterable[EventRecord] = ()
) -> Changes:
    """The occurrences that started (startsAt) and resolved (endsAt) at or after ``since``,
    each counted once however often its events were stored or fetched; ``firing`` (what
    fires now) tells how many of those that started still fire."""
    started: dict[tuple[str, datetime], str] = {}
    resolved: dict[tuple[str, datetime], str] = {}
    for e in events:
        if e.status == "firing" and e.starts_at >= since:
            started[e.key] = e.alertname
        elif e.status == "resolved" and (e.ends_at or e.received_at) >= since:
            resolved[e.key] = e.alertname
    now_firing = {e.key for e in firing}
    return Changes(
        since=since,
        started=_named(Counter(started.values())),
        still_firing=sum(1 for key in started if key in now_firing),
        resolved=_named(Counter(resolved.values())),
    )


def missing_at_responder(
    prometheus_firing: Iterable[str], responder_firing: Iterable[EventRecord]
) -> list[str]:
    """Alert names Prometheus fires that the responder has no firing occurrence of (the
    Watchdog excepted: the responder keeps it out of the history by design). Inhibited,
    silenced, routed around the responder, or lost on the way: worth one look each day."""
    at_responder = {e.alertname for e in responder_firing}
    return sorted({name for name in prometheus_firing if name != WATCHDOG_ALERT} - at_responder)
