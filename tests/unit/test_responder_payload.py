"""Validation of Alertmanager's version-4 webhook payload: what is accepted, what is refused."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tradeguard.responder.payload import (
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
    p = parse_payload(raw(payload(alert(status="resolved", endsAt="2024-05-01T10:05:00+02:00"))))
    assert p.status == "resolved"
    assert p.alerts[0].ends_at == datetime(2024, 5, 1, 8, 5, tzinfo=UTC)


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
