"""Failures a user meets, driven as a user meets them: the ``tradeguard`` command against real
services. Each ends in one ``error:`` line that says what is wrong and a non-zero exit, never
a traceback, a silent retry loop or a process that will not end."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from http_sink import Sink
from responder_harness import StartResponder, fresh_database

from tradeguard.bus.connection import RedisAuthError, make_client
from tradeguard.bus.keys import Keys
from tradeguard.config import Layer, load_settings
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.ha.ledger import (
    LedgerStatementError,
    LedgerUnavailable,
    PostgresLedger,
    SQLiteLedger,
    open_ledger,
)
from tradeguard.metrics.catalog import Metrics
from tradeguard.process import wait_until
from tradeguard.process.ports import free_port
from tradeguard.process.services import PostgresServer, RedisServer
from tradeguard.stack.layout import StackLayout

CLI = [sys.executable, "-m", "tradeguard.cli"]
WRONG = "wrong-staple-9f2"


def run(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The command, bounded: one that does not end within ``timeout`` fails the test."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def error_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    """The ``error:`` lines on stderr, after checking there is no traceback anywhere."""
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    return [line for line in out.stderr.splitlines() if line.startswith("error:")]


# ---- 1. a wrong Redis password ----------------------------------------------------------------
def test_engine_with_a_wrong_redis_password_stops_with_one_clear_line(
    locked_redis: RedisServer,
) -> None:
    url = f"redis://:{WRONG}@127.0.0.1:{locked_redis.port}/0"
    out = run("engine", "--redis-url", url, "--no-persist", "--metrics-port", "0")
    assert out.returncode == 2, out.stderr
    lines = error_lines(out)
    assert len(lines) == 1, out.stderr
    assert (
        f"Redis refused the password for redis://:***@127.0.0.1:{locked_redis.port}/0" in (lines[0])
    )
    assert WRONG not in out.stdout + out.stderr


def test_a_refused_password_is_counted_as_an_auth_error_not_a_connection_error(
    locked_redis: RedisServer, metrics: Metrics, tmp_path: Path
) -> None:
    port = locked_redis.port
    for url, wording in (
        (f"redis://:{WRONG}@127.0.0.1:{port}/0", "refused the password"),
        (f"redis://127.0.0.1:{port}/0", "gives no password"),
    ):
        settings = load_settings(redis_url=url, duckdb_path=tmp_path / "s.duckdb")
        with pytest.raises(RedisAuthError, match=wording) as caught:
            EngineService(settings, EngineOptions(persist=False, metrics_port=0), metrics=metrics)
        assert WRONG not in str(caught.value)
    for layer in Layer:
        labels = {"layer": layer.value}
        registry = metrics.registry
        assert registry.get_sample_value("tradeguard_redis_auth_errors_total", labels) == 2
        assert not registry.get_sample_value("tradeguard_redis_connection_errors_total", labels)


def test_the_right_password_starts_the_engine(locked_redis: RedisServer, tmp_path: Path) -> None:
    settings = load_settings(redis_url=locked_redis.url, duckdb_path=tmp_path / "s.duckdb")
    svc = EngineService(settings, EngineOptions(persist=False, metrics_port=0)).start()
    svc.stop()


# ---- 2. alerts test with the responder down or refusing the token ----------------------------
def fake_stack(run_dir: Path, alertmanager_port: int, responder_port: int) -> StackLayout:
    """A stack layout that names real (or absent) services: the supervisor is this test."""
    layout = StackLayout.allocate(run_dir)
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    layout.alertmanager_ports = {"alertmanager-1": alertmanager_port}
    layout.responder_port = responder_port
    layout.supervisor_pid = os.getpid()
    layout.save()
    return layout


def test_alerts_test_with_the_responder_down_says_so_in_one_line(
    tmp_path: Path, sink: Sink
) -> None:
    # The sink stands in for Alertmanager: it takes any alert.
    port = free_port()
    layout = fake_stack(tmp_path / "run", sink.port, port)
    out = run("alerts", "test", "--run-dir", str(layout.run_dir), "--timeout", "5")
    assert out.returncode == 1, out.stderr
    lines = error_lines(out)
    assert len(lines) == 1, out.stderr
    assert f"responder at http://127.0.0.1:{port} is unreachable" in lines[0]
    assert sink.requests == []  # no test alert left firing for a responder that is not there


def test_alerts_test_with_a_refused_token_says_so_in_one_line(
    tmp_path: Path, sink: Sink, start_responder: StartResponder
) -> None:
    responder = start_responder()
    port = int(responder.url.rsplit(":", 1)[1])
    layout = fake_stack(tmp_path / "run", sink.port, port)
    layout.token_file.parent.mkdir(parents=True, exist_ok=True)
    layout.token_file.write_text("not-the-responders-token")
    out = run("alerts", "test", "--run-dir", str(layout.run_dir), "--timeout", "5")
    assert out.returncode == 1, out.stderr
    lines = error_lines(out)
    assert len(lines) == 1, out.stderr
    assert "refused the stack's token (401)" in lines[0]
    assert "not-the-responders-token" not in out.stderr
    assert sink.requests == []


# ---- 3. generate ends on --count, and on Ctrl-C ---------------------------------------------
def test_generate_ends_when_the_count_is_reached_whatever_the_duration(
    redis_server: RedisServer,
) -> None:
    proc = subprocess.Popen(
        [*CLI, "generate", "--redis-url", redis_server.url, "--count", "5", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr
    assert "published 5 signals" in stdout


def test_generate_stops_on_ctrl_c_with_its_summary(redis_server: RedisServer) -> None:
    redis = make_client(redis_server.url)
    proc = subprocess.Popen(
        [*CLI, "generate", "--redis-url", redis_server.url, "--rate", "20", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: redis.xlen(Keys().signals) > 0, 20, "generate to publish")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
        redis.close()
    assert proc.returncode in (0, 130), stderr
    assert "Traceback" not in stderr
    assert "published" in stdout and "stopped by SIGINT" in stdout


# ---- 4. a refused ledger statement is not an outage ------------------------------------------
def foreign_leadership_table(path: Path) -> None:
    """A ledger whose leadership table some other tool made, with ``holder NOT NULL``: the
    row this version inserts (nobody leads yet) breaks a constraint."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE leadership (id INTEGER PRIMARY KEY, epoch BIGINT NOT NULL, "
            "holder TEXT NOT NULL, token TEXT, lease_until DOUBLE PRECISION NOT NULL)"
        )


def test_coordinator_reports_a_refused_ledger_statement_instead_of_waiting_for_the_db(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.sqlite"
    foreign_leadership_table(path)
    out = run(
        "coordinator",
        "--replica-id",
        "r1",
        "--ledger-url",
        f"sqlite:///{path}",
        "--redis-url",
        redis_server.url,
        "--metrics-port",
        "0",
        "--no-persist",
    )
    assert out.returncode == 2, out.stderr
    lines = error_lines(out)
    assert len(lines) == 1, out.stderr
    assert "ledger refused a statement" in lines[0]
    assert "NOT NULL constraint failed: leadership.holder" in lines[0]
    assert "unavailable" not in lines[0] and "unreachable" not in lines[0]


def test_sqlite_ledger_tells_a_bad_statement_from_a_busy_database(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "ledger.sqlite", timeout=0.2)
    ledger.setup()
    duplicate = "INSERT INTO leadership (id, epoch, lease_until) VALUES (1, 0, 0)"
    with pytest.raises(LedgerStatementError, match="IntegrityError"):
        ledger.execute_raw(duplicate)
    with pytest.raises(LedgerStatementError, match="no such column"):
        ledger.execute_raw("UPDATE leadership SET nope = 1")
    with pytest.raises(LedgerStatementError, match="syntax error"):
        ledger.execute_raw("UPDATE leadership SET epoch = WHERE")
    assert ledger.read().epoch == 0  # the connection is usable after each

    # Another writer holds the lock past the timeout: that is the database, not the statement.
    other = sqlite3.connect(tmp_path / "ledger.sqlite", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(LedgerUnavailable, match="locked"):
            ledger.heartbeat("r1", False, 0, "normal")
    finally:
        other.execute("ROLLBACK")
        other.close()
    ledger.heartbeat("r1", False, 0, "normal")
    ledger.close()


def test_postgres_ledger_tells_a_bad_statement_from_a_lost_server(
    postgres: PostgresServer,
) -> None:
    ledger = open_ledger(fresh_database(postgres), timeout=2.0)
    assert isinstance(ledger, PostgresLedger)
    try:
        ledger.setup()
        with pytest.raises(LedgerStatementError, match="UniqueViolation"):
            ledger.execute_raw("INSERT INTO leadership (id, epoch, lease_until) VALUES (1, 0, 0)")
        with pytest.raises(LedgerStatementError, match="UndefinedColumn"):
            ledger.execute_raw("UPDATE leadership SET nope = 1")
        assert ledger.read().epoch == 0
    finally:
        ledger.close()
    gone = PostgresLedger(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", timeout=1.0)
    with pytest.raises(LedgerUnavailable):
        gone.read()
    assert issubclass(psycopg.errors.UniqueViolation, psycopg.IntegrityError)


# ---- 5. a configuration error is one line, not a traceback ----------------------------------
def test_bad_ha_timing_names_the_options(redis_server: RedisServer, tmp_path: Path) -> None:
    out = run(
        "coordinator",
        "--replica-id",
        "r1",
        "--ledger-url",
        f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        "--redis-url",
        redis_server.url,
        "--ttl",
        "1",
        "--renew-interval",
        "2",
    )
    assert out.returncode == 2, out.stderr
    lines = error_lines(out)
    assert len(lines) == 1 and "--renew-interval" in lines[0] and "--ttl" in lines[0]


def test_an_unknown_chaos_scenario_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "chaos"
    out = run("chaos", "run", "no-such-scenario", "--run-dir", str(run_dir))
    assert out.returncode == 2, out.stderr
    lines = error_lines(out)
    assert lines == [
        "error: unknown scenarios ['no-such-scenario']; see `tradeguard chaos list`"
    ], out.stderr
    assert not run_dir.exists()
