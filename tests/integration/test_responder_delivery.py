"""The alert path watches itself and never drops a page: the delivery outbox, criticals past the
throttle, late firing events, the dead man's switch, and a responder killed between storing and
sending. Real responders (in-process and as a separate process), real SQLite/PostgreSQL, and a
loopback HTTP sink standing in for PagerDuty.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_sink import Sink
from responder_harness import (
    RESPONDER_COMMAND,
    TOKEN,
    Responder,
    StartResponder,
    alert,
    body,
    payload,
    responder_argv,
)

from tradeguard.process import wait_until
from tradeguard.process.ports import free_port
from tradeguard.responder.channels import JsonlChannel
from tradeguard.responder.pagerduty import PagerDutyChannel
from tradeguard.responder.watchdog import ALERT_PATH_ALERT

HERE = Path(__file__).parent


def labelled(name: str, severity: str, component: str, fingerprint: str) -> dict[str, Any]:
    labels = {"alertname": name, "severity": severity, "component": component, "instance": "h:1"}
    return alert(labels=labels, fingerprint=fingerprint)


def watchdog(status: str = "firing", fingerprint: str = "00000000000000aa") -> dict[str, Any]:
    labels = {"alertname": "Watchdog", "severity": "none", "component": "meta"}
    return alert(status, labels=labels, fingerprint=fingerprint, annotations={})


# ---- criticals are never held from the pager --------------------------------------------------
def test_three_warnings_then_a_critical_page_at_once_and_chat_summarises_at_critical(
    start_responder: StartResponder, sink: Sink, tmp_path: Path
) -> None:
    pager = PagerDutyChannel("K", f"{sink.url}/v2/enqueue")
    chat = JsonlChannel(tmp_path / "notifications.jsonl")
    r = start_responder(channels=[chat, pager], throttle_window_seconds=3.0)
    warnings = [labelled(f"Slow{i}", "warning", "trade_engine", f"10{i}") for i in range(3)]
    assert r.post(body(payload(*warnings))).status_code == 200
    r.wait_notified(3)
    critical = labelled("TradeExecutionFailures", "critical", "trade_engine", "c0ffee")
    assert r.post(body(payload(critical))).status_code == 200

    # The pager is never throttled: the critical triggers PagerDuty on its own, at once.
    wait_until(lambda: sink.posted_to("/v2/enqueue"), 5, "the critical to page")
    (page,) = [c.body for c in sink.posted_to("/v2/enqueue")]
    assert page["event_action"] == "trigger" and page["dedup_key"] == "c0ffee"
    # Chat had its three trade-execution notifications this minute: the critical waits...
    assert [n["alertname"] for n in r.notifications()] == ["Slow0", "Slow1", "Slow2"]
    assert r.counter("tradeguard_responder_notifications_total", status="throttled") == 1
    # ...and goes out when the window has room, as a critical.
    (*_, released) = r.wait_notified(4)
    assert released["alertname"] == "TradeExecutionFailures"
    assert released["severity"] == "critical"
    r.settle()
    # Warnings never reached the pager, and nothing counts as sent there that was not.
    assert r.counter("tradeguard_responder_notifications_total", status="sent") == 5


def test_a_held_batch_is_announced_at_its_highest_severity(
    start_responder: StartResponder,
) -> None:
    r = start_responder(throttle_per_minute={"trade_execution": 1}, throttle_window_seconds=2.0)
    first = labelled("Slow0", "warning", "trade_engine", "200")
    held_critical = labelled("Failures", "critical", "trade_engine", "201")
    held_warning = labelled("Slow2", "warning", "trade_engine", "202")
    assert r.post(body(payload(first, held_critical, held_warning))).status_code == 200
    notes = r.wait_notified(2)
    summary = notes[1]
    assert summary["alertname"] == "Slow2", "the newest held one carries the others"
    assert summary["severity"] == "critical"
    assert summary["held_back"] == ["Failures on h:1 firing"]
    r.settle()
    merged = r.get("/api/notifications", state="merged").json()["notifications"]
    assert [m["alertname"] for m in merged] == ["Failures"]


def test_held_notifications_are_flushed_when_the_responder_stops(
    start_responder: StartResponder,
) -> None:
    r = start_responder(throttle_per_minute={"redis": 1}, throttle_window_seconds=3600.0)
    burst = [labelled(f"R{i}", "warning", "redis", f"30{i}") for i in range(3)]
    assert r.post(body(payload(*burst))).status_code == 200
    r.wait_notified(1)
    r.settle(held=2)
    r.server.stop()
    notes = r.notifications()
    assert len(notes) == 2, "stopping sends what the throttle held, as one summary"
    assert notes[1]["held_back"] == ["R1 on h:1 firing"]


# ---- late firing events ---------------------------------------------------------------------
def test_a_firing_event_after_its_resolved_event_is_stored_not_notified(
    start_responder: StartResponder, history_url: str
) -> None:
    r = start_responder(history_url)
    assert r.post(body(payload(alert("resolved")))).json() == {"accepted": 1, "duplicates": 0}
    assert r.post(body(payload(alert("firing")))).json() == {"accepted": 1, "duplicates": 0}
    assert r.stored() == 2
    r.wait_notified(1)
    r.settle()
    assert [n["status"] for n in r.notifications()] == ["resolved"]
    assert r.get("/api/alerts/firing").json()["count"] == 0


# ---- the dead man's switch ------------------------------------------------------------------
def alert_path(r: Responder) -> dict[str, Any]:
    state: dict[str, Any] = r.get("/healthz", token=None).json()["alert_path"]
    return state


def test_no_watchdog_breaks_the_alert_path_and_one_brings_it_back(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    r = start_responder(watchdog_timeout_seconds=2.0)
    assert alert_path(r)["state"] == "waiting"
    assert r.post(body(payload(watchdog()))).json() == {"accepted": 0, "duplicates": 0}
    assert alert_path(r)["state"] == "ok"
    assert r.stored() == 0, "heartbeats are not history"

    (broken,) = r.wait_notified(1, timeout=10)
    assert broken["alertname"] == ALERT_PATH_ALERT and broken["status"] == "firing"
    assert broken["severity"] == "critical" and broken["component"] == "meta"
    assert "the last Watchdog alert arrived at" in broken["summary"]
    state = alert_path(r)
    assert state["state"] == "broken" and state["since"] == state["last_watchdog_at"]
    assert r.counter("tradeguard_responder_alert_path_up") == 0
    firing = r.get("/api/alerts/firing").json()["alerts"]
    assert [a["alertname"] for a in firing] == [ALERT_PATH_ALERT]

    # A resolved Watchdog is Alertmanager forgetting it, not a heartbeat.
    r.post(body(payload(watchdog("resolved"))))
    assert alert_path(r)["state"] == "broken"
    r.post(body(payload(watchdog())))
    notes = r.wait_notified(2)
    assert notes[1]["alertname"] == ALERT_PATH_ALERT and notes[1]["status"] == "resolved"
    assert "Watchdog alerts arrive again" in notes[1]["recovered"]
    assert alert_path(r)["state"] == "ok"
    assert r.counter("tradeguard_responder_alert_path_up") == 1
    assert r.counter("tradeguard_responder_watchdog_last_received_timestamp_seconds") > 0


def test_the_last_firing_watchdog_resolving_breaks_the_path_at_once(
    start_responder: StartResponder,
) -> None:
    """Alertmanager resolves Watchdog when its Prometheus stops sending it: with two
    Prometheus servers (two Watchdog fingerprints) one going is no alarm, both going is."""
    r = start_responder(watchdog_timeout_seconds=600.0)
    r.post(body(payload(watchdog(fingerprint="01"), watchdog(fingerprint="02"))))
    r.post(body(payload(watchdog("resolved", fingerprint="01"), watchdog(fingerprint="02"))))
    r.settle()
    assert alert_path(r)["state"] == "ok" and r.notifications() == []
    r.post(body(payload(watchdog("resolved", fingerprint="02"))))
    (broken,) = r.wait_notified(1, timeout=5)  # not after the 600 s timeout
    assert broken["alertname"] == ALERT_PATH_ALERT and broken["status"] == "firing"
    assert alert_path(r)["state"] == "broken"


def test_a_restarted_responder_remembers_the_path_was_broken(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    first = start_responder(watchdog_timeout_seconds=1.0)
    first.wait_notified(1)
    since = alert_path(first)["since"]
    first.server.stop()
    second = start_responder(watchdog_timeout_seconds=1.0)
    state = alert_path(second)
    assert state["state"] == "broken" and state["since"] == since
    second.post(body(payload(watchdog())))
    notes = second.wait_notified(2)
    assert [n["status"] for n in notes] == ["firing", "resolved"], "one firing notice, not two"


def test_the_switch_can_be_turned_off(start_responder: StartResponder) -> None:
    r = start_responder(watchdog_timeout_seconds=0)
    assert alert_path(r)["state"] == "off"


# ---- killed between storing and sending ------------------------------------------------------
def run_responder(script: list[str], port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    jsonl = str(tmp_path / "notifications.jsonl")
    argv = responder_argv(port, tmp_path, "--jsonl-path", jsonl, command=script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGUARD_RESPONDER_")}
    log = (tmp_path / "responder.log").open("ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_until(lambda: _healthy(port) or proc.poll() is not None, 30, "the responder to start")
    assert proc.poll() is None, (tmp_path / "responder.log").read_text()
    return proc


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_killed_between_storing_and_sending_it_sends_after_restart_once(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    go = tmp_path / "crash-now"
    hook = [sys.executable, str(HERE / "responder_crash_hook.py"), str(go)]
    crashing = run_responder(hook, port, tmp_path)
    processes.append(crashing)
    reply = httpx.post(
        f"http://127.0.0.1:{port}/alertmanager/webhook",
        content=body(payload()),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert reply.status_code == 200 and reply.json()["accepted"] == 1
    go.touch()  # the hook holds the first delivery until the 200 is read
    assert crashing.wait(15) == -signal.SIGKILL, "the hook kills it at its first delivery"
    jsonl = tmp_path / "notifications.jsonl"
    assert not jsonl.exists(), "nothing was sent before the crash"

    restarted = run_responder(list(RESPONDER_COMMAND), port, tmp_path)
    processes.append(restarted)
    wait_until(jsonl.exists, 15, "the stored notification to be delivered after the restart")
    wait_until(
        lambda: (
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["outbox"]
            == {"pending": 0, "held": 0, "dead": 0}
        ),
        15,
        "the outbox to empty",
    )
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [(n["alertname"], n["status"]) for n in lines] == [
        ("RedisTradeStateLatencyHigh", "firing")
    ]
    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(15) == 0


def test_cli_lists_deliveries_and_failures(
    start_responder: StartResponder, sink: Sink, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from tradeguard.responder.cli import alerts_app

    sink.status = 503
    pager = PagerDutyChannel("K", f"{sink.url}/v2/enqueue")
    r = start_responder(channels=[JsonlChannel(tmp_path / "notifications.jsonl"), pager])
    r.post(body(payload()))
    r.wait_notified(1)
    wait_until(lambda: len(sink.requests) >= 1, 10, "PagerDuty to be tried")
    args = ["--url", r.url, "--token", TOKEN, "--limit", "10"]
    listed = CliRunner().invoke(alerts_app, ["notifications", *args], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert "jsonl" in listed.output and "sent" in listed.output
    assert "pagerduty" in listed.output and "answered 503" in listed.output
    only = CliRunner().invoke(
        alerts_app, ["notifications", *args, "--failures"], env={"COLUMNS": "250"}
    )
    assert "pagerduty" in only.output and "jsonl" not in only.output
    bad = CliRunner().invoke(alerts_app, ["notifications", *args, "--state", "lost"])
    assert bad.exit_code == 1 and "--state must be one of" in bad.output


def test_in_one_group_commit_the_order_of_arrival_decides(history_url: str) -> None:
    """A firing event then its resolved event, stored in one transaction (two webhooks in one
    group commit): both owe notifications. The other way round, the late firing one does not."""
    from tradeguard.responder.events import events_from_payload
    from tradeguard.responder.history import open_history
    from tradeguard.responder.notification import Notification
    from tradeguard.responder.outbox import OutboxItem
    from tradeguard.responder.payload import parse_payload

    def plan(event: Any) -> list[OutboxItem]:
        return [OutboxItem("jsonl", Notification.from_event(event))]

    history = open_history(history_url)
    try:
        first = events_from_payload(parse_payload(body(payload(alert("firing")))))
        then = events_from_payload(parse_payload(body(payload(alert("resolved")))))
        assert history.insert_many([*first, *then], plan) == [True, True]
        assert len(history.outbox_list(10)) == 2
        other = {"fingerprint": "0000000000000bbb"}
        late = events_from_payload(parse_payload(body(payload(alert("resolved", **other)))))
        late += events_from_payload(parse_payload(body(payload(alert("firing", **other)))))
        assert history.insert_many(late, plan) == [True, True]
        statuses = [e.notification.status for e in history.outbox_list(10)]
        assert statuses == ["resolved", "resolved", "firing"]  # newest first
    finally:
        history.close()
