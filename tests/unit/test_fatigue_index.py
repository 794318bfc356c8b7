"""The fatigue index: each alert against the operator on call when it arrived, divided by the
shifts they were on call for, quiet ones included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradeguard.responder.history.base import Ack, Occurrence
from tradeguard.responder.report import effectiveness
from tradeguard.responder.roster import parse_roster

ROSTER = parse_roster(
    """
shifts:
  - {name: day, start: "08:00", end: "20:00"}
  - {name: night, start: "20:00", end: "08:00"}
rotations:
  - from: 2026-11-30
    length_days: 1
    on_call:
      day: [alice]
      night: [bob, carol]
"""
)
SINCE = datetime(2026, 12, 1, 8, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=2) - timedelta(seconds=1)  # exactly four shifts


def occurrence(
    n: int, notified: datetime, severity: str = "warning", acked: bool = False
) -> Occurrence:
    ack = Ack(f"f{n}", notified, notified + timedelta(minutes=3), "x", False, "") if acked else None
    return Occurrence(f"f{n}", "A", severity, notified, notified, None, ack)


def test_alerts_count_against_whoever_was_on_call_and_quiet_shifts_count_too() -> None:
    window = [
        occurrence(1, SINCE + timedelta(hours=1), "critical", acked=True),  # 12-01 day: alice
        occurrence(2, SINCE + timedelta(hours=2)),  # alice
        occurrence(3, SINCE + timedelta(hours=14)),  # the night of 12-01
        occurrence(4, SINCE + timedelta(days=1, hours=1)),  # 12-02 day: alice
    ]
    report = effectiveness(window, SINCE, UNTIL, ROSTER)
    fatigue = report.fatigue
    assert fatigue.roster and fatigue.nobody_on_call == 0
    by_name = {o.operator: o for o in fatigue.operators}
    night_of_first = ROSTER.operator("night", SINCE.date())
    other_night = ROSTER.operator("night", SINCE.date() + timedelta(days=1))
    assert {night_of_first, other_night} == {"bob", "carol"}
    alice = by_name["alice"]
    assert (alice.shifts, alice.alerts, alice.critical, alice.acknowledged) == (2, 3, 1, 1)
    assert alice.per_shift == 1.5
    assert (alice.busiest_shift, alice.busiest_alerts) == ("12-01 day", 2)
    assert by_name[night_of_first].alerts == 1 and by_name[night_of_first].shifts == 1
    quiet = by_name[other_night]
    assert (quiet.alerts, quiet.shifts, quiet.per_shift, quiet.busiest_shift) == (0, 1, 0.0, None)
    assert fatigue.operators[0].operator == "alice"  # the most tired first
    assert [s.alerts for s in fatigue.shifts] == [2, 1, 1, 0]
    as_json = report.to_json()["fatigue"]
    assert isinstance(as_json, dict) and as_json["operators"][0]["alerts_per_shift"] == 1.5


def test_alerts_when_the_roster_names_nobody_are_counted_apart() -> None:
    roster = parse_roster(
        "shifts: [{name: office, start: '09:00', end: '17:00'}]\n"
        "rotations: [{from: 2026-12-02, on_call: {office: [dana]}}]\n"
    )
    window = [
        occurrence(1, datetime(2026, 12, 1, 10, tzinfo=UTC)),  # before the first rotation
        occurrence(2, datetime(2026, 12, 2, 20, tzinfo=UTC)),  # after hours: a gap
        occurrence(3, datetime(2026, 12, 2, 10, tzinfo=UTC)),  # dana
    ]
    fatigue = effectiveness(window, SINCE, UNTIL, roster).fatigue
    assert fatigue.nobody_on_call == 2
    assert [(o.operator, o.alerts, o.shifts) for o in fatigue.operators] == [("dana", 1, 1)]


def test_without_a_roster_no_operator_is_named_and_the_shifts_are_8_hours() -> None:
    report = effectiveness([occurrence(1, SINCE + timedelta(hours=1))], SINCE, UNTIL)
    assert not report.fatigue.roster and report.fatigue.operators == []
    assert report.to_json()["fatigue"] == {"roster": False, "operators": [], "nobody_on_call": None}
    loads = report.fatigue.shifts
    assert len(loads) == 6 and sum(s.alerts for s in loads) == 1
    assert loads[0].label == "12-01 08-16" and loads[0].alerts == 1
