"""`tradeguard down` signals only the processes the stack started, never a PID reused since."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradeguard.stack.layout import StackLayout
from tradeguard.stack.processes import process_start


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """Somebody else's process, in its own process group, as a stack child would be."""
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def write_state(run_dir: Path, pid: int, started: int) -> None:
    layout = StackLayout(run_dir.resolve())
    layout.pids = {"redis": pid}
    layout.started = {"redis": started}
    run_dir.mkdir(parents=True, exist_ok=True)
    layout.save()


def down(run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("tradeguard")), "down", "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_down_leaves_alone_a_process_that_reuses_a_recorded_pid(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    started = process_start(bystander.pid)
    assert started is not None
    write_state(tmp_path / "stack", bystander.pid, started + 1)  # an earlier owner of the PID
    result = down(tmp_path / "stack")
    assert result.returncode == 0, result.stderr
    assert bystander.poll() is None, "down signalled a process the stack never started"
    assert "also stopped" not in result.stdout


def test_down_stops_the_process_it_recorded(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    started = process_start(bystander.pid)
    assert started is not None
    write_state(tmp_path / "stack", bystander.pid, started)
    result = down(tmp_path / "stack")
    assert result.returncode == 0, result.stderr
    assert bystander.wait(timeout=10) != 0  # SIGTERM
    assert "also stopped redis" in result.stdout
