"""The remediation audit: every decision and outcome in the history database, on real SQLite and
PostgreSQL; one claim per attempt however many responders race for it; retention; the
``/api/actions`` route of a real responder (and its refusals, never a 5xx), the client, the
``tradeguard alerts actions`` command, and the metrics' vocabulary."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from responder_harness import TOKEN, Responder, StartResponder
from typer.testing import CliRunner

from tradeguard.metrics.catalog import Metrics, catalog_series_names
from tradeguard.metrics.vocabulary import (
    REMEDIATION_AUDIT_ACTIONS,
    REMEDIATION_OUTCOMES,
    REMEDIATION_UNDO_ACTIONS,
)
from tradeguard.remediation.registry import REGISTRY, UNDO_ACTIONS
from tradeguard.responder.cli import alerts_app
from tradeguard.responder.client import ResponderClient, ResponderUnavailable
from tradeguard.responder.events import AlertEvent
from tradeguard.responder.history import AlertHistory, open_history
from tradeguard.responder.history.actions import (
    ACTION_OUTCOMES,
    ACTION_VERDICTS,
    ActionAttempt,
    ActionOutcome,
    ActionVerdict,
)
from tradeguard.responder.history.base import REMEDIATION

FP = "0123456789abcdef"
STARTS = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
DECIDED = datetime(2024, 5, 1, 10, 1, 0, tzinfo=UTC)
OWNER = "responder-a:9466"


def claim(
    history: AlertHistory,
    *,
    attempt: int = 1,
    action: str = "reconnect_redis",
    fingerprint: str = FP,
    starts_at: datetime = STARTS,
    alertname: str = "RedisConnectionErrors",
    decided_at: datetime = DECIDED,
    decided_by: str = OWNER,
    verdict: ActionVerdict = "run",
    outcome: ActionOutcome = "pending",
    **extra: Any,
) -> int | None:
    return history.claim_action_attempt(
        fingerprint=fingerprint,
        starts_at=starts_at,
        alertname=alertname,
        action=action,
        target=extra.pop("target", "engine-a"),
        attempt=attempt,
        decided_by=decided_by,
        decided_at=decided_at,
        verdict=verdict,
        reason=extra.pop("reason", "RedisConnectionErrors fires"),
        outcome=outcome,
        **extra,
    )


@pytest.fixture
def history(history_url: str) -> Iterator[AlertHistory]:
    opened = open_history(history_url)
    try:
        yield opened
    finally:
        opened.close()


# ---- the history, on both backends ---------------------------------------------------------------
def test_a_decision_is_claimed_once_finished_once_and_read_back(history: AlertHistory) -> None:
    row = claim(history, command_id="cmd-1")
    assert isinstance(row, int)
    # The same attempt again (an Alertmanager retry, another replica): no row, no exception.
    assert claim(history, decided_by="responder-b:9466", command_id="cmd-2") is None
    [pending] = history.action_attempts(FP, STARTS)
    assert pending == ActionAttempt(
        id=row,
        fingerprint=FP,
        starts_at=STARTS,
        alertname="RedisConnectionErrors",
        action="reconnect_redis",
        target="engine-a",
        attempt=1,
        decided_by=OWNER,
        decided_at=DECIDED,
        verdict="run",
        reason="RedisConnectionErrors fires",
        command_id="cmd-1",
        outcome="pending",
        detail="",
        finished_at=None,
        duration_seconds=None,
    )
    assert not pending.finished

    finished_at = DECIDED + timedelta(seconds=3)
    assert history.finish_action(row, "done", "engine-a: reconnected\x00", 0.42, finished_at)
    # The first outcome stays: a late answer, or a second finisher, changes nothing.
    assert not history.finish_action(row, "failed", "late", 9.0, finished_at + timedelta(1))
    assert not history.finish_action(row + 1000, "done", "", None, finished_at)
    [done] = history.action_attempts(FP, STARTS)
    assert (done.outcome, done.detail, done.duration_seconds) == (
        "done",
        "engine-a: reconnected",  # NUL dropped: PostgreSQL's text cannot hold it
        0.42,
    )
    assert done.finished_at == finished_at and done.command_id == "cmd-1"
    assert done.to_json() == {
        "id": row,
        "fingerprint": FP,
        "starts_at": "2024-05-01T10:00:00.123456Z",
        "alertname": "RedisConnectionErrors",
        "action": "reconnect_redis",
        "target": "engine-a",
        "attempt": 1,
        "decided_by": OWNER,
        "decided_at": "2024-05-01T10:01:00.000000Z",
        "verdict": "run",
        "reason": "RedisConnectionErrors fires",
        "command_id": "cmd-1",
        "outcome": "done",
        "detail": "engine-a: reconnected",
        "finished_at": "2024-05-01T10:01:03.000000Z",
        "duration_seconds": 0.42,
    }

    # Decisions that issue nothing are stored finished (when decided, unless told otherwise).
    dry = claim(history, attempt=2, verdict="dry_run", outcome="dry_run", target="*")
    skip = claim(
        history, attempt=0, action="stop_instance", verdict="skip", outcome="not_applicable"
    )
    assert (
        skip is not None
        and claim(
            history, attempt=0, action="stop_instance", verdict="skip", outcome="not_applicable"
        )
        is None
    )  # a skip is stored once per occurrence and action
    # A command id given at the finish fills one not known at the claim.
    later = claim(history, attempt=3, decided_at=DECIDED + timedelta(minutes=5))
    assert later is not None
    assert history.finish_action(
        later, "timed_out", "no outcome within 30s", 30.0, DECIDED, command_id="cmd-3"
    )
    rows = history.action_attempts(FP, STARTS)
    assert [(r.action, r.attempt, r.verdict, r.outcome) for r in rows] == [
        ("reconnect_redis", 1, "run", "done"),
        ("reconnect_redis", 2, "dry_run", "dry_run"),
        ("stop_instance", 0, "skip", "not_applicable"),
        ("reconnect_redis", 3, "run", "timed_out"),
    ]
    assert rows[1].id == dry and rows[1].finished_at == DECIDED and rows[1].target == "*"
    assert rows[3].command_id == "cmd-3"
    # Another occurrence of the same alert (a new startsAt) has attempts of its own.
    assert history.action_attempts(FP, STARTS + timedelta(microseconds=1)) == []
    assert claim(history, starts_at=STARTS + timedelta(hours=1)) is not None


def test_the_audit_is_listed_newest_first_and_filtered(history: AlertHistory) -> None:
    ids = [
        claim(history, attempt=1, alertname="A", action="reconnect_redis"),
        claim(history, attempt=1, alertname="B", action="reconnect_broker", fingerprint="b"),
        claim(history, attempt=2, alertname="A", action="reconnect_redis"),
        claim(history, attempt=1, alertname="C", action="resync_state", fingerprint="c"),
    ]
    assert None not in ids
    history.finish_action(ids[0], "failed", "boom", 1.0, DECIDED)
    history.finish_action(ids[3], "failed", "boom", 1.0, DECIDED)
    assert [r.id for r in history.list_actions()] == ids[::-1]
    assert [r.id for r in history.list_actions(2)] == [ids[3], ids[2]]
    assert [r.id for r in history.list_actions(action="reconnect_redis")] == [ids[2], ids[0]]
    assert [r.id for r in history.list_actions(outcome="failed")] == [ids[3], ids[0]]
    assert [r.id for r in history.list_actions(alertname="B")] == [ids[1]]
    assert [r.id for r in history.list_actions(10, "reconnect_redis", "failed", alertname="A")] == [
        ids[0]
    ]
    assert history.list_actions(action="demote_leader") == []
    with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
        history.list_actions(0)
    with pytest.raises(ValueError, match="outcome must be one of"):
        history.list_actions(outcome="lost")  # type: ignore[arg-type]


def test_recent_attempts_span_occurrences_oldest_first(history: AlertHistory) -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    claim(history, fingerprint="old", decided_at=now - timedelta(hours=2))
    edge = claim(history, fingerprint="edge", decided_at=now - timedelta(hours=1))
    last = claim(history, fingerprint="new", decided_at=now - timedelta(minutes=1))
    middle = claim(history, fingerprint="mid", decided_at=now - timedelta(minutes=30))
    recent = history.recent_action_attempts(now - timedelta(hours=1))
    assert [r.id for r in recent] == [edge, middle, last]  # `since` itself included
    assert history.recent_action_attempts(now) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"verdict": "wait"}, "verdict must be one of"),
        ({"outcome": "ignored"}, "outcome must be one of"),
        ({"attempt": 0}, "attempt numbers start at 1"),
        ({"attempt": -1, "verdict": "exhausted"}, "attempt numbers start at 1"),
        ({"attempt": 1, "verdict": "skip"}, "a skip is stored as attempt 0"),
        ({"finished_at": DECIDED}, "a pending attempt has no finished_at"),
        ({"duration_seconds": 1.0}, "a pending attempt has no finished_at"),
    ],
)
def test_a_malformed_decision_is_refused_before_it_is_stored(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    """Checked before any SQL, so one backend shows it."""
    history = open_history(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    try:
        with pytest.raises(ValueError, match=message):
            claim(history, **changes)
        row = claim(history)
        assert row is not None
        with pytest.raises(ValueError, match="outcome must be one of"):
            history.finish_action(row, "pending", "", None, DECIDED)
        assert history.list_actions() == history.action_attempts(FP, STARTS)
        assert len(history.list_actions()) == 1
    finally:
        history.close()


def test_racing_replicas_each_win_an_attempt_exactly_once(history_url: str) -> None:
    """Three responders (three connections to one database) claim the same attempts at the
    same moment, attempt after attempt: for each, exactly one gets a row id."""
    replicas = [open_history(history_url) for _ in range(3)]
    rounds = 25
    barrier = threading.Barrier(len(replicas))
    won: list[list[int | None]] = [[] for _ in replicas]
    errors: list[BaseException] = []

    def race(index: int) -> None:
        try:
            for attempt in range(1, rounds + 1):
                barrier.wait(timeout=30)
                won[index].append(
                    claim(replicas[index], attempt=attempt, decided_by=f"replica-{index}")
                )
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(replicas))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        stored = {r.attempt: r for r in replicas[0].action_attempts(FP, STARTS)}
        assert sorted(stored) == list(range(1, rounds + 1))
        for attempt in range(1, rounds + 1):
            results = [won[i][attempt - 1] for i in range(len(replicas))]
            winners = [i for i, row in enumerate(results) if row is not None]
            assert len(winners) == 1, (attempt, results)
            assert stored[attempt].id == results[winners[0]]
            assert stored[attempt].decided_by == f"replica-{winners[0]}"
    finally:
        for replica in replicas:
            replica.close()


def _event(fingerprint: str, status: str, received: datetime) -> AlertEvent:
    return AlertEvent(
        fingerprint=fingerprint,
        alertname="RedisConnectionErrors",
        status="firing" if status == "firing" else "resolved",
        starts_at=STARTS,
        ends_at=received if status == "resolved" else None,
        severity="critical",
        component="redis",
        instance="127.0.0.1:6379",
        labels={"alertname": "RedisConnectionErrors"},
        annotations={"action": "reconnect_redis"},
        received_at=received,
        receiver="chat",
    )


def test_retention_takes_the_attempts_of_an_occurrence_that_is_over(
    history: AlertHistory,
) -> None:
    now = datetime(2024, 9, 1, tzinfo=UTC)
    old = now - timedelta(days=100)
    cutoff = now - timedelta(days=90)
    # "over": fired and resolved long ago; "firing": fired long ago and still fires.
    history.insert_many([_event("over", "firing", old), _event("over", "resolved", old)])
    history.insert_many([_event("firing", "firing", old)])
    gone = claim(history, fingerprint="over", decided_at=old)
    assert gone is not None
    history.finish_action(gone, "done", "", 0.1, old)
    kept_late = claim(history, fingerprint="over", attempt=2, decided_at=now - timedelta(days=1))
    kept_firing = claim(history, fingerprint="firing", decided_at=old)

    assert history.prune(cutoff) == 2 + 1  # the two events of "over" and its old attempt

    assert [r.id for r in history.action_attempts("over", STARTS)] == [kept_late]
    assert [r.id for r in history.action_attempts("firing", STARTS)] == [kept_firing]
    assert history.prune(cutoff) == 0
    # Later, once decided before the cutoff too, the rest of "over" goes; "firing" stays.
    assert history.prune(now) == 1
    assert [r.id for r in history.list_actions()] == [kept_firing]


def _drop_audit_table(history_url: str) -> None:
    if history_url.startswith("sqlite:///"):
        with sqlite3.connect(history_url.removeprefix("sqlite:///")) as conn:
            conn.execute(f"DROP TABLE {REMEDIATION}")
        return
    with psycopg.connect(history_url, autocommit=True) as pg:
        pg.execute(f"DROP TABLE {REMEDIATION}".encode())


def test_a_history_from_before_the_audit_gets_its_table_when_opened(history_url: str) -> None:
    open_history(history_url).close()
    _drop_audit_table(history_url)  # as a responder without remediation left it
    history = open_history(history_url)
    try:
        assert claim(history) is not None
        assert len(history.action_attempts(FP, STARTS)) == 1
    finally:
        history.close()


def test_the_window_queries_use_their_indexes(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    open_history(f"sqlite:///{path}").close()

    def plan(sql: str) -> str:
        with sqlite3.connect(path) as conn:
            return " | ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))

    recent = plan(f"SELECT * FROM {REMEDIATION} WHERE decided_at >= 'x' ORDER BY decided_at, id")
    assert f"INDEX {REMEDIATION}_decided" in recent, recent
    occurrence = plan(f"SELECT * FROM {REMEDIATION} WHERE fingerprint = 'f' AND starts_at = 's'")
    assert "INDEX" in occurrence and "SCAN" not in occurrence, occurrence


# ---- vocabulary and metrics -----------------------------------------------------------------
def test_the_audit_and_the_metrics_share_one_vocabulary() -> None:
    assert get_args(ActionOutcome) == ACTION_OUTCOMES == REMEDIATION_OUTCOMES
    assert get_args(ActionVerdict) == ACTION_VERDICTS
    assert REMEDIATION_UNDO_ACTIONS == UNDO_ACTIONS
    assert sorted(REMEDIATION_AUDIT_ACTIONS) == sorted({*REGISTRY, *UNDO_ACTIONS})


def test_every_action_and_outcome_is_counted_from_zero() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    for action in REMEDIATION_AUDIT_ACTIONS:
        for outcome in REMEDIATION_OUTCOMES:
            labels = {"action": action, "outcome": outcome}
            assert registry.get_sample_value("tradeguard_remediation_actions_total", labels) == 0
        count = registry.get_sample_value(
            "tradeguard_remediation_action_duration_seconds_count", {"action": action}
        )
        assert count == 0
    names = catalog_series_names()
    assert "tradeguard_remediation_actions_total" in names
    assert "tradeguard_remediation_action_duration_seconds_bucket" in names


# ---- the API, the client and the CLI, through a real responder ---------------------------------
def _seed(r: Responder) -> list[int]:
    """Three decisions in the responder's own history: a run that failed, a dry run, a skip."""
    history = r.server.history
    run = claim(history, command_id="cmd-1")
    dry = claim(history, attempt=2, verdict="dry_run", outcome="dry_run")
    skip = claim(
        history,
        attempt=0,
        action="demote_leader",
        alertname="LeaderFlapping",
        fingerprint="fedcba9876543210",
        verdict="skip",
        outcome="not_applicable",
        target="",
        reason="demote_leader is off (TRADEGUARD_RESPONDER_REMEDIATION_ENABLE)",
    )
    assert run is not None and dry is not None and skip is not None
    assert history.finish_action(run, "failed", "engine-a: ECONNREFUSED", 0.25, DECIDED)
    return [run, dry, skip]


def test_the_api_lists_the_audit_with_iso_times(
    start_responder: StartResponder, history_url: str
) -> None:
    r = start_responder(history_url)
    assert r.get("/api/actions").json() == {"count": 0, "actions": []}
    run, dry, skip = _seed(r)
    answer = r.get("/api/actions")
    assert answer.status_code == 200
    listed = answer.json()
    assert listed["count"] == 3
    assert [a["id"] for a in listed["actions"]] == [skip, dry, run]
    first_run = listed["actions"][2]
    assert first_run["starts_at"] == "2024-05-01T10:00:00.123456Z"
    assert first_run["decided_at"] == "2024-05-01T10:01:00.000000Z"
    assert first_run["finished_at"] == "2024-05-01T10:01:00.000000Z"
    assert (first_run["outcome"], first_run["duration_seconds"]) == ("failed", 0.25)
    assert first_run["decided_by"] == OWNER and first_run["command_id"] == "cmd-1"
    only = r.get("/api/actions", action="reconnect_redis", outcome="dry_run").json()
    assert [a["id"] for a in only["actions"]] == [dry]
    assert [
        a["id"] for a in r.get("/api/actions", alertname="LeaderFlapping").json()["actions"]
    ] == [skip]
    assert [a["id"] for a in r.get("/api/actions", limit="1").json()["actions"]] == [skip]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("limit=0", 400, "limit must be an integer from 1 to 1000"),
        ("limit=1001", 400, "limit must be an integer from 1 to 1000"),
        ("limit=-1", 400, "limit must be an integer from 1 to 1000"),
        ("limit=%C2%B3", 400, "limit must be an integer from 1 to 1000"),
        ("action=rm_rf", 400, "action must be one of restart_instance"),
        ("action=", 400, "action must be one of"),
        ("action=none", 400, "action must be one of"),
        ("outcome=ignored", 400, "outcome must be one of pending, done"),
        ("outcome=DONE", 400, "outcome must be one of"),
        ("state=dead", 400, "unknown query parameter(s) 'state'"),
        ("outcome=done&outcome=failed", 400, "given more than once: outcome"),
        ("alertname=a%00b", 400, "alertname must not contain control characters"),
        ("alertname=" + "x" * 201, 400, "alertname must be at most 200 characters"),
    ],
)
def test_the_api_refuses_bad_queries_with_a_reason(
    start_responder: StartResponder, query: str, status: int, message: str
) -> None:
    r = start_responder()
    answer = httpx.get(
        f"{r.url}/api/actions?{query}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_the_api_needs_the_token(start_responder: StartResponder) -> None:
    r = start_responder()
    assert r.get("/api/actions", token=None).status_code == 401
    assert r.get("/api/actions", token="wrong").status_code == 401
    assert httpx.post(f"{r.url}/api/actions", timeout=10).status_code == 405


QUERY_NAMES = st.sampled_from(["limit", "action", "outcome", "alertname", "state", "", "LIMIT"])
QUERY_VALUES = st.one_of(
    st.sampled_from([*REMEDIATION_AUDIT_ACTIONS, *REMEDIATION_OUTCOMES, "0", "50", "1000"]),
    st.text(max_size=30),
    st.integers(-10, 10**12).map(str),
)


def test_generated_queries_get_an_answer_or_a_4xx_never_a_5xx(
    start_responder: StartResponder,
) -> None:
    r = start_responder()
    _seed(r)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(timeout=30, headers=headers) as client:

        @hypothesis_settings(
            max_examples=120,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(pairs=st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=4))
        def attempt(pairs: list[tuple[str, str]]) -> None:
            query = urlencode(pairs)
            answer = client.get(f"{r.url}/api/actions?{query}")
            assert answer.status_code in (200, 400), (query, answer.status_code, answer.text)
            doc = answer.json()
            if answer.status_code == 200:
                assert doc["count"] == len(doc["actions"])
            else:
                assert isinstance(doc["error"], str) and doc["error"]

        attempt()
    assert r.get("/api/actions").status_code == 200


def test_the_responder_exposes_the_remediation_metrics_at_zero(
    start_responder: StartResponder,
) -> None:
    r = start_responder()
    lines = set(httpx.get(f"{r.url}/metrics", timeout=10).text.splitlines())
    counter = 'tradeguard_remediation_actions_total{action="resume_intake",outcome="timed_out"}'
    bucket = (
        'tradeguard_remediation_action_duration_seconds_bucket{action="restart_instance",le="60.0"}'
    )
    assert f"{counter} 0.0" in lines
    assert f"{bucket} 0.0" in lines


def test_the_client_reads_the_audit(start_responder: StartResponder) -> None:
    r = start_responder()
    run, dry, skip = _seed(r)
    with ResponderClient(r.url, TOKEN) as client:
        assert [a["id"] for a in client.actions()] == [skip, dry, run]
        assert [a["id"] for a in client.actions(outcome="failed")] == [run]
        assert [a["id"] for a in client.actions(action="demote_leader")] == [skip]
        assert [a["id"] for a in client.actions(limit=2, alertname="RedisConnectionErrors")] == [
            dry,
            run,
        ]
        with pytest.raises(ResponderUnavailable, match="answered 400: outcome must be one of"):
            client.actions(outcome="lost")


def test_cli_lists_the_audit(start_responder: StartResponder) -> None:
    runner = CliRunner()
    r = start_responder()
    args = ["actions", "--url", r.url, "--token", TOKEN]
    env = {"COLUMNS": "250"}
    empty = runner.invoke(alerts_app, args, env=env)
    assert empty.exit_code == 0, empty.output
    assert "no remediation decisions recorded" in empty.stdout
    _seed(r)

    listed = runner.invoke(alerts_app, args, env=env)
    assert listed.exit_code == 0, listed.output
    assert "last 3 remediation decision(s)" in listed.stdout
    for text in (
        "RedisConnectionErrors",
        "reconnect_redis",
        "engine-a",
        "failed",
        "250ms",
        "ECONNREFUSED",
        "dry_run",
        "LeaderFlapping",
        "not_applicable",
        OWNER,
    ):
        assert text in listed.stdout, text

    failed = runner.invoke(alerts_app, [*args, "--outcome", "failed", "--limit", "5"], env=env)
    assert failed.exit_code == 0, failed.output
    assert "last 1 remediation decision(s)" in failed.stdout
    assert "LeaderFlapping" not in failed.stdout
    leader = runner.invoke(alerts_app, [*args, "--action", "demote_leader"], env=env)
    assert "LeaderFlapping" in leader.stdout and "RedisConnectionErrors" not in leader.stdout

    bad = runner.invoke(alerts_app, [*args, "--outcome", "lost"])
    assert bad.exit_code == 1
    assert "--outcome must be one of" in bad.stderr and "Traceback" not in bad.output
    unknown = runner.invoke(alerts_app, [*args, "--action", "rm_rf"])
    assert unknown.exit_code == 1 and "--action must be one of" in unknown.stderr
    denied = runner.invoke(alerts_app, ["actions", "--url", r.url, "--token", "wrong"])
    assert denied.exit_code == 1
    assert "refused the credentials" in denied.stderr
    assert len(denied.stderr.strip().splitlines()) == 1
