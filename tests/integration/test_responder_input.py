"""The responder takes any input: a client error is a 4xx with a JSON reason, never a 5xx, and
nothing it stores becomes unreadable; its PostgreSQL statements are bounded in time; history is
pruned; the report reads only its window.

Real responders on free loopback ports, real SQLite and PostgreSQL. The property-based tests
at the end throw generated requests (methods, paths, query strings, headers, bodies, chunked
or not, lying about their length) at every route and check after each one that the read API
still answers.
"""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from responder_harness import (
    FINGERPRINT,
    TOKEN,
    Responder,
    StartResponder,
    alert,
    body,
    fresh_database,
    payload,
)

from tradeguard.metrics.catalog import Metrics
from tradeguard.process import wait_until
from tradeguard.process.services import PostgresServer
from tradeguard.responder.app import ACK_MAX_BYTES, MAX_ALERTNAME_PARAM
from tradeguard.responder.events import AlertEvent
from tradeguard.responder.history import AlertHistory, SQLiteHistory, open_history
from tradeguard.responder.history.base import HistoryError
from tradeguard.responder.history.postgres import PostgresHistory
from tradeguard.responder.notification import Notification
from tradeguard.responder.outbox import Attempt, OutboxItem, Outcome
from tradeguard.responder.payload import AlertStatus
from tradeguard.responder.runtime import PRUNE_INTERVAL, ResponderRuntime
from tradeguard.responder.service import ResponderServer, ResponderSettings

AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ_ROUTES = (
    "/api/alerts/history?limit=1000",
    "/api/alerts/firing",
    "/api/report",
    "/api/notifications",
)


def rows(history_url: str, table: str) -> int:
    """Rows in ``table``, read straight from the database."""
    if history_url.startswith("sqlite:///"):
        with sqlite3.connect(history_url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    with psycopg.connect(history_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
        assert row is not None
        return int(row[0])


def post_json(r: Responder, path: str, content: bytes | Iterator[bytes], **headers: str) -> Any:
    hdrs = {**AUTH, "Content-Type": "application/json", **headers}
    return httpx.post(r.url + path, content=content, headers=hdrs, timeout=10)


def assert_readable(r: Responder) -> None:
    for route in READ_ROUTES:
        response = httpx.get(r.url + route, headers=AUTH, timeout=30)
        assert response.status_code == 200, (route, response.text[:500])


# ---- timestamps ------------------------------------------------------------------------------
EDGE_TIMES = [
    ("2024-05-01T10:00:00+14:00", "2024-04-30T20:00:00.000000Z"),
    ("2024-05-01T10:00:00-23:59", "2024-05-02T09:59:00.000000Z"),
    ("2024-05-01T10:00:00.123456789Z", "2024-05-01T10:00:00.123456Z"),
    ("2000-01-01T00:00:00Z", "2000-01-01T00:00:00.000000Z"),
    ("1999-12-31T23:00:00-01:00", "2000-01-01T00:00:00.000000Z"),
    ("2199-12-31T23:59:59.999999Z", "2199-12-31T23:59:59.999999Z"),
    ("2200-01-01T01:00:00+02:00", "2199-12-31T23:00:00.000000Z"),
    ("2024-05-01 10:00:00,5z", "2024-05-01T10:00:00.500000Z"),
]


def test_edge_timestamps_are_stored_and_read_back_by_both_backends(
    start_responder: StartResponder, history_url: str
) -> None:
    r = start_responder(history_url)
    alerts = [
        alert("resolved", startsAt=text, endsAt=text, fingerprint=f"{i:016x}")
        for i, (text, _) in enumerate(EDGE_TIMES)
    ]
    firing = [
        alert(startsAt=text, fingerprint=f"{i:016x}") for i, (text, _) in enumerate(EDGE_TIMES)
    ]
    assert r.post(body(payload(*firing))).json() == {"accepted": 8, "duplicates": 0}
    assert r.post(body(payload(*alerts))).json() == {"accepted": 8, "duplicates": 0}
    shown = r.get("/api/alerts/history", limit=100).json()["alerts"]
    by_key = {(e["fingerprint"], e["status"]): e for e in shown}
    for i, (_, expected) in enumerate(EDGE_TIMES):
        assert by_key[(f"{i:016x}", "firing")]["starts_at"] == expected
        assert by_key[(f"{i:016x}", "resolved")]["starts_at"] == expected
        assert by_key[(f"{i:016x}", "resolved")]["ends_at"] == expected
    # Stored once per instant: the same instant written with another offset is a duplicate.
    again = alert(startsAt="2024-05-01T06:00:00+10:00", fingerprint=f"{0:016x}")
    assert r.post(body(payload(again))).json() == {"accepted": 0, "duplicates": 1}
    report = r.get("/api/report", days=1).json()
    assert report["occurrences"] == 8 and report["resolved"] == 8
    assert report["mttr_seconds"] == 0
    assert_readable(r)


@pytest.mark.parametrize(
    ("alert_doc", "path"),
    [
        (alert(startsAt="2024-05-01T23:59:60Z"), "alerts[0].startsAt"),  # pydantic: no leap s
        (alert(startsAt="1999-12-31T23:59:59Z"), "alerts[0].startsAt"),
        (alert(startsAt="2200-01-01T00:00:00Z"), "alerts[0].startsAt"),
        (alert(startsAt="0001-01-01T00:00:00Z"), "alerts[0].startsAt"),
        (alert(startsAt="0001-01-01T00:00:00+01:00"), "alerts[0].startsAt"),
        (alert(startsAt="9999-12-31T23:59:59-01:00"), "alerts[0].startsAt"),
        (alert(endsAt="2999-01-01T00:00:00Z"), "alerts[0].endsAt"),
        (alert("resolved", endsAt="2024-05-01T09:00:00Z"), "alerts[0].endsAt"),
    ],
)
def test_timestamps_out_of_range_are_422_with_the_field_path(
    start_responder: StartResponder, alert_doc: dict[str, Any], path: str
) -> None:
    r = start_responder()
    response = r.post(body(payload(alert_doc)))
    assert response.status_code == 422, response.text
    assert response.json()["problems"][0].startswith(path + ":")
    assert r.stored() == 0


# ---- text no backend can store raw -----------------------------------------------------------
def test_nul_and_odd_unicode_in_labels_are_stored_readably(
    start_responder: StartResponder, history_url: str
) -> None:
    r = start_responder(history_url)
    labels = {
        "alertname": "Odd\u0000Name",
        "severity": "crit\u0000ical",
        "instance": "🚀 東京\u200b\ufeff",
        "k\u0000ey": "\u0000",
        "rtl": "\u202eevil",
        "": "empty key",
    }
    doc = payload(alert(labels=labels, annotations={"summary": "a\u0000b" * 1000}))
    response = r.post(body(doc))
    assert response.status_code == 200, response.text
    (stored,) = r.get("/api/alerts/history").json()["alerts"]
    assert stored["alertname"] == "Odd\ufffdName" and stored["severity"] == "crit\ufffdical"
    assert stored["labels"]["k\ufffdey"] == "\ufffd" and stored["labels"][""] == "empty key"
    assert stored["labels"]["instance"] == "🚀 東京\u200b\ufeff"
    assert stored["annotations"]["summary"] == "a\ufffdb" * 1000
    assert r.get("/api/alerts/history", alertname="Odd\ufffdName").json()["count"] == 1
    r.wait_notified(1)
    assert_readable(r)


def test_lone_surrogates_are_refused_as_bad_json(start_responder: StartResponder) -> None:
    r = start_responder()
    raw = body(payload(alert(labels={"alertname": "X", "v": "SURROGATE"})))
    for escape in (b"\\ud800", b"\\udfff", b"\\udc00\\ud800"):
        response = r.post(raw.replace(b"SURROGATE", escape))
        assert response.status_code == 400 and "JSON" in response.json()["error"]
    raw_bytes = raw.replace(b"SURROGATE", b"\xed\xa0\x80")  # a surrogate encoded as UTF-8
    assert r.post(raw_bytes).status_code == 400
    assert r.stored() == 0


def test_a_long_alert_name_is_refused(start_responder: StartResponder, history_url: str) -> None:
    r = start_responder(history_url)
    long_name = alert(labels={"alertname": "Ω" * 2000})
    response = r.post(body(payload(long_name)))
    assert response.status_code == 422 and "alertname" in response.json()["error"]
    # Long values elsewhere are fine (PostgreSQL indexes only the alert name).
    wide = alert(labels={"alertname": "Wide", "instance": "Ω" * 50_000})
    assert r.post(body(payload(wide))).status_code == 200
    assert_readable(r)


# ---- acknowledgements: streamed size limit, content type, case-insensitive fingerprints ----------
def test_ack_enforces_its_limit_while_streaming(start_responder: StartResponder) -> None:
    r = start_responder()

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked
        yield b'{"fingerprint": "' + FINGERPRINT.encode() + b'", "by": "ana", "note": "'
        for _ in range(32):  # past the limit, within what is drained before answering
            yield b"x" * 1024
        yield b'"}'

    chunked = post_json(r, "/api/alerts/ack", chunks())
    assert chunked.status_code == 413, chunked.text
    assert str(ACK_MAX_BYTES) in chunked.json()["error"]
    declared = post_json(r, "/api/alerts/ack", b"{" + b" " * ACK_MAX_BYTES + b"}")
    assert declared.status_code == 413
    # A chunked body under the limit is read in full.
    r.post(body(payload()))
    small = post_json(
        r, "/api/alerts/ack", iter([b'{"fingerprint": "', FINGERPRINT.encode(), b'", "by": "ana"}'])
    )
    assert small.status_code == 200, small.text


@pytest.mark.parametrize("path", ["/alertmanager/webhook", "/api/alerts/ack"])
def test_a_chunked_body_just_over_the_limit_is_a_413(
    start_responder: StartResponder, path: str
) -> None:
    """The chunk that crosses the limit may be the last one (the server has the whole body by
    the time it reads): the rest must be drained from the same stream, not a second one."""
    r = start_responder(max_body_bytes=64 * 1024)
    limit = 64 * 1024 if path == "/alertmanager/webhook" else ACK_MAX_BYTES
    for size in (limit + 1, limit + 100, 2 * limit):
        content = b"{" + b" " * (size - 2) + b"}"
        response = post_json(r, path, iter([content[:10], content[10:]]))
        assert response.status_code == 413, (size, response.text)
        assert str(limit) in response.json()["error"]
    assert r.counter("tradeguard_http_requests_total", status="5xx") == 0


def test_ack_checks_content_type_json_and_fields(start_responder: StartResponder) -> None:
    r = start_responder()
    r.post(body(payload()))
    good = json.dumps({"fingerprint": FINGERPRINT, "by": "ana"}).encode()
    plain = post_json(r, "/api/alerts/ack", good, **{"Content-Type": "text/plain"})
    assert plain.status_code == 415 and "application/json" in plain.json()["error"]
    missing = httpx.post(r.url + "/api/alerts/ack", content=good, headers=AUTH, timeout=10)
    assert missing.status_code == 415
    not_json = post_json(r, "/api/alerts/ack", b'{"fingerprint": ')
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
    for bad in (
        {"fingerprint": FINGERPRINT, "by": "an\u0000a"},
        {"fingerprint": FINGERPRINT, "by": "ana\nbo"},
        {"fingerprint": FINGERPRINT, "by": "ana", "note": "bell\u0007"},
        {"fingerprint": FINGERPRINT, "by": "ana", "extra": 1},
        {"fingerprint": "xyz", "by": "ana"},
    ):
        refused = post_json(r, "/api/alerts/ack", json.dumps(bad).encode())
        assert refused.status_code == 422, (bad, refused.text)
        assert isinstance(refused.json()["error"], str)
    multi_line = {"fingerprint": FINGERPRINT, "by": "ana", "note": "line 1\n\tline 2"}
    assert post_json(r, "/api/alerts/ack", json.dumps(multi_line).encode()).status_code == 200
    assert_readable(r)


def test_fingerprints_are_case_insensitive(start_responder: StartResponder) -> None:
    r = start_responder()
    assert r.post(body(payload(alert(fingerprint=FINGERPRINT.upper())))).status_code == 200
    upper = {"fingerprint": FINGERPRINT.upper(), "by": "ana"}
    acked = post_json(r, "/api/alerts/ack", json.dumps(upper).encode())
    assert acked.status_code == 200, acked.text
    assert acked.json()["fingerprint"] == FINGERPRINT
    lower = {"fingerprint": FINGERPRINT, "by": "bo"}
    assert post_json(r, "/api/alerts/ack", json.dumps(lower).encode()).json()["acked_by"] == "ana"
    assert r.get("/api/report").json()["acknowledged"] == 1
    unknown = post_json(
        r, "/api/alerts/ack", json.dumps({"fingerprint": "ABC", "by": "x"}).encode()
    )
    assert unknown.status_code == 404 and "abc" in unknown.json()["error"]


# ---- strict query strings ----------------------------------------------------------------------
BAD_QUERIES: list[tuple[str, list[tuple[str, str]], str]] = [
    ("/api/alerts/firing", [("limit", "5")], "unknown query parameter(s) 'limit'"),
    ("/api/alerts/history", [("limt", "5")], "unknown query parameter(s) 'limt'"),
    ("/api/alerts/history", [("limit", "5"), ("limit", "500")], "more than once: limit"),
    ("/api/alerts/history", [("alertname", "a"), ("alertname", "b")], "more than once"),
    ("/api/alerts/history", [("limit", "+5")], "limit must be an integer from 1 to 1000"),
    ("/api/alerts/history", [("limit", "٣")], "limit must be"),  # Arabic-Indic three
    ("/api/alerts/history", [("limit", "³")], "limit must be"),  # str.isdigit() says yes
    ("/api/alerts/history", [("limit", " 5")], "limit must be"),
    ("/api/alerts/history", [("limit", "5 ")], "limit must be"),
    ("/api/alerts/history", [("limit", "")], "limit must be"),
    ("/api/alerts/history", [("limit", "1" * 400)], "limit must be"),
    ("/api/alerts/history", [("limit", "0x10")], "limit must be"),
    ("/api/alerts/history", [("alertname", "A" * (MAX_ALERTNAME_PARAM + 1))], "at most 200"),
    ("/api/alerts/history", [("alertname", "Redis\u0000Down")], "control characters"),
    ("/api/alerts/history", [("alertname", "Redis\nDown")], "control characters"),
    ("/api/report", [("days", "7"), ("days", "7")], "more than once: days"),
    ("/api/report", [("days", "٧")], "days must be an integer from 1 to 90"),
    ("/api/report", [("days", "91")], "days must be"),
    ("/api/report", [("since", "1")], "unknown query parameter(s) 'since'"),
    ("/api/notifications", [("limit", "1"), ("limit", "2")], "more than once: limit"),
    ("/api/notifications", [("state", "sent"), ("state", "gone")], "state must be one of"),
    ("/api/notifications", [("stat", "sent"), ("x" * 500, "")], "'stat', 'xxxxxxxx"),
]


@pytest.mark.parametrize(
    ("path", "params", "message"), BAD_QUERIES, ids=[f"{p}?{q}" for p, q, _ in BAD_QUERIES]
)
def test_query_strings_are_parsed_strictly(
    start_responder: StartResponder, path: str, params: list[tuple[str, str]], message: str
) -> None:
    r = start_responder()
    response = httpx.get(r.url + path, params=params, headers=AUTH, timeout=10)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert len(response.text) < 1000  # a long parameter name is not echoed in full


def test_well_formed_query_strings_still_work(start_responder: StartResponder) -> None:
    r = start_responder()
    r.post(body(payload()))
    history = "/api/alerts/history"
    assert r.get(history, limit="0005").json()["count"] == 1
    assert r.get(history, alertname="").json()["count"] == 1  # empty: no filter
    assert r.get(history, alertname="A" * MAX_ALERTNAME_PARAM).json()["count"] == 0
    assert r.get(history, alertname="RedisTradeStateLatencyHigh").json()["count"] == 1
    twice = [("state", "sent"), ("state", "pending"), ("state", "sent")]
    response = httpx.get(r.url + "/api/notifications", params=twice, headers=AUTH, timeout=10)
    assert response.status_code == 200
    assert r.get("/api/report", days="90").status_code == 200
    # Health and metrics take no parameters and ignore any (probes and scrapers add their own).
    assert httpx.get(r.url + "/healthz?verbose=1", timeout=10).status_code == 200


# ---- /healthz tells nothing of where the store is -----------------------------------------------
def test_health_of_a_failing_sqlite_store_shows_no_path(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    where = tmp_path / "secret-place-71c3"
    r = start_responder(f"sqlite:///{where / 'history.sqlite3'}")
    r.server.history.close()
    for path, token in (("/healthz", None), ("/api/alerts/firing", TOKEN), ("/api/report", TOKEN)):
        response = r.get(path, token=token)
        assert response.status_code == 503
        assert "secret-place" not in response.text and str(tmp_path) not in response.text
        assert response.json()["error"] == "alert history unavailable"


def test_health_of_a_failing_postgres_store_shows_no_host_or_user(
    start_responder: StartResponder, postgres: PostgresServer
) -> None:
    user, database = f"pgsecretuser{uuid.uuid4().hex[:6]}", f"pgsecretdb{uuid.uuid4().hex[:6]}"
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{user}" LOGIN'.encode())
        admin.execute(f'CREATE DATABASE "{database}" OWNER "{user}"'.encode())
    url = f"postgresql://{user}@127.0.0.1:{postgres.port}/{database}"
    r = start_responder(url)
    assert r.get("/healthz", token=None).status_code == 200
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f'ALTER ROLE "{user}" NOLOGIN'.encode())
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (user,)
        )
    health = r.get("/healthz", token=None)
    assert health.status_code == 503, health.text
    for path in ("/api/alerts/firing", "/api/alerts/history", "/api/notifications"):
        refused = r.get(path)
        assert refused.status_code == 503
        assert refused.json() == {"error": "alert history unavailable"}
    for text in (health.text, refused.text):
        for secret in (user, database, str(postgres.port), "127.0.0.1", "postgresql"):
            assert secret not in text, (secret, text)
    with psycopg.connect(postgres.url, autocommit=True) as admin:  # let stop() close cleanly
        admin.execute(f'ALTER ROLE "{user}" LOGIN'.encode())


# ---- PostgreSQL statements are bounded in time --------------------------------------------------
def event(
    fingerprint: str, status: AlertStatus = "firing", received: datetime | None = None, **kw: Any
) -> AlertEvent:
    """An event as the intake would store it (received_at chosen by the test)."""
    starts = kw.pop("starts_at", datetime(2024, 5, 1, 10, tzinfo=UTC))
    return AlertEvent(
        fingerprint=fingerprint,
        alertname=kw.pop("alertname", "TestAlert"),
        status=status,
        starts_at=starts,
        ends_at=kw.pop("ends_at", starts + timedelta(minutes=5) if status == "resolved" else None),
        severity="warning",
        component="redis",
        instance="h:1",
        labels={"alertname": "TestAlert"},
        annotations={},
        received_at=received or datetime.now(UTC),
        receiver="test",
    )


def test_a_hung_postgres_statement_fails_within_the_timeout(postgres: PostgresServer) -> None:
    url = fresh_database(postgres)
    history = PostgresHistory(url, timeout=1.0)
    try:
        with psycopg.connect(url) as blocker:  # holds the lock until the block ends
            blocker.execute("LOCK TABLE alert_events IN ACCESS EXCLUSIVE MODE")
            for call in (lambda: history.insert(event("aa")), history.firing):
                started = time.monotonic()
                with pytest.raises(HistoryError, match="canceling statement due to"):
                    call()
                assert time.monotonic() - started < 4
        assert history.insert(event("aa"))  # the lock is gone: it works again
        started = time.monotonic()
        with pytest.raises(HistoryError, match="statement timeout"):
            history._query("SELECT pg_sleep(30)", ())
        assert time.monotonic() - started < 4
        history.check()
    finally:
        history.close()


def test_a_locked_postgres_history_is_a_503_not_a_hang(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = fresh_database(postgres)
    history = PostgresHistory(url, timeout=1.0)
    settings = ResponderSettings(port=0, token=TOKEN, history_url=url, console=False)
    server = ResponderServer(settings, history=history, channels=[]).start()
    try:
        with psycopg.connect(url) as blocker:
            blocker.execute("LOCK TABLE alert_events IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            response = httpx.post(
                server.webhook_url,
                content=body(payload()),
                headers={**AUTH, "Content-Type": "application/json"},
                timeout=30,
            )
            assert response.status_code == 503, response.text
            assert time.monotonic() - started < 10
        response = httpx.post(
            server.webhook_url,
            content=body(payload()),
            headers={**AUTH, "Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200
    finally:
        server.stop()
        history.close()


# ---- retention ---------------------------------------------------------------------------------
def _plan(event: AlertEvent) -> list[OutboxItem]:
    return [OutboxItem("chat", Notification.from_event(event))]


def test_prune_deletes_what_is_over_and_keeps_what_is_not(history_url: str) -> None:
    history = open_history(history_url)
    now = datetime.now(UTC).replace(microsecond=0)
    old, recent = now - timedelta(days=100), now - timedelta(days=1)
    later = datetime(2024, 5, 2, tzinfo=UTC)

    def store(*events: AlertEvent) -> None:  # one at a time, as separate deliveries
        for e in events:
            history.insert_many([e], _plan)

    try:
        # Over and old: a resolved occurrence, and one replaced by a newer occurrence.
        store(event("a1", received=old), event("a1", "resolved", received=old))
        history.acknowledge("a1", "ana", False, "", old)
        store(event("c1", received=old), event("c1", received=old, starts_at=later))
        # Not over, however old: still firing (the newest occurrence, never resolved).
        store(event("b1", received=old))
        history.acknowledge("b1", "ana", False, "", old)
        # Old firing, recent resolved: last heard of recently.
        store(event("d1", received=old), event("d1", "resolved", received=recent))
        # Recent.
        store(event("e1", "resolved", received=recent))
        assert history.count() == 8

        # The outbox: one entry per event above (8), ids in insertion order.
        entries = sorted(history.outbox_list(100), key=lambda e: e.id)
        ids = [e.id for e in entries]
        claimed = history.outbox_claim("t", now, now + timedelta(minutes=1), 100)
        assert len(claimed) == 5  # a pending entry waits behind an older one of its alert
        history.outbox_apply(
            [
                Outcome(ids[0], "sent", Attempt(ids[0], old, "sent")),  # old, finished: goes
                Outcome(ids[2], "dead", Attempt(ids[2], old, "failed", "no"), merged=(ids[3],)),
            ],
            old,
        )
        history.outbox_apply([Outcome(ids[4], "sent", Attempt(ids[4], recent, "sent"))], recent)
        history.outbox_hold([ids[5]])  # held, old: stays
        history.outbox_release_claims("t")  # ids[1], ids[6], ids[7]: pending, old: stay
        before = now - timedelta(days=90)

        deleted = history.prune(before)

        assert deleted == 3 + 3  # events a1 x2, c1 (old occurrence); entries 0, 2, 3
        left = {(e.fingerprint, e.status, e.starts_at) for e in history.history(100)}
        assert {(f, s) for f, s, _ in left} == {
            ("c1", "firing"),
            ("b1", "firing"),
            ("d1", "firing"),
            ("d1", "resolved"),
            ("e1", "resolved"),
        }
        assert ("c1", "firing", later) in left
        assert [e.fingerprint for e in history.firing()] == ["c1", "b1"]
        assert [e.fingerprint for e in history.firing("b1")] == ["b1"]
        assert history.firing("d1") == []  # resolved
        assert rows(history_url, "alert_acks") == 1  # b1's; a1's went with its occurrence
        remaining = {e.id: e.state for e in history.outbox_list(100)}
        assert set(remaining) == {ids[1], ids[4], ids[5], ids[6], ids[7]}
        assert remaining[ids[5]] == "held" and remaining[ids[1]] == "pending"
        assert rows(history_url, "notification_attempts") == 1  # ids[4]'s
        assert history.prune(before) == 0  # nothing more to do
        # Everything that is over goes (d1, e1 and the sent entry); what fires or waits stays.
        assert history.prune(now + timedelta(days=1)) == 3 + 1
        assert [e.fingerprint for e in history.firing()] == ["c1", "b1"]
        assert {e.state for e in history.outbox_list(100)} == {"pending", "held"}
    finally:
        history.close()


class CountingHistory(SQLiteHistory):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.prunes: list[datetime] = []

    def prune(self, before: datetime) -> int:
        self.prunes.append(before)
        return super().prune(before)


def _runtime(
    history: AlertHistory, clock: Callable[[], datetime], **settings: Any
) -> ResponderRuntime:
    config = ResponderSettings(token=TOKEN, watchdog_timeout_seconds=0, **settings)
    return ResponderRuntime(config, history, [], Metrics(CollectorRegistry()), clock=clock)


def test_the_runtime_prunes_at_its_first_tick_then_hourly(tmp_path: Path) -> None:
    history = CountingHistory(tmp_path / "h.sqlite3")
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    runtime = _runtime(history, lambda: now[0], retention_days=30)
    try:
        runtime.tick()
        assert history.prunes == [datetime(2029, 12, 2, tzinfo=UTC)]
        for _ in range(59):
            now[0] += timedelta(minutes=1)
            runtime.tick()
        assert len(history.prunes) == 1
        now[0] += PRUNE_INTERVAL
        runtime.tick()
        assert history.prunes[-1] == now[0] - timedelta(days=30) and len(history.prunes) == 2

        forever = _runtime(history, lambda: now[0], retention_days=0)
        forever.tick()
        now[0] += timedelta(days=365)
        forever.tick()
        assert len(history.prunes) == 2
    finally:
        history.close()


def test_a_failing_prune_does_not_stop_the_tick(tmp_path: Path) -> None:
    class Failing(CountingHistory):
        def prune(self, before: datetime) -> int:
            super().prune(before)
            raise HistoryError("disk full")

    history = Failing(tmp_path / "h.sqlite3")
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    runtime = _runtime(history, lambda: now[0])  # the default retention
    try:
        runtime.tick()  # logged, not raised
        now[0] += PRUNE_INTERVAL
        runtime.tick()
        assert history.prunes == [
            datetime(2030, 1, 1, tzinfo=UTC) - timedelta(days=90),
            now[0] - timedelta(days=90),
        ]
    finally:
        history.close()


def test_a_responder_prunes_old_history_when_it_starts(
    start_responder: StartResponder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    old = datetime.now(UTC) - timedelta(days=40)
    seeded = open_history(url)
    seeded.insert_many([event("0a", received=old), event("0a", "resolved", received=old)])
    seeded.insert_many([event("0b", received=old)])  # still firing: kept
    seeded.close()
    monkeypatch.setenv("TRADEGUARD_RESPONDER_RETENTION_DAYS", "30")
    r = start_responder(url)
    assert r.server.settings.retention_days == 30
    wait_until(lambda: r.stored() == 1, 10, "the old resolved occurrence to be pruned")
    assert [a["fingerprint"] for a in r.get("/api/alerts/firing").json()["alerts"]] == ["0b"]


# ---- the report reads only its window ----------------------------------------------------------
def test_the_report_reads_only_the_occurrences_in_its_window(
    history_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = open_history(history_url)
    now = datetime.now(UTC)
    old, inside = now - timedelta(days=30), now - timedelta(days=2)
    try:
        for i in range(20):  # old occurrences, resolved and acknowledged
            fp = f"01{i:02x}"
            history.insert_many([event(fp, received=old), event(fp, "resolved", received=old)])
            history.acknowledge(fp, "ana", i % 2 == 0, "", old + timedelta(minutes=1))
        history.insert_many(
            [event("0f1", received=inside), event("0f1", "resolved", received=inside)]
        )
        history.acknowledge("0f1", "bo", True, "noise", inside + timedelta(minutes=2))
        history.insert_many([event("0f2", received=inside)])  # firing, nobody acknowledged
        history.insert_many([event("0f3", received=inside + timedelta(hours=1))])
        history.acknowledge("0f3", "cy", False, "", inside + timedelta(hours=2))
        history.insert_many([event("0f4", "resolved", received=inside)])  # no firing: none

        fetched: list[int] = []
        real_query = history._query  # type: ignore[attr-defined]

        def counting(sql: str, params: tuple[object, ...]) -> list[Any]:
            result: list[Any] = real_query(sql, params)
            fetched.append(len(result))
            return result

        monkeypatch.setattr(history, "_query", counting)
        found = history.occurrences(now - timedelta(days=7))
        assert sum(fetched) == 3  # one row per occurrence in the window, nothing older
        start = datetime(2024, 5, 1, 10, tzinfo=UTC)
        assert [(o.fingerprint, o.notified_at) for o in found] == [
            ("0f1", inside),
            ("0f2", inside),
            ("0f3", inside + timedelta(hours=1)),
        ]
        by_fp = {o.fingerprint: o for o in found}
        assert by_fp["0f1"].ends_at == start + timedelta(minutes=5)
        assert by_fp["0f1"].ack is not None and by_fp["0f1"].ack.acked_by == "bo"
        assert by_fp["0f1"].ack.false_positive and by_fp["0f1"].ack.note == "noise"
        assert by_fp["0f1"].ack.acked_at == inside + timedelta(minutes=2)
        assert by_fp["0f2"].ends_at is None and by_fp["0f2"].ack is None
        assert by_fp["0f3"].ends_at is None and by_fp["0f3"].ack is not None
        assert all(o.starts_at == start and o.alertname == "TestAlert" for o in found)
        everything = history.occurrences(now - timedelta(days=60))
        assert len(everything) == 23
        assert sum(1 for o in everything if o.ack is not None) == 22
    finally:
        history.close()


# ---- property-based: any request, any route ----------------------------------------------------
# Each test starts one responder (token and basic auth, so both checks are exercised) and sends
# every generated request to it; after each, the read API must still answer 200 and no request
# may have been answered 5xx (the responder's own counter sees even answers a client missed).
BASIC_USER, BASIC_PASSWORD = "alertmanager", "basic-secret-9d2e"
ROUTES = [
    "/alertmanager/webhook",
    "/api/alerts/firing",
    "/api/alerts/history",
    "/api/alerts/ack",
    "/api/report",
    "/api/notifications",
    "/healthz",
    "/metrics",
]
SURROGATE = "@@SURROGATE@@"  # replaced in the encoded JSON by an escaped lone surrogate
# 1500 CJK characters in no repeating order: 4.5 kB that compression cannot shrink below
# PostgreSQL's btree limit (~2.7 kB a key), as a run of one character would be.
INCOMPRESSIBLE = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(1500))
PROPERTY = {
    "deadline": None,
    "derandomize": True,  # the same examples on every run: CI failures reproduce
    "database": None,
    # Generating deep or long bodies is slow, and some are large: that is the point.
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
}


@pytest.fixture
def live(start_responder: StartResponder, history_url: str, tmp_path: Path) -> Responder:
    password = tmp_path / "basic-password"
    password.write_text(BASIC_PASSWORD)
    return start_responder(
        history_url, basic_user=BASIC_USER, basic_password_file=password, watchdog_timeout_seconds=0
    )


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def header_text() -> st.SearchStrategy[bytes]:
    """Header values h11 will send: visible ASCII and UTF-8 bytes (obs-text), no CR/LF/NUL."""
    chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.sampled_from("é€日 ³٣")
    return st.text(chars, max_size=40).map(lambda t: t.strip().encode())


AUTHORIZATIONS = st.one_of(
    st.just(f"Bearer {TOKEN}".encode()),
    st.just(basic(BASIC_USER, BASIC_PASSWORD)),
    st.none(),
    st.sampled_from(
        [
            b"Bearer wrong",
            b"Bearer",
            b"bearer  " + TOKEN.encode(),
            basic(BASIC_USER, "wrong"),
            basic("", ""),
            b"Basic !!!not-base64",
            b"Basic \xc3\xa9t\xc3\xa9",  # non-ASCII: base64 cannot even try
            "Basic é".encode("latin-1"),
            b"Digest x",
        ]
    ),
    header_text(),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ]
    ).map(str.encode),
    st.none(),
    header_text(),
)

# JSON of any shape, for wrong types anywhere.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=2**80)
    | st.floats()
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)

# Text that is hard to store: control characters, NUL, bidi overrides, emoji, zero-widths.
ODD_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "\u0000",
            "a\u0000b",
            "\u202e",
            "\ufeff",
            "\u200b",
            "🚀",
            "東京",
            "\x7f\x9f",
            "",
            " ",
            SURROGATE,
        ]
    ),
    st.text(st.characters(codec="utf-8"), max_size=10).map(lambda t: t + SURROGATE),
    st.integers(1, 20_000).map(lambda n: "ë" * n),  # long (UTF-8: twice as many bytes)
)


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    """Timestamps Alertmanager would send, and everything around and far outside them."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(
            st.sampled_from(
                [
                    "0001-01-01T00:00:00Z",
                    "0001-01-01T00:00:00+01:00",
                    "9999-12-31T23:59:59-01:00",
                    "9999-12-31T23:59:59.999999999Z",
                    "2024-05-01T23:59:60Z",
                    "2016-12-31T23:59:60.5+00:00",
                    "2024-02-30T00:00:00Z",
                    "2024-05-01T10:00:00",
                    "2024-05-01T10:00:00+24:00",
                    "2024-05-01T10:00:00+14:00",
                    "2024-05-01T10:00:00-23:59",
                    "1970-01-01T00:00:00Z",
                    "1999-12-31T23:59:59.999999Z",
                    "2200-01-01T00:00:00Z",
                    "2199-12-31T23:59:59.999999999Z",
                    "2024-05-01T10:00:00.123456789123Z",
                    "2024-05-01 10:00:00z",
                    "+002024-05-01T10:00:00Z",
                    "2024-05-01T10:00:00,5Z",
                    "now",
                    "",
                ]
            )
        )
    if kind == 1:
        return draw(JSON_VALUES)
    year = draw(st.integers(1, 9999) | st.integers(1995, 2205))
    clock = (draw(st.integers(0, 24)), draw(st.integers(0, 60)), draw(st.integers(0, 61)))
    fraction = "".join(draw(st.lists(st.sampled_from("0123456789"), max_size=12)))
    offset = draw(
        st.just("Z")
        | st.integers(-24 * 60, 24 * 60).map(
            lambda m: f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
        )
    )
    month, day = draw(st.integers(1, 12)), draw(st.integers(1, 31))
    return (
        f"{year:04d}-{month:02d}-{day:02d}T{clock[0]:02d}:{clock[1]:02d}:{clock[2]:02d}"
        + (f".{fraction}" if fraction else "")
        + offset
    )


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``doc`` (keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def webhook_documents(draw: st.DrawFn) -> Any:
    """The real payload shape with a few fields mutated."""
    count = draw(st.integers(1, 3))
    alerts = []
    for _ in range(count):
        fingerprint = f"{draw(st.integers(0, 2**20)):016x}"
        if draw(st.booleans()):
            fingerprint = fingerprint.upper()
        alerts.append(alert(draw(st.sampled_from(["firing", "resolved"])), fingerprint=fingerprint))
    doc = payload(*alerts)
    for _ in range(draw(st.integers(0, 4))):
        mutation = draw(st.integers(0, 6))
        index = draw(st.integers(0, count - 1))
        paths = _paths(doc)
        if not paths:  # every key deleted already
            break
        # An earlier mutation may have replaced the alerts (or one alert) by anything.
        alerts_now = doc.get("alerts")
        target = (
            alerts_now[index] if isinstance(alerts_now, list) and len(alerts_now) > index else None
        )
        if not isinstance(target, dict):
            target = None
        if mutation == 0 and target is not None:
            target[draw(st.sampled_from(["startsAt", "endsAt"]))] = draw(timestamps())
        elif mutation == 1 and target is not None and isinstance(target.get("labels"), dict):
            where = draw(st.sampled_from(["labels", "annotations"]))
            if isinstance(target.get(where), dict):
                key = draw(
                    st.sampled_from(["alertname", "severity", "instance", "summary"]) | ODD_TEXT
                )
                target[where][key] = draw(ODD_TEXT)
        elif mutation == 2:
            path = draw(st.sampled_from(paths))
            _parent(doc, path)[path[-1]] = draw(JSON_VALUES)
        elif mutation == 3:
            path = draw(st.sampled_from(paths))
            parent = _parent(doc, path)
            if isinstance(parent, dict):
                del parent[path[-1]]
        elif mutation == 4 and target is not None:
            target["fingerprint"] = draw(
                st.sampled_from(["", "g", "0" * 64, "0" * 65, "ABCDEF", " ab", "ab\n"]) | ODD_TEXT
            )
        elif mutation == 5:
            depth = draw(st.integers(2, 400))
            path = draw(st.sampled_from(paths))
            nested: Any = "x"
            for _ in range(depth):
                nested = [nested]
            _parent(doc, path)[path[-1]] = nested
        elif mutation == 6 and isinstance(doc.get("alerts"), list) and doc["alerts"]:
            doc["alerts"] = doc["alerts"] * draw(st.integers(2, 40))  # duplicates in one delivery
    return doc


def encode(doc: Any, ascii_only: bool, surrogate: str) -> bytes:
    """``doc`` as JSON, the surrogate marker turned into an escaped lone (or paired) surrogate."""
    text = json.dumps(doc, ensure_ascii=ascii_only)
    return text.replace(SURROGATE, surrogate).encode("utf-8", "surrogatepass")


SURROGATES = st.sampled_from(["\\ud800", "\\udfff", "\\udc00\\ud800", "\\ud83d\\ude80", "\ud800"])


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return b""
    if kind == 1:
        return draw(st.binary(max_size=300))
    if kind == 2:
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == 3:
        ack = {
            "fingerprint": draw(st.sampled_from([FINGERPRINT, FINGERPRINT.upper(), "zz"])),
            "by": draw(ODD_TEXT),
        }
        if draw(st.booleans()):
            ack["note"] = draw(ODD_TEXT)
        if draw(st.booleans()):
            ack["false_positive"] = draw(JSON_VALUES)
        return encode(ack, draw(st.booleans()), draw(SURROGATES))
    if kind == 4:
        depth = draw(st.integers(1, 20_000))
        return b"[" * depth + b"]" * depth
    if kind == 5:
        return (
            b"{"
            + b" " * draw(st.sampled_from([ACK_MAX_BYTES, 1024 * 1024, 2 * 1024 * 1024]))
            + b"}"
        )
    return encode(draw(webhook_documents()), draw(st.booleans()), draw(SURROGATES))


def chunks_of(content: bytes, sizes: list[int]) -> Iterator[bytes]:
    start = 0
    for size in sizes:
        yield content[start : start + size]
        start += size
    yield content[start:]


QUERY_KEYS = (
    st.sampled_from(["limit", "days", "alertname", "state"])
    | st.sampled_from(["", "x", "limit[]", "LIMIT"])
    | st.text(max_size=8)
)
QUERY_VALUES = st.sampled_from(
    ["1", "50", "1000", "1001", "0", "-1", "+5", "٣", "³", "1" * 30, "sent", "dead", "bogus", ""]
) | st.text(max_size=12)


def query_string(pairs: list[tuple[str, str]], raw_bits: list[str]) -> str:
    parts = [f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs] + raw_bits
    return "&".join(parts)


ROUTE_METHODS = {
    "/alertmanager/webhook": "POST",
    "/api/alerts/ack": "POST",
}
GOOD_AUTH = [f"Bearer {TOKEN}".encode(), basic(BASIC_USER, BASIC_PASSWORD)]


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly the real routes with their own method and valid credentials (so the request gets
    past the first checks), sometimes anything at all."""
    if draw(st.integers(0, 4)):
        path = draw(st.sampled_from(ROUTES))
    else:
        path = "/" + quote(draw(st.text(max_size=20)), safe="/")
        path += draw(st.sampled_from(["", "/", "//x", "/.."]))
    if draw(st.integers(0, 4)):
        method = ROUTE_METHODS.get(path, "GET")
    else:
        method = draw(
            st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
            | st.from_regex(r"[A-Z]{1,8}", fullmatch=True).filter(lambda m: m != "CONNECT")
        )
    pairs = draw(st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=4))
    if pairs and draw(st.booleans()):
        pairs.append(pairs[0])  # a repeated key
    raw_bits = draw(
        st.lists(st.sampled_from(["%zz", "%ff", "%00", "limit", "=", "&&", "a=%e2%82"]), max_size=2)
    )
    headers: dict[str, bytes] = {}
    authorization = draw(st.sampled_from(GOOD_AUTH)) if draw(st.integers(0, 3)) else None
    if authorization is None:
        authorization = draw(AUTHORIZATIONS)
    if authorization is not None:
        headers["Authorization"] = authorization
    content_type = b"application/json" if draw(st.integers(0, 2)) else draw(CONTENT_TYPES)
    if content_type is not None:
        headers["Content-Type"] = content_type
    content = (
        draw(bodies()) if method not in ("GET", "HEAD") or not draw(st.integers(0, 4)) else b""
    )
    chunked = draw(st.booleans()) and bool(content)
    sizes = draw(st.lists(st.integers(1, 4096), max_size=4)) if chunked else []
    return {
        "method": method,
        "path": path,
        "query": query_string(pairs, raw_bits),
        "headers": headers,
        "content": content,
        "chunks": sizes if chunked else None,
    }


def check_answer(response: httpx.Response, method: str) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if 400 <= response.status_code < 500 and method != "HEAD":
        assert response.headers["content-type"] == "application/json", response.text[:300]
        answer = response.json()
        assert isinstance(answer, dict) and isinstance(answer.get("error"), str), answer


def check_still_readable(r: Responder, client: httpx.Client) -> None:
    for route in READ_ROUTES:
        response = client.get(r.url + route, headers=AUTH)
        assert response.status_code == 200, (route, response.text[:500])
        response.json()
    assert r.counter("tradeguard_http_requests_total", status="5xx") == 0


def send(client: httpx.Client, r: Responder, request: dict[str, Any]) -> httpx.Response:
    url = f"{r.url}{request['path']}"
    if request["query"]:
        url += "?" + request["query"]
    content = request["content"]
    if request["chunks"] is not None:
        content = chunks_of(content, request["chunks"])
    return client.request(request["method"], url, content=content, headers=request["headers"])


def test_any_request_to_any_route_is_answered_without_a_5xx(live: Responder) -> None:
    with httpx.Client(timeout=30) as client:

        @hypothesis_settings(max_examples=150, **PROPERTY)
        @given(request=requests())
        @example(
            request={
                "method": "GET",
                "path": "/api/alerts/history",
                "query": "limit=%D9%A3",
                "headers": {"Authorization": f"Bearer {TOKEN}".encode()},
                "content": b"",
                "chunks": None,
            }
        )
        @example(
            request={
                "method": "GET",
                "path": "/api/report",
                "query": "days=%C2%B3",
                "headers": {"Authorization": f"Bearer {TOKEN}".encode()},
                "content": b"",
                "chunks": None,
            }
        )
        @example(
            request={
                "method": "GET",
                "path": "/api/alerts/firing",
                "query": "",
                "headers": {"Authorization": b"Basic \xc3\xa9"},
                "content": b"",
                "chunks": None,
            }
        )
        @example(
            request={
                "method": "POST",
                "path": "/api/alerts/ack",
                "query": "",
                "headers": {
                    "Authorization": f"Bearer {TOKEN}".encode(),
                    "Content-Type": b"application/json",
                },
                "content": b"{" + b" " * 100_000 + b"}",
                "chunks": [10, 5000],
            }
        )
        @example(
            request={
                "method": "POST",
                "path": "/api/alerts/ack",
                "query": "",
                "headers": {
                    "Authorization": f"Bearer {TOKEN}".encode(),
                    "Content-Type": b"application/json",
                },
                "content": json.dumps({"fingerprint": FINGERPRINT, "by": "a\u0000"}).encode(),
                "chunks": None,
            }
        )
        def attempt(request: dict[str, Any]) -> None:
            check_answer(send(client, live, request), request["method"])
            check_still_readable(live, client)

        attempt()


def test_mutated_webhook_payloads_are_stored_readably_or_refused(live: Responder) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(timeout=30) as client:

        @hypothesis_settings(max_examples=150, **PROPERTY)
        @given(
            doc=webhook_documents(),
            ascii_only=st.booleans(),
            surrogate=SURROGATES,
            chunk_sizes=st.none() | st.lists(st.integers(1, 2048), max_size=3),
        )
        @example(
            doc=payload(alert(labels={"alertname": "X", "k": "\u0000"})),
            ascii_only=True,
            surrogate="",
            chunk_sizes=None,
        )
        @example(
            doc=payload(alert(labels={"alertname": "X", SURROGATE: "v"})),
            ascii_only=True,
            surrogate="\\ud800",
            chunk_sizes=None,
        )
        @example(
            doc=payload(alert(labels={"alertname": "X", "v": SURROGATE})),
            ascii_only=False,
            surrogate="\ud800",
            chunk_sizes=[3],
        )
        @example(
            doc=payload(alert(startsAt="0001-01-01T00:00:00+01:00")),
            ascii_only=True,
            surrogate="",
            chunk_sizes=None,
        )
        @example(
            doc=payload(alert(startsAt="9999-12-31T23:59:59-01:00")),
            ascii_only=True,
            surrogate="",
            chunk_sizes=None,
        )
        @example(
            doc=payload(alert(labels={"alertname": INCOMPRESSIBLE})),
            ascii_only=False,
            surrogate="",
            chunk_sizes=None,
        )
        def attempt(
            doc: Any, ascii_only: bool, surrogate: str, chunk_sizes: list[int] | None
        ) -> None:
            content: bytes | Iterator[bytes] = encode(doc, ascii_only, surrogate)
            if chunk_sizes is not None:
                content = chunks_of(content, chunk_sizes)  # type: ignore[arg-type]
            response = client.post(live.server.webhook_url, content=content, headers=headers)
            check_answer(response, "POST")
            assert response.status_code in (200, 400, 413, 422), response.text[:300]
            check_still_readable(live, client)

        attempt()


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    """Requests whose Content-Length lies (too short, too long, not a number, twice) or that
    say both chunked and a length."""
    path = draw(
        st.sampled_from(["/alertmanager/webhook", "/api/alerts/ack", "/api/alerts/history"])
    )
    content = draw(bodies()) if draw(st.booleans()) else encode(payload(), True, "")
    content = content[: 64 * 1024]
    lie = draw(st.integers(0, 4))
    if lie == 0:
        declared = [str(max(0, len(content) - draw(st.integers(1, max(1, len(content))))))]
    elif lie == 1:
        declared = [str(len(content) + draw(st.integers(1, 100)))]
    elif lie == 2:
        declared = [draw(st.sampled_from(["abc", "-1", "+5", "1e3", " 5", "٣", "³", "0x10", ""]))]
    elif lie == 3:
        declared = [str(len(content)), str(len(content) + 1)]
    else:
        declared = [str(len(content))]
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {TOKEN}",
        "Content-Type: application/json",
        "Connection: close",
    ]
    lines += [f"Content-Length: {value}" for value in declared]
    if lie == 4 and draw(st.booleans()):
        lines.append("Transfer-Encoding: chunked")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + content


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request``, say we are done sending, and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)  # a body shorter than declared ends here
        except OSError:
            pass  # the server may answer and close before it has read everything
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


def test_lying_content_lengths_get_a_4xx_or_no_answer_never_a_5xx(
    start_responder: StartResponder,
) -> None:
    r = start_responder(watchdog_timeout_seconds=0)
    with httpx.Client(timeout=30) as client:

        @hypothesis_settings(max_examples=60, **PROPERTY)
        @given(request=raw_requests())
        def attempt(request: bytes) -> None:
            answer = raw_exchange(r.server.port, request)
            if answer:
                head, _, content = answer.partition(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                assert status < 500, answer[:300]
                if status >= 400 and b"content-type: application/json" in head.lower():
                    assert isinstance(json.loads(content)["error"], str)
                elif status >= 400:
                    # The HTTP server's own answer to a request it cannot parse at all (the app
                    # never sees it): plain text by uvicorn, nothing the app can shape.
                    assert b"Invalid HTTP request" in content, answer[:300]
            check_still_readable(r, client)

        attempt()
