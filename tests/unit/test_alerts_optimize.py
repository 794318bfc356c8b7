"""The weekly suggestions (tradeguard.responder.optimize) and where each rule is written
(tradeguard.responder.rule_files)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard.responder.operations import AlertOccurrence, MalformedRecord
from tradeguard.responder.optimize import (
    FALSE_POSITIVES,
    FIRING_LONG,
    FLAPPING,
    KINDS,
    NEVER_ACKNOWLEDGED,
    AckFigures,
    AlertFigures,
    ReportTotals,
    Thresholds,
    alert_figures,
    attribute_acks,
    nice_above,
    report_totals,
    suggest,
)
from tradeguard.responder.rule_files import (
    RuleLocation,
    find_rules_dir,
    format_duration,
    load_rule_locations,
    parse_duration,
    rule_for,
)
from tradeguard.rulecheck.paths import RepoPaths, find_repo_root
from tradeguard.rulecheck.rules import load_rules

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
RULES = RepoPaths(find_repo_root(Path(__file__).parent)).rules_dir


def occurrence(
    name: str,
    at: timedelta,
    lasted: timedelta | None,
    severity: str | None = "critical",
) -> AlertOccurrence:
    start = T0 + at
    return AlertOccurrence(
        f"f{name}{at.total_seconds():.0f}",
        name,
        severity,
        "redis",
        start,
        start,
        start + lasted if lasted is not None else None,
    )


def flaps(name: str, times: int, lasted: timedelta, severity: str = "critical") -> list[Any]:
    return [occurrence(name, timedelta(minutes=10 * i), lasted, severity) for i in range(times)]


def rule(name: str, for_text: str | None = "1m", severity: str | None = "critical") -> Any:
    return RuleLocation(
        name=name,
        file=Path("/repo/deploy/prometheus/rules/redis.rules.yml"),
        line=12,
        group="tradeguard.redis",
        severity=severity,
        for_text=for_text,
        for_seconds=parse_duration(for_text) if for_text else 0.0,
        expr="redis_up == 0\n",
    )


# ---- durations -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("30s", 30),
        ("1m30s", 90),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1y", 365 * 86400),
        ("250ms", 0.25),
        ("1h1m1s", 3661),
    ],
)
def test_prometheus_durations_are_read(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1s1m", "1.5m", "-1m", "m", "1 m"])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        parse_duration(text)


@given(st.integers(0, 10 * 86400))
def test_a_written_for_reads_back_as_the_same_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# ---- rule locations --------------------------------------------------------------------------
def test_locations_find_every_alert_the_rule_checker_finds() -> None:
    """rulecheck reads the files without line numbers; both must agree on what is there."""
    locations = load_rule_locations(RULES)
    rules = load_rules(sorted(RULES.glob("*.yml")))
    assert sorted((r.name, r.file.name, r.group) for r in rules.alerts) == sorted(
        (loc.name, loc.file.name, loc.group) for group in locations.values() for loc in group
    )
    for group in locations.values():
        for loc in group:
            line = loc.file.read_text().splitlines()[loc.line - 1]
            assert line.strip() == f"- alert: {loc.name}", (loc.where(), line)
    for checked in rules.alerts:
        located = rule_for(locations, checked.name, checked.labels.get("severity"))
        assert located is not None and located.severity == checked.labels.get("severity")
        assert " ".join(located.expr.split()) == " ".join(checked.expr.split())


def test_an_alert_with_a_rule_per_severity_is_told_apart() -> None:
    locations = load_rule_locations(RULES)
    warning = rule_for(locations, "DBSyncLatencyHigh", "warning")
    critical = rule_for(locations, "DBSyncLatencyHigh", "critical")
    assert warning is not None and critical is not None and warning.line < critical.line
    assert (warning.for_text, critical.for_text) == ("5m", "2m")
    assert rule_for(locations, "NoSuchAlert", "critical") is None


def test_a_broken_file_is_left_out_and_the_others_still_read(tmp_path: Path) -> None:
    (tmp_path / "bad.rules.yml").write_text("groups: [\n")
    (tmp_path / "good.rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: up\n"
        "      - alert: Up\n        expr: up == 1\n        for: 90s\n"
        "        labels: {severity: info}\n"
    )
    (found,) = load_rule_locations(tmp_path)["Up"]
    assert (found.line, found.for_seconds, found.severity, found.group) == (6, 90, "info", "g")
    assert found.where(tmp_path) == "good.rules.yml:6"


def test_the_rules_directory_is_found_from_below_the_repository() -> None:
    assert find_rules_dir(RULES.parent.parent / "tests") == RULES


# ---- figures ----------------------------------------------------------------------------------
def test_figures_per_alert() -> None:
    found = [
        *flaps("A", 3, timedelta(seconds=30)),
        occurrence("A", timedelta(hours=2), timedelta(seconds=90), "warning"),
        occurrence("A", timedelta(hours=3), None),  # still firing: 21 h by NOW
        occurrence("B", timedelta(hours=1), timedelta(hours=2), "warning"),
    ]
    a, b = alert_figures(found, NOW)
    assert (a.alertname, a.occurrences, a.resolved, a.still_firing) == ("A", 5, 4, 1)
    assert a.resolved_seconds == (30, 30, 30, 90) and a.median_seconds == 30
    assert a.severity == "critical"  # the most common
    assert a.longest_seconds == 21 * 3600 and a.longest_still_firing
    assert (b.occurrences, b.longest_seconds, b.longest_still_firing) == (1, 7200, False)


# ---- acknowledgements from the report's totals -------------------------------------------------
def totals(occurrences: int, acknowledged: int, share: float | None = None) -> ReportTotals:
    return ReportTotals(T0, NOW, occurrences, acknowledged, share)


def figures_of(**counts: int) -> list[AlertFigures]:
    return alert_figures(
        [o for name, n in counts.items() for o in flaps(name, n, timedelta(seconds=5))], NOW
    )


def test_nobody_acknowledged_anything_means_every_alert_was_never_acknowledged() -> None:
    assert attribute_acks(figures_of(A=3, B=2), totals(5, 0)) == {
        "A": AckFigures(0, 0),
        "B": AckFigures(0, 0),
    }


def test_one_alert_in_the_window_takes_every_acknowledgement() -> None:
    assert attribute_acks(figures_of(A=4), totals(4, 4, 0.75)) == {"A": AckFigures(4, 3)}


def test_everything_acknowledged_leaves_only_the_false_positives_open() -> None:
    assert attribute_acks(figures_of(A=3, B=1), totals(4, 4, 0.0)) == {
        "A": AckFigures(3, 0),
        "B": AckFigures(1, 0),
    }
    assert attribute_acks(figures_of(A=3, B=1), totals(4, 4, 0.5)) == {
        "A": AckFigures(3, None),
        "B": AckFigures(1, None),
    }


def test_the_reports_per_alert_figures_are_taken_as_they_are() -> None:
    """What the responder serves now: each alert's own acknowledgements, so the totals'
    ambiguity does not arise (an alert absent from them had none)."""
    report = {
        "since": "2026-11-27T12:00:00Z",
        "until": "2026-12-04T12:00:00Z",
        "occurrences": 5,
        "acknowledged": 2,
        "false_positive_share": 0.5,
        "alerts": [{"alertname": "A", "occurrences": 3, "acknowledged": 2, "false_positives": 1}],
    }
    parsed = report_totals(report)
    assert attribute_acks(figures_of(A=3, B=2), parsed) == {
        "A": AckFigures(2, 1),
        "B": AckFigures(0, 0),
    }
    report["alerts"] = [{"alertname": "A", "acknowledged": -1, "false_positives": 0}]
    with pytest.raises(MalformedRecord, match=r"report.alerts\[0\]"):
        report_totals(report)


def test_totals_that_allow_several_readings_attribute_nothing() -> None:
    assert attribute_acks(figures_of(A=3, B=2), totals(5, 2, 0.5)) is None
    # the report counted other occurrences than the history holds
    assert attribute_acks(figures_of(A=3), totals(4, 0)) is None


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from("ABCD"), st.integers(1, 6), min_size=1),
    st.data(),
)
def test_attributed_acks_always_add_up_to_the_totals(counts: dict[str, int], data: Any) -> None:
    figures = figures_of(**counts)
    occurrences = sum(counts.values())
    acked = data.draw(st.integers(0, occurrences))
    fps = data.draw(st.integers(0, acked))
    share = fps / acked if acked else None
    acks = attribute_acks(figures, totals(occurrences, acked, share))
    if acks is None:
        return
    assert set(acks) == set(counts)
    assert sum(a.acknowledged for a in acks.values()) == acked
    assert all(a.acknowledged <= counts[name] for name, a in acks.items())
    known = [a.false_positives for a in acks.values()]
    if None not in known:
        assert sum(k or 0 for k in known) == fps


# ---- suggestions -------------------------------------------------------------------------------
def with_acks(figures: list[AlertFigures], acks: dict[str, AckFigures]) -> list[AlertFigures]:
    return [replace(f, acks=acks.get(f.alertname)) for f in figures]


def test_an_alert_that_flaps_gets_a_longer_for_with_what_it_would_have_silenced() -> None:
    found = [
        *flaps("RedisDown", 5, timedelta(seconds=20)),
        occurrence("RedisDown", timedelta(hours=5), timedelta(minutes=10)),
    ]
    (s,) = suggest(alert_figures(found, NOW), {"RedisDown": [rule("RedisDown", "1m")]})
    assert s.kind == FLAPPING and s.rule is not None and s.rule.line == 12
    assert s.evidence == "fired and resolved 6 times; median firing time 20s"
    # 20 s typical: a `for` 30 s longer than today's 1m keeps the five 20 s ones quiet
    assert "`for: 1m30s` (now 1m)" in s.change and "5 of these 6" in s.change


def test_flapping_means_more_than_the_threshold() -> None:
    figures = alert_figures(flaps("A", 5, timedelta(seconds=20)), NOW)
    assert suggest(figures, {}, Thresholds(flaps=5)) == []
    (s,) = suggest(figures, {}, Thresholds(flaps=4))
    assert s.rule is None and "about 30s longer" in s.change


def test_an_alert_nobody_acknowledges_is_lowered_or_removed() -> None:
    figures = with_acks(
        figures_of(Crit=5, Info=6, Few=4),
        {"Crit": AckFigures(0, 0), "Info": AckFigures(0, 0), "Few": AckFigures(0, 0)},
    )
    figures = [replace(f, severity="info") if f.alertname == "Info" else f for f in figures]
    found = suggest(figures, {}, Thresholds(flaps=100))
    assert [(s.kind, s.alertname) for s in found] == [
        (NEVER_ACKNOWLEDGED, "Crit"),
        (NEVER_ACKNOWLEDGED, "Info"),
    ]
    assert "to warning (now critical)" in found[0].change
    assert found[1].change.startswith("remove it")
    assert found[0].evidence == "fired 5 times, acknowledged 0 times"


def test_mostly_false_positives_raise_the_threshold_of_the_rule_expression() -> None:
    figures = with_acks(
        figures_of(A=4, B=4, C=2),
        {"A": AckFigures(4, 2), "B": AckFigures(4, 1), "C": AckFigures(2, 2)},
    )
    found = suggest(figures, {"A": [rule("A")]}, Thresholds(flaps=100))
    assert [(s.kind, s.alertname) for s in found] == [(FALSE_POSITIVES, "A")]
    assert found[0].evidence == "2 of 4 acknowledgements (50%) marked false positive"
    assert "raise the threshold of `redis_up == 0`" in found[0].change


def test_unknown_acknowledgements_suggest_nothing_about_them() -> None:
    figures = figures_of(A=9)
    assert [s.kind for s in suggest(figures, {}, Thresholds(flaps=100))] == []


def test_an_alert_firing_for_days_is_not_actionable() -> None:
    found = [occurrence("Stuck", timedelta(hours=-47), None), *flaps("Ok", 2, timedelta(0))]
    (s,) = suggest(alert_figures(found, NOW), {})
    assert s.kind == FIRING_LONG and s.evidence == "fired for 2d23h and still fires"
    assert "not actionable" in s.change


occurrences_strategy = st.lists(
    st.builds(
        occurrence,
        name=st.sampled_from(["A", "B", "C"]),
        at=st.integers(0, 3000).map(lambda n: timedelta(minutes=n)),
        lasted=st.none() | st.integers(0, 200000).map(lambda n: timedelta(seconds=n)),
        severity=st.sampled_from(["critical", "warning", "info"]),
    ),
    max_size=40,
)
thresholds_strategy = st.builds(
    Thresholds,
    flaps=st.integers(1, 10),
    unacknowledged=st.integers(1, 10),
    false_positive_share=st.floats(0, 1),
    false_positive_acks=st.integers(1, 10),
    long_firing_seconds=st.floats(60, 200000),
)


@settings(max_examples=300, deadline=None)
@given(occurrences_strategy, thresholds_strategy, st.data())
def test_stricter_thresholds_never_add_a_suggestion(
    found: list[AlertOccurrence], loose: Thresholds, data: Any
) -> None:
    figures = alert_figures(found, NOW)
    acks = {
        f.alertname: AckFigures(n, data.draw(st.integers(0, n)))
        for f in figures
        for n in [data.draw(st.integers(0, f.occurrences))]
    }
    figures = with_acks(figures, acks)
    strict = Thresholds(
        loose.flaps + data.draw(st.integers(0, 5)),
        loose.unacknowledged + data.draw(st.integers(0, 5)),
        min(1.0, loose.false_positive_share + data.draw(st.floats(0, 1))),
        loose.false_positive_acks + data.draw(st.integers(0, 5)),
        loose.long_firing_seconds + data.draw(st.floats(0, 1e5)),
    )
    few = suggest(figures, {}, strict)
    many = suggest(figures, {}, loose)
    assert set(few) <= set(many)
    assert [KINDS.index(s.kind) for s in many] == sorted(KINDS.index(s.kind) for s in many)
    for s in many:
        f = next(f for f in figures if f.alertname == s.alertname)
        if s.kind == FLAPPING:
            assert f.resolved > loose.flaps
        elif s.kind == NEVER_ACKNOWLEDGED:
            assert f.acks is not None and f.acks.acknowledged == 0
            assert f.occurrences >= loose.unacknowledged


@given(st.floats(0, 1e6))
def test_the_suggested_extension_is_a_round_step_above_the_median(seconds: float) -> None:
    step = nice_above(seconds)
    assert step > seconds and parse_duration(format_duration(step)) == step


# ---- the report's totals -----------------------------------------------------------------------
REPORT = {
    "since": "2026-11-27T08:00:00.000000Z",
    "until": "2026-12-04T08:00:00.000000Z",
    "occurrences": 12,
    "acknowledged": 3,
    "false_positive_share": 1 / 3,
}


def test_the_report_totals_are_read() -> None:
    read = report_totals(REPORT)
    assert (read.occurrences, read.acknowledged) == (12, 3)
    assert read.until - read.since == timedelta(days=7)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"since": None}, "report.since: not a time"),
        ({"until": "soon"}, "report.until: not a time"),
        ({"occurrences": "12"}, "report.occurrences: expected a number"),
        ({"acknowledged": True}, "report.acknowledged"),
        ({"false_positive_share": "most"}, "report.false_positive_share"),
    ],
)
def test_a_report_of_another_shape_is_refused_by_field(change: dict[str, Any], says: str) -> None:
    with pytest.raises(MalformedRecord) as caught:
        report_totals({**REPORT, **change})
    assert says in str(caught.value)
