"""Alert to action to outcome and back: a real responder decides, a real engine obeys through
the Redis command stream, the audit and the metrics say what happened.

The alert arrives as Alertmanager sends it (the webhook), so these tests also show that a
repeated delivery (an Alertmanager retry, a second peer) runs the action once, that a resolved
alert undoes a reversible action, that an action off by default is recorded as skipped and not
run, and that an action that cannot help ends in one RemediationExhausted notice after the
budget, never in a loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from responder_harness import Responder, StartResponder, alert, body, payload

from tradeguard.bus.commands import turn_off, turn_on
from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.config import Settings
from tradeguard.engine.control import intake_key
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.process import wait_until
from tradeguard.process.services import RedisServer

REPLICA = "engine-a"


@pytest.fixture
def engine(settings: Settings) -> Iterator[EngineService]:
    with EngineService(settings, EngineOptions(consumer=REPLICA, metrics_port=0)) as svc:
        assert svc.commands.joined.wait(10), "the engine's command listener did not start"
        yield svc


def remediating(start: StartResponder, settings: Settings, **overrides: Any) -> Responder:
    """A responder whose remediation reaches the engines' Redis; the dead man's switch off
    (these tests send no Watchdog)."""
    values: dict[str, Any] = {
        "redis_url": settings.redis_url,
        "watchdog_timeout_seconds": 0,
        "remediation_command_timeout_seconds": 10.0,
    }
    values.update(overrides)
    return start(**values)


def passes(r: Responder, n: int = 2) -> None:
    """Until the responder's ticker has made ``n`` more passes (each decides once more)."""
    runtime = r.server.runtime
    target = runtime.ticks + n
    wait_until(lambda: runtime.ticks >= target, 10 + 2 * n, f"{n} responder passes")


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def disk_low(status: str, starts_at: str, **extra: Any) -> dict[str, Any]:
    return alert(
        status,
        alertname="DuckDBDiskSpaceLow",
        fingerprint="d15c10e5d15c10e5",
        startsAt=starts_at,
        endsAt=now_iso() if status == "resolved" else "0001-01-01T00:00:00Z",
        labels={
            "alertname": "DuckDBDiskSpaceLow",
            "severity": "critical",
            "component": "duckdb",
            "replica": REPLICA,
        },
        annotations={"summary": "DuckDB disk space low", "action": "stop_duckdb_writes"},
        **extra,
    )


def actions(r: Responder, **params: Any) -> list[dict[str, Any]]:
    reply = r.get("/api/actions", limit=100, **params)
    assert reply.status_code == 200, reply.text
    rows: list[dict[str, Any]] = reply.json()["actions"]
    return rows


def outcome_of(r: Responder, action: str) -> str | None:
    rows = actions(r, action=action)
    return rows[0]["outcome"] if rows else None


def test_a_firing_alert_runs_its_action_once_and_its_resolution_undoes_it(
    start_responder: StartResponder, settings: Settings, engine: EngineService
) -> None:
    r = remediating(start_responder, settings)
    persister = engine.persister
    assert persister is not None and not persister.writes_stopped
    started = now_iso()
    firing = body(payload(disk_low("firing", started)))
    assert r.post(firing).status_code == 200

    wait_until(
        lambda: outcome_of(r, "stop_duckdb_writes") == "done",
        20,
        "stop_duckdb_writes to be done by the engine",
    )
    assert persister.writes_stopped, "the engine's DuckDB write gate is closed"
    [row] = actions(r, action="stop_duckdb_writes")
    assert (row["target"], row["attempt"], row["verdict"]) == (REPLICA, 1, "run")
    assert row["alertname"] == "DuckDBDiskSpaceLow" and row["duration_seconds"] is not None
    assert (
        r.counter(
            "tradeguard_remediation_actions_total", action="stop_duckdb_writes", outcome="done"
        )
        == 1
    )

    # Alertmanager retries the delivery, a second peer sends it too: nothing runs again.
    assert r.post(firing).status_code == 200
    assert r.post(firing).status_code == 200
    passes(r)
    assert len(actions(r, action="stop_duckdb_writes")) == 1

    assert r.post(body(payload(disk_low("resolved", started)))).status_code == 200
    wait_until(
        lambda: outcome_of(r, "resume_duckdb_writes") == "done",
        20,
        "the resolved alert to resume DuckDB writes",
    )
    assert not persister.writes_stopped
    passes(r)
    assert len(actions(r, action="resume_duckdb_writes")) == 1, "undone once"


def test_an_action_off_by_default_is_recorded_as_skipped_and_not_run(
    start_responder: StartResponder, settings: Settings, engine: EngineService
) -> None:
    r = remediating(start_responder, settings)
    volume = alert(
        alertname="TradeVolumeHigh",
        fingerprint="70117a3e70117a3e",
        startsAt=now_iso(),
        labels={"alertname": "TradeVolumeHigh", "severity": "warning", "component": "engine"},
        annotations={"summary": "many orders", "action": "throttle_intake"},
    )
    assert r.post(body(payload(volume))).status_code == 200
    wait_until(lambda: outcome_of(r, "throttle_intake") == "skipped", 10, "the skip recorded")
    [row] = actions(r, action="throttle_intake")
    assert row["attempt"] == 0 and "off" in row["reason"]
    redis = make_client(settings.redis_url)
    assert redis.hget(intake_key(Keys()), "paused") is None, "intake untouched"


def test_dry_run_records_what_it_would_do_and_does_nothing(
    start_responder: StartResponder, settings: Settings, engine: EngineService
) -> None:
    r = remediating(start_responder, settings, remediation_dry_run=True)
    assert r.post(body(payload(disk_low("firing", now_iso())))).status_code == 200
    wait_until(lambda: outcome_of(r, "stop_duckdb_writes") == "dry_run", 10, "the dry run")
    assert engine.persister is not None and not engine.persister.writes_stopped


def test_an_action_that_cannot_help_ends_in_one_exhausted_notice(
    start_responder: StartResponder, settings: Settings, engine: EngineService
) -> None:
    """No engine supervises the instance: every attempt times out, three attempts are made
    (the cool-down short here), then one critical RemediationExhausted names what was tried."""
    r = remediating(
        start_responder,
        settings,
        remediation_command_timeout_seconds=1.0,
        remediation_cooldown_seconds=0.5,
    )
    failed = alert(
        alertname="InstanceFailed",
        fingerprint="1f1f1f1f1f1f1f1f",
        startsAt=now_iso(),
        labels={
            "alertname": "InstanceFailed",
            "severity": "critical",
            "component": "instance",
            "instance": "mt5-nowhere",
        },
        annotations={"summary": "instance failed", "action": "restart_instance"},
    )
    assert r.post(body(payload(failed))).status_code == 200

    def exhausted_notices() -> list[dict[str, Any]]:
        return [n for n in r.notifications() if n["alertname"] == "RemediationExhausted"]

    wait_until(lambda: bool(exhausted_notices()), 30, "RemediationExhausted to be notified")
    rows = actions(r, action="restart_instance")
    tried = sorted(row["attempt"] for row in rows if row["outcome"] == "timed_out")
    assert tried == [1, 2, 3]
    assert [row["outcome"] for row in rows if row["attempt"] == 4] == ["exhausted"]
    [notice] = exhausted_notices()
    assert notice["severity"] == "critical" and notice["status"] == "firing"
    passes(r, 3)  # further passes: no fourth attempt, no second notice
    assert len(actions(r, action="restart_instance")) == 4
    assert len(exhausted_notices()) == 1


def test_an_action_turned_off_at_run_time_waits_until_it_is_on_again(
    start_responder: StartResponder, settings: Settings, engine: EngineService
) -> None:
    """The shared run-time switch (every responder replica reads it at each pass): off, the
    firing alert is recorded as skipped and nothing runs; on again, the next pass runs it."""
    redis = make_client(settings.redis_url)
    turn_off(redis, Keys(), "stop_duckdb_writes")
    r = remediating(start_responder, settings)
    assert r.post(body(payload(disk_low("firing", now_iso())))).status_code == 200
    wait_until(lambda: outcome_of(r, "stop_duckdb_writes") == "skipped", 10, "the skip")
    persister = engine.persister
    assert persister is not None and not persister.writes_stopped
    turn_on(redis, Keys(), "stop_duckdb_writes")
    wait_until(
        lambda: outcome_of(r, "stop_duckdb_writes") == "done", 20, "the action once turned on"
    )
    assert persister.writes_stopped


def test_an_undo_that_could_not_be_issued_is_tried_again_until_done(
    start_responder: StartResponder,
    settings: Settings,
    engine: EngineService,
    redis_server: RedisServer,
) -> None:
    """The alert resolves while Redis (the command stream) is frozen: the undo fails, and is
    issued again once Redis answers, so DuckDB writes never stay stopped after their alert."""
    r = remediating(start_responder, settings)
    persister = engine.persister
    assert persister is not None
    started = now_iso()
    assert r.post(body(payload(disk_low("firing", started)))).status_code == 200
    wait_until(lambda: persister.writes_stopped, 20, "DuckDB writes to stop")
    redis_server.pause()
    try:
        assert r.post(body(payload(disk_low("resolved", started)))).status_code == 200
        wait_until(
            lambda: outcome_of(r, "resume_duckdb_writes") == "failed",
            30,
            "the first undo to fail on the frozen command stream",
        )
    finally:
        redis_server.resume()
    wait_until(
        lambda: outcome_of(r, "resume_duckdb_writes") == "done",
        40,
        "the undo to be issued again and done",
    )
    assert not persister.writes_stopped
    tried = [row["attempt"] for row in actions(r, action="resume_duckdb_writes")]
    assert sorted(tried)[:2] == [1, 2]
