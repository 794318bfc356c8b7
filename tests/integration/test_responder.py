"""The responder's intake against a real server, real SQLite and a real PostgreSQL.

Each test starts a responder on a free loopback port and talks HTTP to it as Alertmanager
would. What was stored is checked by querying the history table directly, not through the
code under test.
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_sink import Sink
from responder_harness import (
    FINGERPRINT,
    TOKEN,
    Responder,
    StartResponder,
    alert,
    body,
    payload,
)
from rich.console import Console
from typer.testing import CliRunner

from tradeguard.errors import ConfigError, ServiceError
from tradeguard.process import wait_until
from tradeguard.process.ports import free_port
from tradeguard.process.services import require_binary
from tradeguard.responder.auth import AuthConfigError
from tradeguard.responder.channels import ConsoleChannel, JsonlChannel
from tradeguard.responder.cli import alerts_app
from tradeguard.responder.service import (
    ResponderServer,
    ResponderSettings,
    load_responder_settings,
)


# ---- storage, idempotency, notifications (both backends) ---------------------------------------
def test_firing_duplicate_resolved(start_responder: StartResponder, history_url: str) -> None:
    r = start_responder(history_url)

    first = r.post(body(payload()))
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 1, "duplicates": 0}
    firing = r.get("/api/alerts/firing").json()
    assert firing["count"] == 1
    shown = firing["alerts"][0]
    assert shown["alertname"] == "RedisTradeStateLatencyHigh"
    assert shown["fingerprint"] == FINGERPRINT and shown["status"] == "firing"
    assert shown["starts_at"] == "2024-05-01T10:00:00.123456Z"
    assert shown["severity"] == "critical" and shown["instance"] == "127.0.0.1:6379"
    assert shown["labels"]["component"] == "redis_trade_state"
    (note,) = r.wait_notified(1)
    assert note["status"] == "firing" and note["severity"] == "critical"
    assert note["summary"] == "Trade-state Redis reads are slow."

    # The same delivery from a second Alertmanager replica (or a second receiver).
    again = r.post(body(payload(receiver="pager")))
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 1}
    assert r.stored() == 1
    r.settle()
    assert len(r.notifications()) == 1

    resolved = r.post(body(payload(alert("resolved"))))
    assert resolved.json() == {"accepted": 1, "duplicates": 0}
    assert r.get("/api/alerts/firing").json() == {"count": 0, "alerts": []}
    assert r.stored() == 2
    notes = r.wait_notified(2)
    assert [n["status"] for n in notes] == ["firing", "resolved"]
    recovered = notes[1]["recovered"]
    assert "RedisTradeStateLatencyHigh on 127.0.0.1:6379 recovered after 3m29s" in recovered
    assert "back within threshold (5ms)" in recovered
    assert "Trade-state Redis reads are slow." in recovered

    assert r.post(body(payload(alert("resolved")))).json() == {"accepted": 0, "duplicates": 1}
    r.settle()
    assert len(r.notifications()) == 2

    history = r.get("/api/alerts/history").json()["alerts"]
    assert [e["status"] for e in history] == ["resolved", "firing"]
    assert history[0]["ends_at"] == "2024-05-01T10:03:30.000000Z"

    assert r.counter("tradeguard_responder_webhooks_total", status="accepted") == 2
    assert r.counter("tradeguard_responder_webhooks_total", status="duplicate") == 2
    assert r.counter("tradeguard_responder_alert_events_total", status="firing") == 1
    assert r.counter("tradeguard_responder_alert_events_total", status="resolved") == 1
    assert r.counter("tradeguard_responder_notifications_total", status="sent") == 2


def test_concurrent_replicas_store_and_notify_once(
    start_responder: StartResponder, history_url: str
) -> None:
    r = start_responder(history_url)
    deliveries = [body(payload(receiver=f"replica-{i}")) for i in range(8)]
    barrier = threading.Barrier(len(deliveries))

    def deliver(content: bytes) -> dict[str, int]:
        barrier.wait()
        response = r.post(content)
        assert response.status_code == 200, response.text
        result: dict[str, int] = response.json()
        return result

    with ThreadPoolExecutor(len(deliveries)) as pool:
        results = list(pool.map(deliver, deliveries))
    assert sum(x["accepted"] for x in results) == 1
    assert sum(x["duplicates"] for x in results) == 7
    assert r.stored() == 1
    r.wait_notified(1)
    r.settle()
    assert len(r.notifications()) == 1


def test_newer_occurrence_replaces_an_unresolved_older_one(
    start_responder: StartResponder, history_url: str
) -> None:
    """A lost resolved notice must not leave a ghost alert firing forever."""
    r = start_responder(history_url)
    r.post(body(payload(alert(startsAt="2024-05-01T09:00:00Z"))))
    r.post(body(payload(alert(startsAt="2024-05-01T11:00:00Z"))))
    firing = r.get("/api/alerts/firing").json()["alerts"]
    assert [a["starts_at"] for a in firing] == ["2024-05-01T11:00:00.000000Z"]


# ---- rejected deliveries store nothing -------------------------------------------------------
def _huge_chunks() -> Iterator[bytes]:
    """A body without Content-Length (chunked), larger than the 1 MiB default limit."""
    yield b'{"version": "4", "padding": "'
    for _ in range(40):
        yield b"x" * 65536
    yield b'"}'


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("wrong version", {"content": body(payload() | {"version": "3"})}, 422, "version"),
    (
        "missing field",
        {"content": body({k: v for k, v in payload().items() if k != "alerts"})},
        422,
        "alerts: field required",
    ),
    (
        "second alert invalid",
        {"content": body(payload(alert(), alert(fingerprint="ff", labels={"x": "y"})))},
        422,
        "alerts[1].labels",
    ),
    ("bad json", {"content": b'{"version": "4", '}, 400, "not valid JSON"),
    ("huge body", {"content": b"{" + b" " * (2 * 1024 * 1024) + b"}"}, 413, "limit"),
    ("huge chunked body", {"content": "chunks"}, 413, "limit"),
    ("wrong token", {"content": body(payload()), "token": "nope"}, 401, "wrong credentials"),
    ("missing token", {"content": body(payload()), "token": None}, 401, "missing credentials"),
    (
        "wrong content type",
        {"content": body(payload()), "content_type": "text/plain"},
        415,
        "application/json",
    ),
]


@pytest.mark.parametrize(
    ("request_args", "status", "message"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_deliveries_are_refused_and_store_nothing(
    start_responder: StartResponder, request_args: dict[str, Any], status: int, message: str
) -> None:
    r = start_responder()
    args = dict(request_args)
    if args["content"] == "chunks":
        args["content"] = _huge_chunks()
    response = r.post(**args)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert r.stored() == 0
    assert r.notifications() == []
    assert r.counter("tradeguard_responder_webhooks_total", status="rejected") == 1
    assert r.counter("tradeguard_responder_alert_events_total", status="firing") == 0
    # The responder is still healthy and accepts the next good delivery.
    assert r.post(body(payload())).json() == {"accepted": 1, "duplicates": 0}


def test_validation_errors_list_every_problem(start_responder: StartResponder) -> None:
    r = start_responder()
    doc = payload(alert(fingerprint="zz"))
    doc["version"] = "5"
    problems = r.post(body(doc)).json()["problems"]
    assert len(problems) == 2
    assert problems[0].startswith("version:") and problems[1].startswith("alerts[0].fingerprint")


def test_a_failing_store_is_a_503_so_alertmanager_retries(start_responder: StartResponder) -> None:
    r = start_responder()
    r.server.history.close()  # the store goes away under the running responder
    response = r.post(body(payload()))
    assert response.status_code == 503
    assert "retry" in response.json()["error"]
    assert r.notifications() == []
    assert r.counter("tradeguard_responder_webhooks_total", status="accepted") == 0
    assert r.counter("tradeguard_http_requests_total", status="5xx") == 1
    health = r.get("/healthz", token=None)
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert r.get("/api/alerts/firing").status_code == 503


# ---- the read API, health, metrics --------------------------------------------------------------
def test_history_api_limits_filters_and_needs_credentials(start_responder: StartResponder) -> None:
    r = start_responder()
    for i in range(3):
        r.post(body(payload(alert(fingerprint=f"{i:016x}"))))
    other = alert(fingerprint="00000000000000ff")
    other["labels"] = other["labels"] | {"alertname": "DuckDBWriteFailures"}
    r.post(body(payload(other)))

    assert r.get("/api/alerts/history").json()["count"] == 4
    assert r.get("/api/alerts/history", limit=2).json()["count"] == 2
    only = r.get("/api/alerts/history", alertname="DuckDBWriteFailures").json()["alerts"]
    assert [e["fingerprint"] for e in only] == ["00000000000000ff"]
    for bad in ("0", "1001", "-1", "ten"):
        response = r.get("/api/alerts/history", limit=bad)
        assert response.status_code == 400 and "limit" in response.json()["error"]
    assert r.get("/api/alerts/firing", token=None).status_code == 401
    assert r.get("/api/alerts/history", token="wrong").status_code == 401
    missing = r.get("/nope")
    assert missing.status_code == 404 and "error" in missing.json()
    assert httpx.get(r.server.webhook_url).status_code == 405
    health = r.get("/healthz", token=None).json()
    assert health["status"] == "ok" and health["outbox"] == {"pending": 0, "held": 0, "dead": 0}


def test_metrics_page_is_valid_and_counts(start_responder: StartResponder) -> None:
    r = start_responder()
    r.post(body(payload()))
    r.post(body(payload()))
    r.post(b"{", token=TOKEN)
    page = r.get("/metrics", token=None)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = page.text
    assert 'tradeguard_responder_webhooks_total{status="accepted"} 1.0' in text
    assert 'tradeguard_responder_webhooks_total{status="duplicate"} 1.0' in text
    assert 'tradeguard_responder_webhooks_total{status="rejected"} 1.0' in text
    assert 'tradeguard_responder_alert_events_total{status="firing"} 1.0' in text
    assert 'tradeguard_responder_notifications_total{status="sent"} 1.0' in text
    assert 'tradeguard_http_requests_total{status="2xx"} 2.0' in text  # the scrape counts later
    assert 'tradeguard_http_requests_total{status="4xx"} 1.0' in text
    assert "tradeguard_http_request_duration_seconds_count 3.0" in text
    assert "process_resident_memory_bytes" in text
    check = subprocess.run(
        [require_binary("promtool"), "check", "metrics"],
        input=page.content,
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    again = r.get("/metrics", token=None).text
    assert 'tradeguard_http_requests_total{status="2xx"} 3.0' in again


# ---- channels ----------------------------------------------------------------------------------
def test_console_channel_prints_one_line_per_event(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    out = io.StringIO()
    console = ConsoleChannel(Console(file=out, width=300, color_system=None))
    r = start_responder(channels=[console, JsonlChannel(tmp_path / "notifications.jsonl")])
    r.post(body(payload(alert(annotations={"summary": "slow [p99] reads"}))))
    r.post(body(payload(alert("resolved"))))
    wait_until(lambda: len(out.getvalue().splitlines()) >= 2, 10, "two console lines")
    r.settle()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("FIRING") and "critical" in lines[0]
    assert "RedisTradeStateLatencyHigh 127.0.0.1:6379" in lines[0]
    assert "slow [p99] reads" in lines[0]  # printed as text, not taken for markup
    assert lines[1].startswith("RESOLVED") and "recovered after 3m29s" in lines[1]


def test_a_failing_channel_does_not_block_the_others(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a directory should be")
    good = JsonlChannel(tmp_path / "notifications.jsonl")
    r = start_responder(channels=[JsonlChannel(blocked / "out.jsonl", name="broken"), good])
    assert r.post(body(payload())).json() == {"accepted": 1, "duplicates": 0}
    assert len(r.wait_notified(1)) == 1
    failed = {"channel": "broken", "outcome": "failed"}
    wait_until(
        lambda: r.counter("tradeguard_responder_delivery_attempts_total", **failed) >= 2,
        10,
        "the broken channel to be retried",
    )
    assert r.counter("tradeguard_responder_notifications_total", status="sent") == 1
    (waiting,) = r.get("/api/notifications", state="pending").json()["notifications"]
    assert waiting["channel"] == "broken" and waiting["attempts"] >= 1
    assert "not-a-dir" in waiting["last_error"]
    # Nothing is given up before the deadline: the failing one waits, retried with backoff.
    assert r.counter("tradeguard_responder_notifications_total", status="failed") == 0


def test_channels_with_one_name_are_refused(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="share the name jsonl"):
        start_responder(
            channels=[JsonlChannel(tmp_path / "a.jsonl"), JsonlChannel(tmp_path / "b.jsonl")]
        )


# ---- start-up, auth modes, restarts ---------------------------------------------------------
def test_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    settings = ResponderSettings(port=0, history_url=f"sqlite:///{tmp_path / 'h.db'}")
    with pytest.raises(AuthConfigError, match="--insecure"):
        ResponderServer(settings)
    with pytest.raises(AuthConfigError, match="cannot read bearer token"):
        ResponderServer(settings.model_copy(update={"token_file": tmp_path / "missing"}))
    with pytest.raises(ConfigError, match="history URL"):
        load_responder_settings(history_url="mysql://db/x")


def test_insecure_mode_accepts_anonymous_deliveries(start_responder: StartResponder) -> None:
    r = start_responder(token=None, insecure=True)
    assert r.post(body(payload()), token=None).json() == {"accepted": 1, "duplicates": 0}


def test_token_file_and_basic_auth(start_responder: StartResponder, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("file-token\n")
    (tmp_path / "password").write_text("pa:ss wörd\n")
    r = start_responder(
        token=None,
        token_file=tmp_path / "token",
        basic_user="alertmanager",
        basic_password_file=tmp_path / "password",
    )
    assert r.post(body(payload()), token="file-token").status_code == 200
    url, json_type = r.server.webhook_url, {"Content-Type": "application/json"}
    ok = httpx.post(
        url, content=body(payload()), headers=json_type, auth=("alertmanager", "pa:ss wörd")
    )
    assert ok.status_code == 200 and ok.json()["duplicates"] == 1
    wrong = httpx.post(
        url, content=body(payload()), headers=json_type, auth=("alertmanager", "pass")
    )
    assert wrong.status_code == 401
    assert "Basic" in wrong.headers["www-authenticate"]


def test_history_and_idempotency_survive_a_restart(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    first = start_responder()
    first.post(body(payload()))
    first.server.stop()
    second = start_responder()
    assert second.get("/api/alerts/firing").json()["count"] == 1
    assert second.post(body(payload())).json() == {"accepted": 0, "duplicates": 1}
    assert len(second.notifications()) == 1


def test_serve_runs_in_the_foreground_until_stopped(tmp_path: Path) -> None:
    settings = ResponderSettings(
        port=0, token=TOKEN, console=False, history_url=f"sqlite:///{tmp_path / 'h.db'}"
    )
    server = ResponderServer(settings)
    stop = threading.Event()
    runner = threading.Thread(target=server.serve, args=(stop,))
    runner.start()
    try:
        wait_until(
            lambda: httpx.get(server.url + "/healthz").status_code == 200, 10, "serve() to answer"
        )
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/healthz")


def test_port_in_use_is_a_clear_error(start_responder: StartResponder, tmp_path: Path) -> None:
    r = start_responder()
    settings = ResponderSettings(
        port=r.server.port, token=TOKEN, history_url=f"sqlite:///{tmp_path / 'other.db'}"
    )
    server = ResponderServer(settings)
    try:
        with pytest.raises(ServiceError, match="cannot listen"):
            server.start()
    finally:
        server.stop()


# ---- the `tradeguard alerts` CLI ---------------------------------------------------------------
def test_cli_firing_prints_the_firing_alert(start_responder: StartResponder) -> None:
    r = start_responder()
    r.post(body(payload()))
    runner = CliRunner()
    result = runner.invoke(
        alerts_app, ["firing", "--url", r.url], env={"TRADEGUARD_RESPONDER_TOKEN": TOKEN}
    )
    assert result.exit_code == 0, result.output
    assert "RedisTradeStateLatencyHigh" in result.stdout
    assert "critical" in result.stdout and "1 alert(s) firing" in result.stdout

    history = runner.invoke(
        alerts_app,
        ["history", "--url", r.url, "--limit", "5"],
        env={"TRADEGUARD_RESPONDER_TOKEN": TOKEN},
    )
    assert history.exit_code == 0, history.output
    assert "FIRING" in history.stdout

    denied = runner.invoke(
        alerts_app, ["firing", "--url", r.url], env={"TRADEGUARD_RESPONDER_TOKEN": "bad"}
    )
    assert denied.exit_code == 1
    assert "refused the credentials" in denied.stderr


def test_cli_reports_an_unreachable_responder() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "tradeguard.responder.cli", "firing", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"the responder at {url} is unreachable" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# ---- throttling -----------------------------------------------------------------------------
def burst_alert(i: int, component: str, alertname: str) -> dict[str, Any]:
    labels = {
        "alertname": alertname,
        "severity": "critical",
        "component": component,
        "instance": "127.0.0.1:6379",
    }
    return alert(labels=labels, fingerprint=f"{len(component):04x}{i:012x}")


def test_a_burst_is_throttled_per_category_and_what_is_held_is_reported_not_lost(
    start_responder: StartResponder,
) -> None:
    r = start_responder(throttle_window_seconds=3.0)  # the seed's limits, a short window
    redis = [burst_alert(i, "redis_trade_state", f"RedisAlert{i}") for i in range(7)]
    docker = burst_alert(0, "docker", "ContainerFailed")  # no limit for its category
    assert r.post(body(payload(*redis, docker))).status_code == 200

    assert r.stored() == 8  # every event is in history, held or not
    r.wait_notified(6)
    r.settle(held=2)
    sent = r.notifications()
    assert [n["alertname"] for n in sent if n["component"] == "redis_trade_state"] == [
        f"RedisAlert{i}"
        for i in range(5)  # "at most 5 Redis notifications a minute"
    ]
    assert [n["alertname"] for n in sent if n["component"] == "docker"] == ["ContainerFailed"]
    assert r.counter("tradeguard_responder_notifications_total", status="throttled") == 2

    # Nothing else of the category comes: once the window has room, the newest held one goes
    # out and reports the other.
    wait_until(lambda: len(r.notifications()) == 7, 10, "the held notifications to be released")
    released = r.notifications()[-1]
    assert released["alertname"] == "RedisAlert6"
    assert released["held_back"] == ["RedisAlert5 on 127.0.0.1:6379 firing"]
    assert "(+1 held back: RedisAlert5 on 127.0.0.1:6379 firing)" in released["message"]
    assert r.counter("tradeguard_responder_notifications_total", status="throttled") == 2


def test_throttling_can_be_turned_off(start_responder: StartResponder) -> None:
    r = start_responder(throttle_per_minute={})
    redis = [burst_alert(i, "redis_trade_state", f"RedisAlert{i}") for i in range(7)]
    assert r.post(body(payload(*redis))).status_code == 200
    assert len(r.wait_notified(7)) == 7
    r.settle()
    assert r.counter("tradeguard_responder_notifications_total", status="throttled") == 0


def test_a_limit_below_one_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        load_responder_settings(token=TOKEN, throttle_per_minute={"redis": 0})


# ---- apprise --------------------------------------------------------------------------------
def apprise_urls(tmp_path: Path, *urls: str) -> Path:
    path = tmp_path / "apprise-urls"
    path.write_text("# chat and the team webhook\n\n" + "\n".join(urls) + "\n")
    return path


def test_apprise_urls_get_firing_and_resolved_notices(
    start_responder: StartResponder, sink: Sink, tmp_path: Path
) -> None:
    urls = apprise_urls(tmp_path, f"json://127.0.0.1:{sink.port}/chat")
    r = start_responder(apprise_urls_file=urls)
    assert r.post(body(payload(alert()))).status_code == 200
    assert r.post(body(payload(alert("resolved")))).status_code == 200
    wait_until(lambda: len(sink.posted_to("/chat")) >= 2, 10, "two posts to the chat sink")
    firing, resolved = (c.body for c in sink.posted_to("/chat"))
    assert firing["type"] == "failure"  # critical
    assert firing["title"].startswith("FIRING [critical] RedisTradeStateLatencyHigh")
    assert "p99 read latency is 12ms (threshold 5ms)." in firing["message"]
    assert "Runbook: docs/runbooks/RedisTradeStateLatencyHigh.md" in firing["message"]
    assert resolved["type"] == "success"
    assert resolved["title"].startswith("RESOLVED [critical] RedisTradeStateLatencyHigh")
    assert "back within threshold (5ms)" in resolved["message"]
    r.settle()
    assert r.counter("tradeguard_responder_notifications_total", status="sent") == 4  # 2 x 2


def test_an_apprise_target_that_fails_is_retried_and_the_others_still_get_it(
    start_responder: StartResponder, sink: Sink, tmp_path: Path
) -> None:
    sink.status = 500
    r = start_responder(apprise_urls_file=apprise_urls(tmp_path, f"json://127.0.0.1:{sink.port}/x"))
    assert r.post(body(payload(alert()))).status_code == 200
    assert [n["alertname"] for n in r.wait_notified(1)] == ["RedisTradeStateLatencyHigh"]
    wait_until(lambda: len(sink.posted_to("/x")) >= 2, 10, "apprise to be retried")
    failed = {"channel": "apprise", "outcome": "failed"}
    assert r.counter("tradeguard_responder_delivery_attempts_total", **failed) >= 2
    sink.status = 200
    wait_until(
        lambda: r.counter("tradeguard_responder_notifications_total", status="sent") == 2,
        15,
        "the retry to get through once the target answers 200",
    )
    r.settle()
    assert r.counter("tradeguard_responder_notifications_total", status="failed") == 0


def test_a_bad_apprise_url_is_refused_at_start_without_showing_it(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    secret = "nosuchscheme://hooks.example/T000/B000/secret-token"
    with pytest.raises(ConfigError) as info:
        start_responder(apprise_urls_file=apprise_urls(tmp_path, secret))
    assert "apprise URL #1" in str(info.value) and "secret-token" not in str(info.value)
    with pytest.raises(ConfigError, match="apprise URL file"):
        start_responder(apprise_urls_file=tmp_path / "missing")


# ---- PagerDuty --------------------------------------------------------------------------------
def test_pagerduty_pages_a_critical_and_resolves_the_same_incident(
    start_responder: StartResponder, sink: Sink, tmp_path: Path
) -> None:
    key_file = tmp_path / "pagerduty-routing-key"
    key_file.write_text("R0UT1NGKEY\n")
    r = start_responder(pagerduty_routing_key_file=key_file, pagerduty_url=f"{sink.url}/v2/enqueue")
    warning = alert(
        labels={"alertname": "RedisSlow", "severity": "warning", "component": "redis"},
        fingerprint="0badc0de",
    )
    assert r.post(body(payload(alert(), warning))).status_code == 200
    assert r.post(body(payload(alert("resolved")))).status_code == 200
    wait_until(lambda: len(sink.posted_to("/v2/enqueue")) >= 2, 10, "a trigger and a resolve")
    r.settle()
    trigger, resolve = (c.body for c in sink.posted_to("/v2/enqueue"))  # the warning: no page
    assert trigger["routing_key"] == "R0UT1NGKEY" and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == FINGERPRINT
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "127.0.0.1:6379"
    assert trigger["payload"]["summary"].startswith("FIRING [critical] RedisTradeStateLatencyHigh")
    details = trigger["payload"]["custom_details"]
    assert details["runbook_url"] == "docs/runbooks/RedisTradeStateLatencyHigh.md"
    assert resolve == {
        "routing_key": "R0UT1NGKEY",
        "event_action": "resolve",
        "dedup_key": FINGERPRINT,
    }


def test_runbook_links_go_out_as_the_consoles_pages_when_a_base_is_set(
    start_responder: StartResponder, sink: Sink, tmp_path: Path
) -> None:
    key_file = tmp_path / "pagerduty-routing-key"
    key_file.write_text("R0UT1NGKEY\n")
    r = start_responder(
        pagerduty_routing_key_file=key_file,
        pagerduty_url=f"{sink.url}/v2/enqueue",
        runbook_base_url="https://console.example.test/",
    )
    elsewhere = alert(
        labels={"alertname": "WikiLinked", "severity": "critical", "component": "redis"},
        annotations={"summary": "s", "runbook_url": "https://wiki.example.test/WikiLinked"},
        fingerprint="0badc0de",
    )
    assert r.post(body(payload(alert(), elsewhere))).status_code == 200
    wait_until(lambda: len(sink.posted_to("/v2/enqueue")) >= 2, 10, "two pages")
    r.settle()
    pages = {c.body["payload"]["class"]: c.body for c in sink.posted_to("/v2/enqueue")}
    page = "https://console.example.test/runbooks/RedisTradeStateLatencyHigh"
    ours = pages["RedisTradeStateLatencyHigh"]
    assert ours["payload"]["custom_details"]["runbook_url"] == page
    assert ours["links"] == [{"href": page, "text": "Runbook: RedisTradeStateLatencyHigh"}]
    kept = pages["WikiLinked"]["payload"]["custom_details"]["runbook_url"]
    assert kept == "https://wiki.example.test/WikiLinked"
    # The stored event keeps what Alertmanager sent: the link is rewritten as it goes out.
    shown = [n for n in r.wait_notified(2) if n["alertname"] == "RedisTradeStateLatencyHigh"]
    assert shown[0]["runbook_url"] == page
    history = r.get("/api/alerts/history").json()["alerts"]
    stored = next(e for e in history if e["alertname"] == "RedisTradeStateLatencyHigh")
    assert stored["annotations"]["runbook_url"] == "docs/runbooks/RedisTradeStateLatencyHigh.md"

    with pytest.raises(ConfigError, match=r"runbook_base_url: .*http"):
        load_responder_settings(token="t", runbook_base_url="ftp://nope")


def test_a_429_with_retry_after_is_delivered_on_the_retry_not_dropped(
    start_responder: StartResponder, sink: Sink, tmp_path: Path
) -> None:
    sink.script = [(429, {"Retry-After": "2"})]
    key_file = tmp_path / "key"
    key_file.write_text("K")
    r = start_responder(pagerduty_routing_key_file=key_file, pagerduty_url=f"{sink.url}/v2/enqueue")
    assert r.post(body(payload(alert()))).status_code == 200
    wait_until(lambda: len(sink.answered) >= 2, 15, "PagerDuty to be tried again")
    (first, status_1), (second, status_2) = sink.answered[:2]
    assert (status_1, status_2) == (429, 200)
    assert second - first >= 1.9, "the retry must wait the Retry-After the far end asked for"
    limited = {"channel": "pagerduty", "outcome": "rate_limited"}
    assert r.counter("tradeguard_responder_delivery_attempts_total", **limited) == 1
    r.settle()
    assert r.counter("tradeguard_responder_notifications_total", status="failed") == 0
    entries = r.get("/api/notifications").json()["notifications"]
    (entry,) = [e for e in entries if e["channel"] == "pagerduty"]
    assert entry["state"] == "sent" and entry["attempts"] == 2 and entry["channel"] == "pagerduty"
    assert r.stored() == 1


def test_an_empty_pagerduty_key_file_is_refused_at_start(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        start_responder(pagerduty_routing_key_file=key_file)


# ---- acknowledgement and the effectiveness report --------------------------------------------
def ack(r: Responder, fingerprint: str, by: str = "ana", **extra: Any) -> httpx.Response:
    return httpx.post(
        r.url + "/api/alerts/ack",
        json={"fingerprint": fingerprint, "by": by, **extra},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )


def test_acknowledgements_feed_the_effectiveness_report(
    start_responder: StartResponder, history_url: str
) -> None:
    r = start_responder(history_url)
    noisy = alert(
        labels={"alertname": "DiskNoise", "severity": "warning", "component": "system"},
        fingerprint="0d15c0",
    )
    assert r.post(body(payload(alert(), noisy))).status_code == 200

    first = ack(r, FINGERPRINT, note="on it")
    assert first.status_code == 200, first.text
    assert first.json()["acked_by"] == "ana" and first.json()["false_positive"] is False
    again = ack(r, FINGERPRINT, by="bo")  # the first acknowledgement is the one that counts
    assert again.status_code == 200 and again.json()["acked_by"] == "ana"
    assert ack(r, "0d15c0", by="bo", false_positive=True).status_code == 200
    assert r.post(body(payload(alert("resolved")))).status_code == 200

    report = r.get("/api/report", days=7)
    assert report.status_code == 200, report.text
    figures = report.json()
    assert (figures["occurrences"], figures["acknowledged"], figures["unacknowledged"]) == (2, 2, 0)
    assert figures["resolved"] == 1
    # startsAt 10:00:00.123456789, endsAt 10:03:30 (microsecond precision)
    assert figures["mttr_seconds"] == pytest.approx(209.876544)
    assert 0 <= figures["mtta_seconds"] < 60
    assert figures["false_positive_share"] == 0.5
    assert figures["per_day"] == pytest.approx(2 / 7)
    assert {t["alertname"] for t in figures["top"]} == {"RedisTradeStateLatencyHigh", "DiskNoise"}


def test_bad_acknowledgements_are_refused(start_responder: StartResponder) -> None:
    r = start_responder()
    assert ack(r, "abcdef").status_code == 404  # never fired
    missing_by = httpx.post(
        r.url + "/api/alerts/ack",
        json={"fingerprint": FINGERPRINT},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert missing_by.status_code == 422 and "by" in missing_by.json()["error"]
    anonymous = httpx.post(r.url + "/api/alerts/ack", json={}, timeout=10)
    assert anonymous.status_code == 401
    assert r.get("/api/report", days=0).status_code == 400


def test_cli_acknowledges_and_reports(start_responder: StartResponder) -> None:
    r = start_responder()
    r.post(body(payload()))
    runner = CliRunner()
    env = {"TRADEGUARD_RESPONDER_TOKEN": TOKEN, "COLUMNS": "200"}
    acked = runner.invoke(alerts_app, ["ack", FINGERPRINT, "--by", "ana", "--url", r.url], env=env)
    assert acked.exit_code == 0, acked.output
    assert f"acknowledged {FINGERPRINT}" in acked.stdout and "by ana" in acked.stdout
    report = runner.invoke(alerts_app, ["report", "--days", "1", "--url", r.url], env=env)
    assert report.exit_code == 0, report.output
    assert (
        "alert occurrences" in report.stdout and "RedisTradeStateLatencyHigh (1)" in report.stdout
    )
    unknown = runner.invoke(alerts_app, ["ack", "abc", "--by", "ana", "--url", r.url], env=env)
    assert unknown.exit_code == 1 and "answered 404" in unknown.stderr
