"""Validation of Alertmanager's version-4 webhook payload: what is accepted, what is refused."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard.responder.events import events_from_payload, iso, parse_iso
from tradeguard.responder.payload import (
    EARLIEST,
    LATEST,
    MAX_ALERTNAME,
    PayloadError,
    PayloadJSONError,
    PayloadValidationError,
    parse_payload,
)


def alert(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "firing",
        "labels": {
            "alertname": "RedisDown",
            "severity": "critical",
            "component": "redis",
            "instance": "127.0.0.1:6379",
        },
        "annotations": {"summary": "Redis is down.", "description": "No answer (threshold 5s)"},
        "startsAt": "2024-05-01T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
        "fingerprint": "1a30ba71cca2921f",
    }
    base.update(overrides)
    return base


def payload(*alerts: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    items = list(alerts) or [alert()]
    base: dict[str, Any] = {
        "version": "4",
        "groupKey": '{}:{alertname="RedisDown"}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in items) else "resolved",
        "receiver": "responder",
        "groupLabels": {"alertname": "RedisDown"},
        "commonLabels": {"alertname": "RedisDown"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": items,
    }
    base.update(overrides)
    return base


def raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def without(doc: dict[str, Any], *path: str | int) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return out


def problems(body: bytes) -> str:
    with pytest.raises(PayloadValidationError) as info:
        parse_payload(body)
    assert isinstance(info.value, PayloadError)
    return str(info.value)


def test_valid_firing_payload() -> None:
    p = parse_payload(raw(payload()))
    assert p.version == "4" and p.status == "firing" and p.receiver == "responder"
    (a,) = p.alerts
    assert a.alertname == "RedisDown"
    assert a.fingerprint == "1a30ba71cca2921f"
    # Go's nanoseconds are cut to microseconds; the zero endsAt means "still firing".
    assert a.starts_at == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert a.ends_at is None


def test_valid_resolved_payload_keeps_its_end_time() -> None:
    p = parse_payload(raw(payload(alert(status="resolved", endsAt="2024-05-01T12:05:00+02:00"))))
    assert p.status == "resolved"
    assert p.alerts[0].ends_at == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    doc = payload(alert(silenceURL="http://x", values={"B": 1.0}), orgId=1)
    assert parse_payload(raw(doc)).alerts[0].alertname == "RedisDown"


def test_truncated_alerts_is_optional_for_older_alertmanagers() -> None:
    assert parse_payload(raw(without(payload(), "truncatedAlerts"))).truncated_alerts == 0


def test_several_alerts_mixed_status() -> None:
    doc = payload(
        alert(),
        alert(fingerprint="bb", status="resolved", endsAt="2024-05-01T10:01:00Z"),
    )
    assert [a.status for a in parse_payload(raw(doc)).alerts] == ["firing", "resolved"]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (payload(version="3"), "version: unsupported payload version '3'"),
        (payload(version=4), "version: Input should be a valid string"),
        (without(payload(), "version"), "version: field required"),
        (without(payload(), "alerts"), "alerts: field required"),
        (without(payload(), "receiver"), "receiver: field required"),
        (without(payload(), "groupKey"), "groupKey: field required"),
        (payload(alerts=[]), "alerts: List should have at least 1 item"),
        (payload(status="pending"), "status: Input should be 'firing' or 'resolved'"),
        (payload(truncatedAlerts=-1), "truncatedAlerts: Input should be greater than or equal"),
        (without(payload(), "alerts", 0, "fingerprint"), "alerts[0].fingerprint: field required"),
        (without(payload(), "alerts", 0, "startsAt"), "alerts[0].startsAt: field required"),
        (without(payload(), "alerts", 0, "labels"), "alerts[0].labels: field required"),
        (payload(alert(fingerprint="")), "alerts[0].fingerprint: String should match pattern"),
        (payload(alert(fingerprint="not hex")), "alerts[0].fingerprint: String should match"),
        (payload(alert(status="unknown")), "alerts[0].status: Input should be 'firing'"),
        (payload(alert(labels={"severity": "critical"})), "needs a non-empty 'alertname' label"),
        (payload(alert(labels={"alertname": "X", "n": 1})), "alerts[0].labels.n: Input should be"),
        (payload(alert(annotations=["x"])), "alerts[0].annotations: Input should be"),
        (payload(alert(startsAt="2024-05-01T10:00:00")), "alerts[0].startsAt: Input should have"),
        (payload(alert(startsAt="yesterday")), "alerts[0].startsAt: Input should be a valid"),
        (payload(alert(startsAt=1714557600)), "alerts[0].startsAt: Input should be a valid"),
        (payload(alert(status="resolved")), "a resolved alert needs endsAt"),
        (
            payload(alert(), status="resolved"),
            "group status 'resolved' contradicts its alerts (some firing)",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_invalid_payloads_name_the_problem(doc: dict[str, Any], expected: str) -> None:
    assert expected in problems(raw(doc))


def test_every_problem_is_reported_not_just_the_first() -> None:
    doc = without(payload(version="5"), "alerts", 0, "fingerprint")
    message = problems(raw(doc))
    assert "version" in message and "alerts[0].fingerprint" in message
    with pytest.raises(PayloadValidationError) as info:
        parse_payload(raw(doc))
    assert len(info.value.problems) == 2


def test_one_bad_alert_refuses_the_whole_payload() -> None:
    doc = payload(alert(), alert(fingerprint="cc", labels={}))
    assert "alerts[1].labels" in problems(raw(doc))


def test_top_level_must_be_an_object() -> None:
    assert "payload: Input should be an object" in problems(b"[]")


def test_errors_do_not_echo_the_input() -> None:
    secret = "s3cr3t-value-that-must-not-leak"
    message = problems(raw(payload(version=secret)))
    assert "unsupported payload version" in message and secret not in message
    doc = payload(alert(labels={"alertname": "X", "k": 12345678901}))
    assert "12345678901" not in problems(raw(doc))


@pytest.mark.parametrize(
    "body", [b"", b"{", b"not json", b'{"version": "4",}', b"\xff\xfe", b'{"version": "4"']
)
def test_bad_json_is_its_own_error(body: bytes) -> None:
    with pytest.raises(PayloadJSONError, match="not valid JSON"):
        parse_payload(body)


# ---- timestamps: a sane range, and every accepted one storable as text and back ----------------
def resolved(starts_at: str, ends_at: str) -> dict[str, Any]:
    return payload(alert(status="resolved", startsAt=starts_at, endsAt=ends_at))


@pytest.mark.parametrize(
    ("given", "utc"),
    [
        ("2024-05-01T10:00:00+14:00", datetime(2024, 4, 30, 20, 0, tzinfo=UTC)),
        ("2024-05-01T10:00:00-23:59", datetime(2024, 5, 2, 9, 59, tzinfo=UTC)),
        ("2024-05-01T10:00:00.123456789Z", datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2000-01-01T00:00:00Z", datetime(2000, 1, 1, tzinfo=UTC)),
        ("1999-12-31T23:00:00-01:00", datetime(2000, 1, 1, tzinfo=UTC)),  # in range in UTC
        ("2199-12-31T23:59:59.999999Z", datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2200-01-01T01:00:00+02:00", datetime(2199, 12, 31, 23, 0, tzinfo=UTC)),
        ("2024-05-01 10:00:00z", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),  # pydantic takes it
    ],
)
def test_timestamps_in_range_are_accepted_whatever_their_offset(given: str, utc: datetime) -> None:
    (a,) = parse_payload(raw(resolved(given, given))).alerts
    assert a.starts_at == utc and a.ends_at == utc  # ending when it started is allowed
    event = events_from_payload(parse_payload(raw(resolved(given, given))))[0]
    assert parse_iso(iso(event.starts_at)) == utc and len(iso(event.starts_at)) == 27


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "expected"),
    [
        ("1999-12-31T23:59:59.999999Z", "2024-05-01T10:00:00Z", "alerts[0].startsAt: time must"),
        ("2200-01-01T00:00:00Z", "2200-01-01T00:00:00Z", "alerts[0].startsAt: time must lie"),
        ("1970-01-01T00:00:00Z", "2024-05-01T10:00:00Z", "alerts[0].startsAt: time must lie"),
        ("0001-01-01T00:00:00Z", "2024-05-01T10:00:00Z", "alerts[0].startsAt: startsAt is Go's"),
        ("0001-01-01T00:00:00+01:00", "2024-05-01T10:00:00Z", "alerts[0].startsAt: startsAt is"),
        ("9999-12-31T23:59:59-01:00", "2024-05-01T10:00:00Z", "alerts[0].startsAt: time must"),
        ("2024-05-01T23:59:60Z", "2024-05-02T10:00:00Z", "alerts[0].startsAt: Input should be"),
        ("2024-05-01T10:00:00Z", "2024-05-01T23:59:60Z", "alerts[0].endsAt: Input should be"),
        ("2024-05-01T10:00:00Z", "2300-01-01T00:00:00Z", "alerts[0].endsAt: time must lie"),
        ("2024-05-01T10:00:00Z", "9999-12-31T23:59:59-01:00", "alerts[0].endsAt: time must"),
        ("2024-05-01T10:00:00Z", "2024-05-01T09:59:59Z", "alerts[0].endsAt: a resolved alert"),
        ("2024-05-01T10:00:00Z", "2024-05-01T11:00:00+02:00", "cannot end before it started"),
        ("2024-05-01T10:00:00Z", "0001-01-01T00:00:00Z", "a resolved alert needs endsAt"),
    ],
)
def test_timestamps_out_of_range_or_inconsistent_are_refused_with_their_path(
    starts_at: str, ends_at: str, expected: str
) -> None:
    assert expected in problems(raw(resolved(starts_at, ends_at)))


def test_go_zero_time_is_legal_for_ends_at_only() -> None:
    (a,) = parse_payload(raw(payload(alert(endsAt="0001-01-01T00:00:00Z")))).alerts
    assert a.ends_at is None
    assert "startsAt is Go's zero time" in problems(
        raw(payload(alert(startsAt="0001-01-01T00:00:00Z")))
    )


def test_a_firing_alert_may_carry_a_future_end() -> None:
    """Some Alertmanager versions send a firing alert's expected end (now + resolve_timeout)."""
    (a,) = parse_payload(raw(payload(alert(endsAt="2024-05-01T10:05:00Z")))).alerts
    assert a.ends_at == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_minutes=st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
    nanos=st.integers(min_value=0, max_value=999),
)
def test_every_accepted_timestamp_survives_the_text_round_trip(
    moment: datetime, offset_minutes: int, nanos: int
) -> None:
    """Whatever the instant and offset: refused with the field's path, or stored as fixed-width
    UTC text (SQLite's form) that reads back as the same instant."""
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}{nanos:03d}"
    text += f"{sign}{hours:02d}:{minutes:02d}"
    try:
        parsed = parse_payload(raw(resolved(text, text)))
    except PayloadValidationError as exc:
        assert all(p.startswith("alerts[0].startsAt") for p in exc.problems[:1]), exc.problems
        return
    (event,) = events_from_payload(parsed)
    assert EARLIEST <= event.starts_at < LATEST
    stored = iso(event.starts_at)
    assert len(stored) == 27 and parse_iso(stored) == event.starts_at == event.ends_at


# ---- text: what no backend can store is made storable, the alert name is an identifier -------
def test_nul_in_labels_annotations_and_receiver_becomes_the_replacement_character() -> None:
    doc = payload(
        alert(
            labels={"alertname": "Redis\u0000Down", "in\u0000stance": "a\u0000b"},
            annotations={"summary": "x\u0000y"},
        ),
        receiver="chat\u0000",
    )
    p = parse_payload(raw(doc))
    (a,) = p.alerts
    assert a.labels == {"alertname": "Redis\ufffdDown", "in\ufffdstance": "a\ufffdb"}
    assert a.annotations == {"summary": "x\ufffdy"} and p.receiver == "chat\ufffd"
    assert "\u0000" not in json.dumps(events_from_payload(p)[0].to_json())


def test_ordinary_unicode_is_kept_as_sent() -> None:
    labels = {"alertname": "Latenz…", "instance": "🚀 東京", "note": "\ufeffzero\u200bwidth"}
    (a,) = parse_payload(raw(payload(alert(labels=labels)))).alerts
    assert a.labels == labels


def test_lone_surrogates_are_not_json() -> None:
    body = raw(payload(alert(labels={"alertname": "X", "v": "PLACEHOLDER"})))
    with pytest.raises(PayloadJSONError, match=r"surrogate|hex escape"):
        parse_payload(body.replace(b"PLACEHOLDER", b"\\ud800"))


def test_the_alert_name_is_capped() -> None:
    parse_payload(raw(payload(alert(labels={"alertname": "A" * MAX_ALERTNAME}))))
    message = problems(raw(payload(alert(labels={"alertname": "A" * (MAX_ALERTNAME + 1)}))))
    assert f"alerts[0].labels: the 'alertname' label is longer than {MAX_ALERTNAME}" in message
    assert "A" * 50 not in message
