"""The CLI a new user meets: help, clear errors (never a traceback), the demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer.main

from tradeguard.cli import app
from tradeguard.process.ports import free_port
from tradeguard.process.services import RedisServer

CLI = [sys.executable, "-m", "tradeguard.cli"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


# Every command a user can type, sub-commands as "group command": the whole tree, so a command
# that disappears, is renamed or appears unannounced fails test_registered_commands_are_exactly.
EXPECTED_COMMANDS = {
    "alerts",
    "alerts ack",
    "alerts actions",
    "alerts firing",
    "alerts history",
    "alerts notifications",
    "alerts optimize",
    "alerts performance",
    "alerts report",
    "alerts status",
    "alerts summary",
    "alerts test",
    "chaos",
    "chaos list",
    "chaos run",
    "check",
    "config",
    "config backup",
    "config restore",
    "coordinator",
    "demo",
    "docker-exporter",
    "down",
    "engine",
    "engine-demo",
    "generate",
    "ha",
    "ha status",
    "instance",
    "instance restart",
    "publish",
    "responder",
    "rules",
    "rules check",
    "rules export",
    "state",
    "state check",
    "state resync",
    "status",
    "up",
}


def command_paths(command: object, prefix: str = "") -> set[str]:
    """The names of every command under ``command`` (a click group), walked recursively.

    Names come from the click command typer builds, so they are what a user types (typer's
    own ``registered_commands`` may hold ``None`` for a name derived from the function).
    """
    found: set[str] = set()
    for name, sub in getattr(command, "commands", {}).items():
        path = f"{prefix}{name}"
        found.add(path)
        found |= command_paths(sub, f"{path} ")
    return found


def test_registered_commands_are_exactly_the_user_facing_set() -> None:
    """Compare names, not help text: a substring check passes for "engine" when only
    "engine-demo" is left, and never notices a command nobody listed."""
    assert command_paths(typer.main.get_command(app)) == EXPECTED_COMMANDS


def test_help_runs() -> None:
    """``tradeguard --help`` renders (it imports every command module) and exits 0."""
    out = run("--help")
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout


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


def test_ha_status_reads_the_ledger_and_the_lease(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    from tradeguard.ha.ledger import open_ledger

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = open_ledger(url)
    ledger.setup()
    ledger.close()
    out = run("ha", "status", "--ledger-url", url, "--redis-url", redis_server.url)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "epoch" in out.stdout.lower()
