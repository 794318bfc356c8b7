"""The CLI a new user meets: help, clear errors (never a traceback), the demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tradeguard.process.ports import free_port
from tradeguard.process.services import RedisServer

CLI = [sys.executable, "-m", "tradeguard.cli"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_help_lists_the_commands() -> None:
    out = run("--help")
    assert out.returncode == 0
    for command in (
        "engine",
        "publish",
        "generate",
        "demo",
        "rules",
        "up",
        "down",
        "status",
        "check",
        "coordinator",
        "ha",
        "chaos",
        "alerts",
        "responder",
    ):
        assert command in out.stdout


def test_bad_signal_is_refused_with_a_reason(redis_server: RedisServer) -> None:
    out = run(
        "publish",
        "--redis-url",
        redis_server.url,
        "--account",
        "a",
        "--symbol",
        "S",
        "--action",
        "hold",
        "--volume",
        "1",
    )
    assert out.returncode == 2
    assert "bad_action" in out.stderr and "Traceback" not in out.stderr


def test_publish_ok_then_duplicate(redis_server: RedisServer) -> None:
    args = (
        "publish",
        "--redis-url",
        redis_server.url,
        "--account",
        "a",
        "--symbol",
        "S",
        "--action",
        "buy",
        "--volume",
        "1",
        "--id",
        "cli-1",
    )
    assert run(*args).returncode == 0
    dup = run(*args)
    assert dup.returncode == 1 and "already published" in dup.stderr


def test_publish_with_redis_down_is_an_error_not_a_loss() -> None:
    out = run(
        "publish",
        "--redis-url",
        f"redis://127.0.0.1:{free_port()}/0",
        "--account",
        "a",
        "--symbol",
        "S",
        "--action",
        "buy",
        "--volume",
        "1",
    )
    assert out.returncode == 1
    assert "not published" in out.stderr and "Traceback" not in out.stderr


def test_bad_setting_is_reported_plainly(monkeypatch: object) -> None:
    out = run(
        "publish",
        "--redis-url",
        "http://nope",
        "--account",
        "a",
        "--symbol",
        "S",
        "--action",
        "buy",
        "--volume",
        "1",
    )
    assert out.returncode == 2 and "redis_url" in out.stderr and "Traceback" not in out.stderr


def test_engine_demo_runs_and_stops_cleanly(tmp_path: Path) -> None:
    out = run("engine-demo", "--duration", "4", "--rate", "50", "--run-dir", str(tmp_path / "demo"))
    assert out.returncode == 0, out.stderr
    assert "signals/s" in out.stdout
    assert "all processes stopped" in out.stdout
    assert "/metrics" in out.stdout
