"""The weekly review of the alert rules (``tradeguard alerts optimize``): suggestions backed by
figures from the alert history, each naming the rule to change.

Seed 003 asks to "update alert thresholds if needed" and to watch alert fatigue. Tuning by
feel moves thresholds the wrong way; here every suggestion carries the figures that justify it:

- **flapping**: fired and resolved more than N times in the window; its median firing time
  says how long a ``for`` must be to keep most of those quiet (and how many it would have);
- **never acknowledged**: fired at least N times and nobody took it once: it pages people who
  have learnt to ignore it, so lower its severity or remove it;
- **false positives**: most of its acknowledgements said nothing was wrong: raise the threshold;
- **firing for long**: one occurrence fired for a day or more: as it stands it asks for no
  action anyone takes, so fix the cause, or make it a ticket rather than an alert.

The responder's report (``/api/report``) gives each alert's acknowledgements and false
positives (``alerts``). Against a responder that serves only totals, :func:`attribute_acks`
gives them to alerts only where the totals allow no other reading (nobody acknowledged
anything; one alert fired in the window; ...); otherwise the two checks that need them are
reported as not made, with the totals, rather than guessed.

Everything here is pure: figures in, suggestions out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

from tradeguard.responder.durations import span_text
from tradeguard.responder.events import parse_iso
from tradeguard.responder.operations import AlertOccurrence, MalformedRecord
from tradeguard.responder.rule_files import RuleLocation, format_duration, rule_for

# Steps a suggested ``for`` extension is rounded up to: values a person would write.
NICE_SECONDS = (5, 10, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
LOWER_SEVERITY = {"critical": "warning", "warning": "info"}


@dataclass(frozen=True)
class Thresholds:
    """When a figure becomes a suggestion (the command line's options)."""

    flaps: int = 5  # flapping: resolved more than this many times in the window
    unacknowledged: int = 5  # never acknowledged: fired at least this many times
    false_positive_share: float = 0.5  # false positives: at least this share of the acks ...
    false_positive_acks: int = 3  # ... over at least this many acknowledgements
    long_firing_seconds: float = 24 * 3600.0  # firing for long: one occurrence this long


@dataclass(frozen=True)
class AckFigures:
    """An alert's acknowledgements in the window; ``false_positives`` None when unknown."""

    acknowledged: int
    false_positives: int | None


@dataclass(frozen=True)
class AlertFigures:
    """One alert's figures over the window."""

    alertname: str
    severity: str | None  # the severity most of its occurrences had
    occurrences: int
    resolved_seconds: tuple[float, ...]  # how long each resolved occurrence fired, sorted
    still_firing: int
    longest_seconds: float  # the longest one fired (until now for one still firing)
    longest_still_firing: bool
    acks: AckFigures | None = None  # None: not known for this alert

    @property
    def resolved(self) -> int:
        return len(self.resolved_seconds)

    @property
    def median_seconds(self) -> float | None:
        return median(self.resolved_seconds) if self.resolved_seconds else None


def alert_figures(occurrences: Iterable[AlertOccurrence], now: datetime) -> list[AlertFigures]:
    """Per alert name: occurrences, how long the resolved ones fired, the longest, the most
    common severity; most occurrences first."""
    by_name: dict[str, list[AlertOccurrence]] = defaultdict(list)
    for o in occurrences:
        by_name[o.alertname].append(o)
    figures = []
    for name, group in by_name.items():
        longest = max(group, key=lambda o: o.lasted(now))
        severities = Counter(o.severity for o in group)
        figures.append(
            AlertFigures(
                alertname=name,
                severity=max(severities, key=lambda s: (severities[s], s or "")),
                occurrences=len(group),
                resolved_seconds=tuple(sorted(o.lasted(now) for o in group if o.ends_at)),
                still_firing=sum(1 for o in group if o.ends_at is None),
                longest_seconds=longest.lasted(now),
                longest_still_firing=longest.ends_at is None,
            )
        )
    return sorted(figures, key=lambda f: (-f.occurrences, f.alertname))


# ---- acknowledgements from the report's totals ---------------------------------------------
@dataclass(frozen=True)
class ReportTotals:
    """The figures of ``/api/report`` this review uses."""

    since: datetime
    until: datetime
    occurrences: int
    acknowledged: int
    false_positive_share: float | None
    # Each alert's acknowledgements, when the responder serves them (``alerts``); None from
    # a responder that serves only totals.
    per_alert: dict[str, AckFigures] | None = None


def _per_alert(report: Mapping[str, Any]) -> dict[str, AckFigures] | None:
    rows = report.get("alerts")
    if rows is None:
        return None
    if not isinstance(rows, list):
        raise MalformedRecord(f"report.alerts: expected a list, got {rows!r:.40}")
    out = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise MalformedRecord(f"report.alerts[{i}]: expected an object, got {row!r:.40}")
        name, acked, fp = row.get("alertname"), row.get("acknowledged"), row.get("false_positives")
        if not isinstance(name, str) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (acked, fp)
        ):
            raise MalformedRecord(f"report.alerts[{i}]: expected a name and two counts")
        assert isinstance(acked, int) and isinstance(fp, int)
        out[name] = AckFigures(acked, fp)
    return out


def report_totals(report: Mapping[str, Any]) -> ReportTotals:
    """The totals of a ``/api/report`` answer; :class:`MalformedRecord` if it is not one."""

    def number(key: str, kind: type) -> Any:
        value = report.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MalformedRecord(f"report.{key}: expected a number, got {value!r:.40}")
        return value

    def moment(key: str) -> datetime:
        value = report.get(key)
        try:
            if isinstance(value, str):
                return parse_iso(value)
        except ValueError:
            pass
        raise MalformedRecord(f"report.{key}: not a time: {value!r:.40}")

    share = report.get("false_positive_share")
    if share is not None and (not isinstance(share, int | float) or isinstance(share, bool)):
        raise MalformedRecord(f"report.false_positive_share: expected a number, got {share!r:.40}")
    return ReportTotals(
        since=moment("since"),
        until=moment("until"),
        occurrences=number("occurrences", int),
        acknowledged=number("acknowledged", int),
        false_positive_share=None if share is None else float(share),
        per_alert=_per_alert(report),
    )


def attribute_acks(
    figures: Sequence[AlertFigures], totals: ReportTotals
) -> dict[str, AckFigures] | None:
    """Each alert's acknowledgements, where the report's totals allow only one reading; None
    where they do not (the checks that need them are then not made).

    The totals must be of the same occurrences as ``figures`` (same count), else nothing is
    attributed: an alert that fired between the two requests would shift every share.
    """
    if sum(f.occurrences for f in figures) != totals.occurrences:
        return None
    if totals.per_alert is not None:  # the responder says who acknowledged what
        return {f.alertname: totals.per_alert.get(f.alertname, AckFigures(0, 0)) for f in figures}
    acked, share = totals.acknowledged, totals.false_positive_share
    false_positives = round(share * acked) if share is not None else 0
    if acked == 0:
        return {f.alertname: AckFigures(0, 0) for f in figures}
    if len(figures) == 1:
        return {figures[0].alertname: AckFigures(acked, false_positives)}
    if acked == totals.occurrences:  # every occurrence acknowledged: who marked what is open
        if false_positives in (0, acked):
            return {
                f.alertname: AckFigures(f.occurrences, f.occurrences if false_positives else 0)
                for f in figures
            }
        return {f.alertname: AckFigures(f.occurrences, None) for f in figures}
    return None


# ---- suggestions ---------------------------------------------------------------------------
FLAPPING = "flapping"
NEVER_ACKNOWLEDGED = "never acknowledged"
FALSE_POSITIVES = "false positives"
FIRING_LONG = "firing for long"
KINDS = (FLAPPING, NEVER_ACKNOWLEDGED, FALSE_POSITIVES, FIRING_LONG)


@dataclass(frozen=True)
class Suggestion:
    """One change to one rule and the figures behind it."""

    kind: str
    alertname: str
    evidence: str
    change: str
    rule: RuleLocation | None = field(default=None, compare=False)


def nice_above(seconds: float) -> float:
    """The smallest :data:`NICE_SECONDS` step above ``seconds`` (whole hours past them)."""
    for step in NICE_SECONDS:
        if step > seconds:
            return float(step)
    return float((int(seconds) // 3600 + 1) * 3600)


def _flapping(f: AlertFigures, rule: RuleLocation | None) -> Suggestion:
    typical = f.median_seconds or 0.0
    current = rule.for_seconds if rule is not None else 0.0
    extension = nice_above(typical)
    quiet = sum(1 for d in f.resolved_seconds if d < extension)
    proposed = format_duration(current + extension)
    now_for = rule.for_text if rule is not None and rule.for_text else "none"
    change = (
        f"set `for: {proposed}` (now {now_for}) or longer: it would have kept {quiet} of these "
        f"{f.resolved} occurrences quiet"
    )
    if rule is None:
        change = (
            f"give it a `for` about {span_text(extension)} longer than it has: that would have "
            f"kept {quiet} of these {f.resolved} occurrences quiet"
        )
    return Suggestion(
        FLAPPING,
        f.alertname,
        f"fired and resolved {f.resolved} times; median firing time {span_text(typical)}",
        change,
        rule,
    )


def _never_acknowledged(f: AlertFigures, rule: RuleLocation | None) -> Suggestion:
    severity = f.severity or "none"
    lower = LOWER_SEVERITY.get(severity)
    change = (
        f"lower its severity to {lower} (now {severity}), or remove it"
        if lower
        else f"remove it, or route it nowhere (severity {severity})"
    )
    return Suggestion(
        NEVER_ACKNOWLEDGED,
        f.alertname,
        f"fired {f.occurrences} times, acknowledged 0 times",
        change,
        rule,
    )


def _false_positives(f: AlertFigures, acks: AckFigures, rule: RuleLocation | None) -> Suggestion:
    assert acks.false_positives is not None
    share = acks.false_positives / acks.acknowledged
    shown = " ".join(rule.expr.split()) if rule is not None else ""
    return Suggestion(
        FALSE_POSITIVES,
        f.alertname,
        f"{acks.false_positives} of {acks.acknowledged} acknowledgements ({share:.0%}) marked "
        "false positive",
        "raise the threshold" + (f" of `{shown}`" if shown else "") + " (or its `for`)",
        rule,
    )


def _firing_long(f: AlertFigures, rule: RuleLocation | None) -> Suggestion:
    how = "and still fires" if f.longest_still_firing else "in one occurrence"
    return Suggestion(
        FIRING_LONG,
        f.alertname,
        f"fired for {span_text(f.longest_seconds)} {how}",
        "not actionable as it stands: fix the cause, or make it a ticket or a dashboard "
        "panel instead of an alert",
        rule,
    )


def suggest(
    figures: Iterable[AlertFigures],
    locations: Mapping[str, list[RuleLocation]],
    thresholds: Thresholds = Thresholds(),
) -> list[Suggestion]:
    """Every suggestion ``figures`` justify, by kind (:data:`KINDS` order), then by alert name.

    ``locations`` (alert name -> its rules) names the rule to change; an alert with no rule
    there (one the responder raises itself) is still reported, without a location.
    """
    found: list[Suggestion] = []
    for f in figures:
        rule = rule_for(locations, f.alertname, f.severity)
        if f.resolved > thresholds.flaps:
            found.append(_flapping(f, rule))
        acks = f.acks
        if acks is None:
            pass  # not known per alert: the command says the two checks were not made
        elif acks.acknowledged == 0 and f.occurrences >= thresholds.unacknowledged:
            found.append(_never_acknowledged(f, rule))
        elif (
            acks.false_positives is not None
            and acks.acknowledged >= thresholds.false_positive_acks
            and acks.false_positives / acks.acknowledged >= thresholds.false_positive_share
        ):
            found.append(_false_positives(f, acks, rule))
        if f.longest_seconds >= thresholds.long_firing_seconds:
            found.append(_firing_long(f, rule))
    return sorted(found, key=lambda s: (KINDS.index(s.kind), s.alertname))
