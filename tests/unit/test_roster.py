"""The on-call roster: which shift a moment falls in, who covers it, and every mistake in the
file reported as one clear message."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeguard.errors import ConfigError
from tradeguard.responder.roster import Roster, RosterSource, load_roster, parse_roster

ROSTER = """
timezone: Europe/London
shifts:
  - {name: day, start: "08:00", end: "20:00"}
  - {name: night, start: "20:00", end: "08:00"}
rotations:
  - from: 2026-11-30
    length_days: 7
    on_call:
      day: [alice, bob]
      night: [carol]
  - from: 2027-01-04
    on_call:
      day: [dave]
      night: [carol]
overrides:
  - {date: 2026-12-25, shift: day, operator: erin}
"""


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_each_moment_has_its_shift_and_the_operator_of_that_weeks_turn() -> None:
    roster = parse_roster(ROSTER)
    first_week = roster.slot_at(at(2026, 12, 1, 9))
    assert first_week is not None and (first_week.name, first_week.operator) == ("day", "alice")
    second_week = roster.slot_at(at(2026, 12, 8, 9))
    assert second_week is not None and second_week.operator == "bob"
    third_week = roster.slot_at(at(2026, 12, 15, 9))
    assert third_week is not None and third_week.operator == "alice"


def test_a_night_shift_belongs_to_the_date_it_started_on() -> None:
    roster = parse_roster(ROSTER)
    slot = roster.slot_at(at(2026, 12, 2, 3))  # 03:00 on the 2nd: the night of the 1st
    assert slot is not None
    assert (slot.name, slot.day, slot.operator) == ("night", date(2026, 12, 1), "carol")
    assert slot.start == at(2026, 12, 1, 20) and slot.end == at(2026, 12, 2, 8)


def test_an_override_replaces_one_shift_and_a_new_rotation_leaves_the_past_alone() -> None:
    roster = parse_roster(ROSTER)
    christmas = roster.slot_at(at(2026, 12, 25, 10))
    assert christmas is not None and christmas.operator == "erin"
    boxing_day = roster.slot_at(at(2026, 12, 26, 10))
    assert boxing_day is not None and boxing_day.operator in ("alice", "bob")
    after = roster.slot_at(at(2027, 1, 5, 10))
    assert after is not None and after.operator == "dave"
    before_any = roster.slot_at(at(2026, 11, 1, 10))
    assert before_any is not None and before_any.operator is None


def test_shifts_follow_local_time_across_a_clock_change() -> None:
    roster = parse_roster(ROSTER)
    summer = roster.slot_at(at(2026, 7, 1, 7, 30))  # 08:30 BST: the day shift
    assert summer is not None and summer.name == "day"
    assert summer.start == at(2026, 7, 1, 7)
    winter = roster.slot_at(at(2026, 12, 1, 7, 30))  # 07:30 GMT: still the night shift
    assert winter is not None and winter.name == "night"


def test_a_gap_between_shifts_has_no_shift() -> None:
    roster = parse_roster(
        "shifts:\n  - {name: office, start: '09:00', end: '17:00'}\n"
        "rotations:\n  - {from: 2026-01-01, on_call: {office: [alice]}}\n"
    )
    assert roster.slot_at(at(2026, 12, 1, 20)) is None
    found = roster.slot_at(at(2026, 12, 1, 10))
    assert found is not None and found.operator == "alice"


def test_slots_cover_the_window_in_order_quiet_ones_included() -> None:
    roster = parse_roster(ROSTER)
    slots = roster.slots(at(2026, 12, 1, 0), at(2026, 12, 3, 0))
    assert [s.label for s in slots] == [
        "11-30 night",
        "12-01 day",
        "12-01 night",
        "12-02 day",
        "12-02 night",
    ]
    assert slots == sorted(slots)


@given(
    moment=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    )
)
def test_every_moment_lies_in_exactly_the_slot_found_for_it(moment: datetime) -> None:
    roster = parse_roster(ROSTER)
    slot = roster.slot_at(moment)
    assert slot is not None  # day and night cover the whole day
    assert slot.start <= moment < slot.end
    around = roster.slots(moment - timedelta(hours=1), moment + timedelta(hours=1))
    assert [s for s in around if s.start <= moment < s.end] == [slot]


def test_without_a_roster_the_report_keeps_three_8_hour_utc_shifts_and_names_nobody() -> None:
    roster = Roster.default()
    assert not roster.has_operators
    slot = roster.slot_at(at(2026, 12, 1, 17))
    assert slot is not None and slot.start == at(2026, 12, 1, 16) and slot.operator is None
    assert slot.end == at(2026, 12, 2, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shifts: []", "shifts"),
        ("- a list", "expected a mapping"),
        ("shifts: [{name: a, start: '25:00', end: '08:00'}]", "not a time of day"),
        ("shifts: [{name: a, start: '08:00', end: '08:00'}]", "start and end are equal"),
        (
            "shifts: [{name: a, start: '08:00', end: '20:00'}, {name: b, start: '19:00', "
            "end: '23:00'}]",
            "shifts a and b overlap",
        ),
        (
            "shifts: [{name: a, start: '08:00', end: '20:00'}, {name: a, start: '20:00', "
            "end: '08:00'}]",
            "unique",
        ),
        (
            "shifts: [{name: a, start: '08:00', end: '20:00'}]\n"
            "rotations: [{from: 2026-01-01, on_call: {b: [x]}}]",
            "unknown shift b",
        ),
        (
            "shifts: [{name: a, start: '08:00', end: '20:00'}]\n"
            "rotations: [{from: 2026-01-01, on_call: {a: ['<script>']}}]",
            "rotations.0.on_call.a.0",
        ),
        ("timezone: Mars/Olympus\nshifts: [{name: a, start: '08:00', end: '20:00'}]", "Mars"),
        ("shifts: [{name: a, start: '08:00', end: '20:00', colour: red}]", "colour"),
        ("shifts: [unclosed", "not valid YAML"),
    ],
)
def test_a_mistake_in_the_file_is_one_clear_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_roster(text, "roster.yml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("roster.yml") or "Mars" in str(caught.value)


def test_the_source_rereads_a_changed_file_and_keeps_the_last_good_one_on_a_broken_edit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "roster.yml"
    path.write_text(ROSTER)
    source = RosterSource(path)
    assert source.current().operator("day", date(2026, 12, 1)) == "alice"
    path.write_text(ROSTER.replace("[alice, bob]", "[zoe]"))
    bump = path.stat().st_mtime + 5
    os.utime(path, (bump, bump))
    assert source.current().operator("day", date(2026, 12, 1)) == "zoe"
    path.write_text("shifts: [unclosed")
    os.utime(path, (bump + 5, bump + 5))
    assert source.current().operator("day", date(2026, 12, 1)) == "zoe"
    assert source.problem is not None and "still using the roster read before" in source.problem


def test_a_missing_roster_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_roster(tmp_path / "absent.yml")
