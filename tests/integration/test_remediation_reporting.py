"""What was done about an alert, told and measured, on real SQLite and PostgreSQL histories
behind a started responder: the resolved notification says what remediation did (and a history
that cannot say leaves the line out, not the notification), and the effectiveness report gives
MTTR with and without an action, through the API, the client and ``tradeguard alerts report``.

Alerts come in as webhooks; remediation attempts are stored through the history's own audit
methods (``claim_action_attempt``, ``finish_action``), as the controller stores them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from responder_harness import TOKEN, StartResponder, alert, body, payload
from typer.testing import CliRunner

from tradeguard.responder.cli import alerts_app
from tradeguard.responder.client import ResponderClient
from tradeguard.responder.events import iso
from tradeguard.responder.history import AlertHistory, open_history
from tradeguard.responder.history.actions import ActionOutcome, ActionVerdict
from tradeguard.responder.history.base import REMEDIATION

STARTS = datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=UTC)
OWNER = "responder-test:0"


@pytest.fixture
def audit(history_url: str) -> Iterator[AlertHistory]:
    """The history the responder uses, opened beside it (as another replica would)."""
    opened = open_history(history_url)
    try:
        yield opened
    finally:
        opened.close()


def occurrence(
    fingerprint: str,
    status: str = "firing",
    action: str | None = None,
    lasted: timedelta = timedelta(minutes=3),
    name: str = "DuckDBDiskSpaceLow",
) -> dict[str, Any]:
    """One alert of a webhook, started at STARTS; its rule names ``action`` if given."""
    annotations = {
        "summary": f"{name} fires.",
        "description": "Free disk is 4% (threshold 10%).",
        "runbook_url": f"docs/runbooks/{name}.md",
    }
    if action is not None:
        annotations["action"] = action
    return alert(
        status,
        labels={
            "alertname": name,
            "severity": "critical",
            "component": "duckdb",
            "instance": "engine-a:9464",
            "replica": "engine-a",
        },
        annotations=annotations,
        startsAt=iso(STARTS),
        endsAt=iso(STARTS + lasted) if status == "resolved" else "0001-01-01T00:00:00Z",
        fingerprint=fingerprint,
    )


def tried(
    history: AlertHistory,
    fingerprint: str,
    action: str,
    outcome: ActionOutcome,
    attempt: int = 1,
    target: str = "engine-a",
    duration: float | None = 0.1,
    verdict: ActionVerdict = "run",
) -> None:
    """Attempt ``attempt`` of ``action`` for the occurrence, claimed and then finished with
    ``outcome`` (a decision that issues nothing is stored final at once)."""
    decided = STARTS + timedelta(seconds=10 * attempt)
    common: dict[str, Any] = {
        "fingerprint": fingerprint,
        "starts_at": STARTS,
        "alertname": "DuckDBDiskSpaceLow",
        "action": action,
        "target": target,
        "attempt": attempt,
        "decided_by": OWNER,
        "decided_at": decided,
        "verdict": verdict,
        "reason": f"{action} is off (turn it on)" if verdict == "skip" else "the alert fires",
    }
    if verdict != "run":
        assert history.claim_action_attempt(**common, outcome=outcome) is not None
        return
    row = history.claim_action_attempt(**common, command_id=f"cmd-{fingerprint}-{attempt}")
    assert row is not None
    finished = decided + timedelta(seconds=duration or 30)
    detail = "engine-a: ok" if outcome == "done" else "no outcome within 30s"
    assert history.finish_action(row, outcome, detail, duration, finished)


def notices(notes: list[dict[str, Any]], status: str) -> dict[str, dict[str, Any]]:
    return {n["fingerprint"]: n for n in notes if n["status"] == status}


def test_the_resolved_notice_says_what_remediation_did(
    start_responder: StartResponder, history_url: str, audit: AlertHistory
) -> None:
    r = start_responder(history_url)
    healed, gave_up, plain, idle = "a000000000000001", "a000000000000002", "a0003", "a0004"
    firing = [
        occurrence(healed, action="stop_duckdb_writes"),
        occurrence(gave_up, action="restart_instance"),
        occurrence(plain),  # its rule names no action
        occurrence(idle, action="reconnect_redis"),  # names one, nothing was decided
    ]
    assert r.post(body(payload(*firing))).status_code == 200
    first = notices(r.wait_notified(4), "firing")
    assert {fp: n["remediation"] for fp, n in first.items()} == dict.fromkeys(
        (healed, gave_up, plain, idle)
    )

    tried(audit, healed, "stop_duckdb_writes", "done", duration=0.1)
    tried(audit, healed, "resume_duckdb_writes", "done", duration=0.05)
    for n in (1, 2, 3):
        tried(audit, gave_up, "restart_instance", "timed_out", attempt=n, target="*", duration=None)
    tried(audit, gave_up, "restart_instance", "exhausted", 4, "*", None, verdict="exhausted")

    resolved = [
        occurrence(fp, "resolved", action=a)
        for fp, a in (
            (healed, "stop_duckdb_writes"),
            (gave_up, "restart_instance"),
            (plain, None),
            (idle, "reconnect_redis"),
        )
    ]
    assert r.post(body(payload(*resolved))).status_code == 200
    told = notices(r.wait_notified(8), "resolved")
    assert told[healed]["remediation"] == (
        "Remediation: stop_duckdb_writes on engine-a done in 0.1 s (attempt 1); "
        "undone: resume_duckdb_writes done"
    )
    assert told[gave_up]["remediation"] == (
        "Remediation: restart_instance timed out ×3, gave up (RemediationExhausted)"
    )
    assert told[plain]["remediation"] is None
    assert told[idle]["remediation"] is None
    # The line is what the notice adds: what recovered is said as before.
    assert told[healed]["recovered"].startswith("DuckDBDiskSpaceLow on engine-a:9464 recovered")


def _rename(history_url: str, old: str, new: str) -> None:
    sql = f"ALTER TABLE {old} RENAME TO {new}"
    if history_url.startswith("sqlite:///"):
        with sqlite3.connect(history_url.removeprefix("sqlite:///"), timeout=10) as conn:
            conn.execute(sql)
        return
    with psycopg.connect(history_url, autocommit=True) as conn:
        conn.execute(sql.encode())


def test_a_history_that_cannot_say_leaves_the_line_out_not_the_notice(
    start_responder: StartResponder, history_url: str, audit: AlertHistory
) -> None:
    r = start_responder(history_url)
    first, second = "b000000000000001", "b000000000000002"
    action = "stop_duckdb_writes"
    fired = [occurrence(fp, action=action) for fp in (first, second)]
    assert r.post(body(payload(*fired))).status_code == 200
    r.wait_notified(2)
    tried(audit, first, action, "done")
    tried(audit, second, action, "done")

    _rename(history_url, REMEDIATION, "remediation_away")  # the audit cannot be read now
    try:
        assert r.post(body(payload(occurrence(first, "resolved", action)))).status_code == 200
        told = notices(r.wait_notified(3), "resolved")
        assert told[first]["remediation"] is None
        r.settle()  # sent: not dead, not waiting for a retry
    finally:
        _rename(history_url, "remediation_away", REMEDIATION)

    assert r.post(body(payload(occurrence(second, "resolved", action)))).status_code == 200
    told = notices(r.wait_notified(4), "resolved")
    assert told[second]["remediation"] == (
        "Remediation: stop_duckdb_writes on engine-a done in 0.1 s (attempt 1)"
    )


# ---- the report ------------------------------------------------------------------------------
# fingerprint: (how long it lasted, or None while it fires; what remediation did)
REPORT_FIXTURE: dict[str, tuple[timedelta | None, list[tuple[str, ActionOutcome]]]] = {
    "c000000000000001": (timedelta(seconds=60), [("stop_duckdb_writes", "done")]),
    "c000000000000002": (
        timedelta(seconds=120),
        [("stop_duckdb_writes", "failed"), ("stop_duckdb_writes", "done")],
    ),
    "c000000000000003": (timedelta(seconds=600), []),
    "c000000000000004": (timedelta(seconds=300), [("stop_duckdb_writes", "timed_out")]),
    # its undo did run, but the action itself never came back done
    "c000000000000005": (
        timedelta(seconds=900),
        [("stop_duckdb_writes", "timed_out"), ("resume_duckdb_writes", "done")],
    ),
    "c000000000000006": (timedelta(seconds=30), [("stop_duckdb_writes", "skipped")]),
    "c000000000000007": (None, [("stop_duckdb_writes", "done")]),  # healed, still firing
}


def test_the_report_gives_mttr_with_and_without_an_action(
    start_responder: StartResponder, history_url: str, audit: AlertHistory
) -> None:
    r = start_responder(history_url)
    action = "stop_duckdb_writes"
    fired = [occurrence(fp, action=action) for fp in REPORT_FIXTURE]
    assert r.post(body(payload(*fired))).status_code == 200
    for fp, (_, attempts) in REPORT_FIXTURE.items():
        numbers: dict[str, int] = {}
        for name, outcome in attempts:
            if outcome == "skipped":
                tried(audit, fp, name, outcome, attempt=0, verdict="skip")
                continue
            numbers[name] = numbers.get(name, 0) + 1
            tried(audit, fp, name, outcome, attempt=numbers[name])
    ended = [
        occurrence(fp, "resolved", action=action, lasted=lasted)
        for fp, (lasted, _) in REPORT_FIXTURE.items()
        if lasted is not None
    ]
    assert r.post(body(payload(*ended))).status_code == 200

    figures = r.get("/api/report", days=1).json()
    assert (figures["occurrences"], figures["resolved"]) == (7, 6)
    assert figures["mttr_seconds"] == pytest.approx((60 + 120 + 600 + 300 + 900 + 30) / 6)
    assert figures["remediated_occurrences"] == 3
    assert (figures["resolved_remediated"], figures["resolved_unremediated"]) == (2, 4)
    assert figures["mttr_remediated_seconds"] == pytest.approx(90)
    assert figures["mttr_unremediated_seconds"] == pytest.approx((600 + 300 + 900 + 30) / 4)

    with ResponderClient(r.url, token=TOKEN) as client:
        read = client.report(days=1)
    split = ("remediated_occurrences", "resolved_remediated", "mttr_remediated_seconds")
    assert {k: read[k] for k in split} == {k: figures[k] for k in split}

    env = {"TRADEGUARD_RESPONDER_TOKEN": TOKEN, "COLUMNS": "200"}
    shown = CliRunner().invoke(alerts_app, ["report", "--days", "1", "--url", r.url], env=env)
    assert shown.exit_code == 0, shown.output
    rows = {
        line.strip("│ ").split("│")[0].strip(): line.split("│")[2].strip()
        for line in shown.stdout.splitlines()
        if line.count("│") == 3
    }
    assert rows["MTTR (started -> resolved)"] == "5m35s"
    assert rows["healed by an action"] == "1m30s (2 resolved)"
    assert rows["without an action"] == "7m38s (4 resolved)"
    assert rows["remediated (an action done)"] == "3"
