"""What a notification says was done about its alert (tradeguard.responder.notification's
remediation line), how each channel renders it, and the report's MTTR with and without an
action (tradeguard.responder.report)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tradeguard.responder import remediation
from tradeguard.responder.channels import AppriseChannel, ConsoleChannel, notification_record
from tradeguard.responder.events import AlertEvent
from tradeguard.responder.history.actions import ActionAttempt, ActionOutcome, ActionVerdict
from tradeguard.responder.history.base import Occurrence
from tradeguard.responder.notification import (
    EXHAUSTED_ALERT,
    NO_ACTION,
    Notification,
    remediation_line,
)
from tradeguard.responder.pagerduty import PagerDutyChannel
from tradeguard.responder.report import effectiveness

STARTS = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def attempt(
    action: str,
    number: int = 1,
    outcome: ActionOutcome = "done",
    verdict: ActionVerdict = "run",
    target: str = "engine-a",
    reason: str = "the alert fires",
    detail: str = "",
    duration: float | None = None,
) -> ActionAttempt:
    decided = STARTS + timedelta(minutes=number)
    return ActionAttempt(
        id=number,
        fingerprint="f00d",
        starts_at=STARTS,
        alertname="DuckDBDiskSpaceLow",
        action=action,
        target=target,
        attempt=number,
        decided_by="responder-a:9466",
        decided_at=decided,
        verdict=verdict,
        reason=reason,
        command_id=None,
        outcome=outcome,
        detail=detail,
        finished_at=None if outcome == "pending" else decided,
        duration_seconds=duration,
    )


def test_the_controller_and_the_notice_name_the_same_things() -> None:
    assert EXHAUSTED_ALERT == remediation.EXHAUSTED_ALERT
    assert NO_ACTION == remediation.NO_ACTION


@pytest.mark.parametrize(
    ("action", "attempts", "line"),
    [
        (
            "stop_duckdb_writes",
            [
                attempt("stop_duckdb_writes", duration=0.12, detail="engine-a: stopped"),
                attempt("resume_duckdb_writes", duration=0.05),
            ],
            "Remediation: stop_duckdb_writes on engine-a done in 0.1 s (attempt 1); "
            "undone: resume_duckdb_writes done",
        ),
        (
            "restart_instance",
            [
                *(attempt("restart_instance", n, "timed_out", target="*") for n in (1, 2, 3)),
                attempt("restart_instance", 4, "exhausted", "exhausted", target="*"),
            ],
            f"Remediation: restart_instance timed out ×3, gave up ({EXHAUSTED_ALERT})",
        ),
        (
            "throttle_intake",
            [
                attempt(
                    "throttle_intake",
                    0,
                    "skipped",
                    "skip",
                    target="*",
                    reason="throttle_intake is off (turn it on with X)",
                )
            ],
            "Remediation: throttle_intake is off (turn it on with X) (skipped)",
        ),
        (
            "reconnect_redis",
            [attempt("reconnect_redis", 0, "skipped", "skip", reason="stale alert: 4000 s")],
            "Remediation: reconnect_redis skipped: stale alert: 4000 s",
        ),
        (
            "reconnect_redis",
            [attempt("reconnect_redis", 1, "dry_run", "dry_run")],
            "Remediation: reconnect_redis on engine-a would have run (dry run)",
        ),
        (
            "reconnect_redis",
            [
                attempt("reconnect_redis", 1, "failed", detail="engine-a: refused"),
                attempt("reconnect_redis", 2, "done", duration=2.0),
            ],
            "Remediation: reconnect_redis on engine-a failed, done in 2.0 s (attempt 2)",
        ),
        (
            "stop_duckdb_writes",
            [
                attempt("stop_duckdb_writes", 1, "timed_out"),
                attempt("resume_duckdb_writes", 1, "pending"),
            ],
            "Remediation: stop_duckdb_writes on engine-a timed out; "
            "undo: resume_duckdb_writes in progress",
        ),
        (
            "reconnect_broker",
            [attempt("reconnect_broker", 1, "pending")],
            "Remediation: reconnect_broker on engine-a in progress",
        ),
        (
            "reconnect_broker",
            [attempt("reconnect_broker", 1, "not_applicable", detail="engine-a: no session")],
            "Remediation: reconnect_broker on engine-a not applicable (engine-a: no session)",
        ),
    ],
)
def test_the_line_says_what_was_done(action: str, attempts: list[ActionAttempt], line: str) -> None:
    assert remediation_line(action, attempts) == line


def test_nothing_decided_gives_no_line() -> None:
    assert remediation_line("reconnect_redis", []) is None
    assert remediation_line("reconnect_redis", [attempt("restart_instance")]) is None


def test_a_long_engine_detail_is_cut() -> None:
    line = remediation_line(
        "reconnect_redis", [attempt("reconnect_redis", 1, "failed", detail="x" * 5000)]
    )
    assert line is not None and len(line) < 300 and line.endswith("x…)")


def event(annotations: dict[str, str], status: Any = "resolved") -> AlertEvent:
    return AlertEvent(
        fingerprint="f00d",
        alertname="DuckDBDiskSpaceLow",
        status=status,
        starts_at=STARTS,
        ends_at=STARTS + timedelta(minutes=3) if status == "resolved" else None,
        severity="critical",
        component="duckdb",
        instance="engine-a",
        labels={"alertname": "DuckDBDiskSpaceLow", "severity": "critical"},
        annotations={"summary": "DuckDB disk is nearly full.", **annotations},
        received_at=STARTS,
        receiver="pager",
    )


def test_the_action_comes_from_the_rule_and_survives_the_outbox() -> None:
    assert Notification.from_event(event({})).action is None
    assert Notification.from_event(event({"action": NO_ACTION})).action is None
    n = Notification.from_event(event({"action": "stop_duckdb_writes"}))
    assert n.action == "stop_duckdb_writes" and n.remediation is None
    told = replace(n, remediation="Remediation: stop_duckdb_writes on engine-a done")
    assert Notification.from_json(told.to_json()) == told
    older = {k: v for k, v in n.to_json().items() if k not in ("action", "remediation")}
    assert Notification.from_json(older) == replace(n, action=None)  # stored by an older version


LINE = "Remediation: stop_duckdb_writes on engine-a done in 0.1 s (attempt 1)"


def test_every_channel_renders_the_line() -> None:
    resolved = replace(
        Notification.from_event(event({"action": "stop_duckdb_writes"})), remediation=LINE
    )
    firing = replace(
        Notification.from_event(event({"action": "stop_duckdb_writes"}, "firing")), remediation=LINE
    )
    assert ConsoleChannel().render(resolved).plain.endswith(f"  {LINE}")
    assert notification_record(resolved)["remediation"] == LINE
    assert notification_record(replace(resolved, remediation=None))["remediation"] is None
    apprise = AppriseChannel(["json://127.0.0.1:9/"])
    assert apprise.body(resolved).splitlines()[:2] == [resolved.recovered, LINE]
    assert LINE not in apprise.body(replace(resolved, remediation=None))
    pager = PagerDutyChannel("routing-key")
    assert pager.event(firing)["payload"]["custom_details"]["remediation"] == LINE
    assert (
        "remediation"
        not in pager.event(replace(firing, remediation=None))["payload"]["custom_details"]
    )
    # A resolve takes only its key: the Events API ignores anything else there.
    assert set(pager.event(resolved)) == {"routing_key", "event_action", "dedup_key"}


def occurrence(name: str, lasted: timedelta | None, remediated: bool) -> Occurrence:
    ends = STARTS + lasted if lasted is not None else None
    return Occurrence("f" + name, name, "critical", STARTS, STARTS, ends, None, remediated)


def test_mttr_is_split_by_whether_an_action_healed() -> None:
    report = effectiveness(
        [
            occurrence("A", timedelta(seconds=60), True),
            occurrence("B", timedelta(seconds=120), True),
            occurrence("C", timedelta(seconds=600), False),
            occurrence("D", timedelta(seconds=300), False),
            occurrence("E", None, True),  # healed, but its resolved notice is not in yet
        ],
        STARTS,
        STARTS + timedelta(days=1),
    )
    figures = report.to_json()
    assert figures["mttr_seconds"] == 270
    assert figures["mttr_remediated_seconds"] == 90
    assert figures["mttr_unremediated_seconds"] == 450
    assert figures["remediated_occurrences"] == 3
    assert (figures["resolved_remediated"], figures["resolved_unremediated"]) == (2, 2)


def test_without_either_kind_its_mttr_is_none() -> None:
    figures = effectiveness(
        [occurrence("A", timedelta(seconds=60), False)], STARTS, STARTS + timedelta(days=1)
    ).to_json()
    assert figures["mttr_remediated_seconds"] is None
    assert figures["mttr_unremediated_seconds"] == 60
    assert figures["remediated_occurrences"] == 0


def test_every_channel_names_who_is_on_call_when_there_is_someone() -> None:
    firing = replace(Notification.from_event(event({}, "firing")), on_call="ana")
    assert Notification.from_json(firing.to_json()) == firing
    assert ConsoleChannel().render(firing).plain.endswith("  on call: ana")
    assert notification_record(firing)["on_call"] == "ana"
    apprise = AppriseChannel(["json://127.0.0.1:9/"])
    assert "On call: ana" in apprise.body(firing).splitlines()
    assert "On call" not in apprise.body(replace(firing, on_call=None))
    pager = PagerDutyChannel("routing-key")
    assert pager.event(firing)["payload"]["custom_details"]["on_call"] == "ana"
    assert "on_call" not in pager.event(replace(firing, on_call=None))["payload"]["custom_details"]
