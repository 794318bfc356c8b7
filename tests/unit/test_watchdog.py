"""The dead man's switch (tradeguard.responder.watchdog) on times the test chooses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradeguard.responder.watchdog import ALERT_PATH_ALERT, DeadMansSwitch, broken_since

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_waiting_then_ok_then_broken_after_the_timeout_then_resolved() -> None:
    switch = DeadMansSwitch(120, T0)
    assert switch.status().state == "waiting"
    assert switch.check(at(119)) == []
    switch.heartbeat(at(60), "a")
    assert switch.status().state == "ok"
    assert switch.check(at(179)) == []
    (fired,) = switch.check(at(180))
    assert fired.alertname == ALERT_PATH_ALERT and fired.status == "firing"
    assert fired.starts_at == at(60), "since the last heartbeat"
    assert switch.check(at(500)) == [], "told once"
    switch.heartbeat(at(501), "a")
    (resolved,) = switch.check(at(502))
    assert resolved.status == "resolved" and resolved.starts_at == at(60)
    assert resolved.ends_at == at(502)
    assert switch.status().state == "ok" and switch.status().since == at(501)


def test_never_a_heartbeat_breaks_counting_from_the_start() -> None:
    switch = DeadMansSwitch(20, T0)
    (fired,) = switch.check(at(20))
    assert fired.starts_at == T0
    assert "since the responder started" in fired.annotations["summary"]


def test_a_resolved_watchdog_breaks_only_when_no_source_is_left() -> None:
    switch = DeadMansSwitch(120, T0)
    switch.heartbeat(at(1), "prom-a")
    switch.heartbeat(at(1), "prom-b")
    switch.gone(at(2), "prom-a")
    assert switch.check(at(3)) == []
    switch.gone(at(4), "prom-b")
    (fired,) = switch.check(at(5))
    assert fired.status == "firing" and fired.starts_at == at(1)


def test_a_restart_keeps_a_broken_path_broken_and_off_is_off() -> None:
    switch = DeadMansSwitch(120, at(1000), broken_since=at(10))
    assert switch.status().state == "broken" and switch.status().since == at(10)
    assert switch.check(at(5000)) == []
    switch.heartbeat(at(5001))
    (resolved,) = switch.check(at(5002))
    assert resolved.starts_at == at(10)
    off = DeadMansSwitch(0, T0)
    assert off.status().state == "off" and off.check(at(10_000)) == []
    (unresolved,) = DeadMansSwitch(1, at(7)).check(at(8))
    assert broken_since([unresolved]) == at(7), "what a restarted responder reads back"
    assert broken_since([]) is None


def test_time_the_responder_did_not_run_is_excused() -> None:
    switch = DeadMansSwitch(20, T0)
    switch.heartbeat(at(1), "a")
    switch.excuse(at(40))  # frozen from 2 s to 40 s: no heartbeat could arrive
    assert switch.check(at(41)) == []
    (fired,) = switch.check(at(60))
    assert fired.status == "firing"
