"""The daily summary's arithmetic (tradeguard.responder.operations): records checked, what
fires grouped by severity and component, what changed since a moment, occurrences."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard.responder.events import iso
from tradeguard.responder.operations import (
    EventRecord,
    MalformedRecord,
    changes_since,
    event_from_json,
    events_from_json,
    group_firing,
    missing_at_responder,
    occurrences,
    severity_rank,
    start_of_day,
)

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def event(
    name: str,
    status: str = "firing",
    starts: timedelta = timedelta(0),
    lasted: timedelta | None = None,
    received: timedelta | None = None,
    fingerprint: str | None = None,
    severity: str | None = "critical",
    component: str | None = "redis",
) -> EventRecord:
    start = T0 + starts
    end = start + lasted if lasted is not None else None
    return EventRecord(
        fingerprint=fingerprint or f"{name}-{severity}-{component}",  # labels make it
        alertname=name,
        status=status,
        starts_at=start,
        ends_at=end if status == "resolved" else None,
        severity=severity,
        component=component,
        received_at=T0 + (received if received is not None else starts),
    )


def as_json(e: EventRecord) -> dict[str, Any]:
    """The record as /api/alerts/history serves it (AlertEvent.to_json's fields)."""
    return {
        "fingerprint": e.fingerprint,
        "alertname": e.alertname,
        "status": e.status,
        "starts_at": iso(e.starts_at),
        "ends_at": iso(e.ends_at) if e.ends_at else None,
        "severity": e.severity,
        "component": e.component,
        "instance": "127.0.0.1:6379",
        "labels": {},
        "annotations": {},
        "received_at": iso(e.received_at),
        "receiver": "chat",
    }


# ---- records -----------------------------------------------------------------------------------
def test_an_api_record_round_trips() -> None:
    e = event("RedisDown", "resolved", lasted=timedelta(minutes=3))
    assert event_from_json(as_json(e)) == e


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"alertname": None}, "alerts[0].alertname: expected a non-empty string"),
        ({"alertname": ""}, "alerts[0].alertname"),
        ({"status": "pending"}, "alerts[0].status: expected firing or resolved"),
        ({"starts_at": "yesterday"}, "alerts[0].starts_at: not a time"),
        ({"received_at": 5}, "alerts[0].received_at: expected a non-empty string"),
        ({"severity": 3}, "alerts[0].severity"),
    ],
)
def test_a_record_of_another_shape_is_refused_by_field(change: dict[str, Any], says: str) -> None:
    raw = {**as_json(event("RedisDown")), **change}
    with pytest.raises(MalformedRecord) as caught:
        events_from_json([raw])
    assert says in str(caught.value)


def test_a_record_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(MalformedRecord, match=r"alerts\[1\]: expected an object"):
        events_from_json([as_json(event("A")), "B"])


FIELD_VALUES = (
    st.none()
    | st.integers()
    | st.text(max_size=30)
    | st.sampled_from(
        ["firing", "resolved", "2026-12-04T08:00:00.000000Z", "2026-12-04T08:00:00+02:00", ""]
    )
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(as_json(event("A")))), FIELD_VALUES))
def test_damaged_records_are_read_or_refused_never_crash(change: dict[str, Any]) -> None:
    raw = {**as_json(event("A")), **change}
    try:
        e = event_from_json(raw)
    except MalformedRecord:
        return
    assert e.alertname and e.status in ("firing", "resolved")


# ---- occurrences ------------------------------------------------------------------------------
def test_occurrences_pair_firing_and_resolved_and_count_repeats_once() -> None:
    firing = event("A", received=timedelta(seconds=1))
    again = event("A", received=timedelta(seconds=5))  # a second Alertmanager, later
    resolved = event("A", "resolved", lasted=timedelta(minutes=2), received=timedelta(minutes=2))
    orphan = event("B", "resolved", lasted=timedelta(minutes=1))  # its firing event not fetched
    found = occurrences([resolved, again, orphan, firing])
    assert len(found) == 1
    (a,) = found
    assert a.notified_at == firing.received_at and a.ends_at == resolved.ends_at
    assert a.lasted(T0 + timedelta(days=1)) == 120


events_strategy = st.lists(
    st.builds(
        event,
        name=st.sampled_from(["A", "B", "C"]),
        status=st.sampled_from(["firing", "resolved"]),
        starts=st.integers(0, 5).map(lambda n: timedelta(minutes=n)),
        lasted=st.integers(0, 600).map(lambda n: timedelta(seconds=n)),
        received=st.integers(0, 900).map(lambda n: timedelta(seconds=n)),
        severity=st.sampled_from(["critical", "warning", "info", "page", None]),
        component=st.sampled_from(["redis", "engine", None]),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(events_strategy, st.randoms(use_true_random=False))
def test_occurrences_ignore_order_and_repeats(
    events: list[EventRecord], rnd: random.Random
) -> None:
    # The store holds one event per (fingerprint, startsAt, status): what a page can repeat
    events = list({(e.fingerprint, e.starts_at, e.status): e for e in events}.values())
    shuffled = events + events[: len(events) // 2]
    rnd.shuffle(shuffled)
    assert occurrences(shuffled) == occurrences(events)
    keys = {(e.fingerprint, e.starts_at) for e in events if e.status == "firing"}
    assert {(o.fingerprint, o.starts_at) for o in occurrences(events)} == keys


# ---- what fires now -----------------------------------------------------------------------------
def test_firing_is_grouped_by_severity_then_component() -> None:
    firing = [
        event("RedisMemoryHigh", severity="warning", component="redis", fingerprint="1"),
        event("RedisDown", component="redis", fingerprint="2"),
        event("RedisDown", component="redis", fingerprint="3"),
        event("SignalBacklog", component="signal_stream", fingerprint="4"),
        event("RedisNoClients", component="redis", fingerprint="5"),
        event("Odd", severity=None, component=None, fingerprint="6"),
        event("Paged", severity="page", component="x", fingerprint="7"),
    ]
    groups = group_firing(firing)
    assert [(g.severity, g.component, g.count) for g in groups] == [
        ("critical", "redis", 3),
        ("critical", "signal_stream", 1),
        ("warning", "redis", 1),
        ("page", "x", 1),
        ("-", "-", 1),
    ]
    assert groups[0].alerts == (("RedisDown", 2), ("RedisNoClients", 1))


@settings(max_examples=200, deadline=None)
@given(events_strategy)
def test_every_firing_alert_is_in_exactly_one_group(events: list[EventRecord]) -> None:
    groups = group_firing(events)
    assert sum(g.count for g in groups) == len(events)
    assert all(g.count == sum(n for _, n in g.alerts) for g in groups)
    keys = [(g.severity, g.component) for g in groups]
    assert len(set(keys)) == len(keys)
    ranks = [severity_rank(g.severity) for g in groups]
    assert ranks == sorted(ranks)


# ---- what changed -------------------------------------------------------------------------------
def test_changes_count_starts_and_resolutions_since_the_moment() -> None:
    since = T0
    before = event("Old", starts=timedelta(hours=-3), fingerprint="o")
    old_resolved = event(
        "Old", "resolved", starts=timedelta(hours=-3), lasted=timedelta(hours=4), fingerprint="o"
    )
    a1 = event("A", starts=timedelta(minutes=5), fingerprint="a1")
    a1_again = event("A", starts=timedelta(minutes=5), fingerprint="a1", received=timedelta(1))
    a1_end = event(
        "A", "resolved", starts=timedelta(minutes=5), lasted=timedelta(minutes=1), fingerprint="a1"
    )
    a2 = event("A", starts=timedelta(minutes=20), fingerprint="a2")
    b = event("B", starts=timedelta(minutes=30), fingerprint="b")
    changes = changes_since([before, old_resolved, a1, a1_again, a1_end, a2, b], since, [a2])
    assert changes.started == (("A", 2), ("B", 1))
    assert changes.started_total == 3 and changes.still_firing == 1
    assert changes.resolved == (("A", 1), ("Old", 1)) and changes.resolved_total == 2


def test_the_day_starts_at_utc_midnight() -> None:
    assert start_of_day(datetime(2026, 12, 4, 23, 59, tzinfo=UTC)) == datetime(
        2026, 12, 4, tzinfo=UTC
    )
    # 01:30 on the 5th in UTC+3 is still the 4th in UTC
    east = datetime(2026, 12, 5, 1, 30, tzinfo=timezone(timedelta(hours=3)))
    assert start_of_day(east) == datetime(2026, 12, 4, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(events_strategy, st.integers(-10, 10).map(lambda n: T0 + timedelta(minutes=n)))
def test_a_later_moment_never_counts_more_changes(
    events: list[EventRecord], since: datetime
) -> None:
    now = changes_since(events, since)
    later = changes_since(events, since + timedelta(minutes=1))
    assert later.started_total <= now.started_total
    assert later.resolved_total <= now.resolved_total
    assert now.still_firing == 0  # nothing said to fire now


def test_what_prometheus_fires_but_the_responder_lacks() -> None:
    at_responder = [event("RedisDown")]
    assert missing_at_responder(
        ["Watchdog", "RedisDown", "NoLeader", "NoLeader"], at_responder
    ) == ["NoLeader"]
