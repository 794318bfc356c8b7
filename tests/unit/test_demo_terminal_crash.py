"""The demo terminal's crash-until file, in-process, and the terminal itself as the stack runs it
(a short-lived child: a stdlib script, no service), plus the stack layout's names for it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradeguard.instances.demo_terminal import (
    CRASH_EXIT_CODE,
    crash_until,
    crashing,
    main,
    pids_watching,
    write_crash_until,
)
from tradeguard.instances.probe import sample
from tradeguard.process import wait_until
from tradeguard.stack.layout import StackLayout
from tradeguard.stack.stack import demo_terminal_command

NOW = 1_800_000_000.0


# ---- the crash-until file ---------------------------------------------------------------------
def test_a_missing_file_crashes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "crash"
    assert crash_until(path) is None
    assert not crashing(path, NOW)


def test_a_future_time_crashes_until_it_passes(tmp_path: Path) -> None:
    path = tmp_path / "crash"
    write_crash_until(path, NOW + 10)
    assert crash_until(path) == pytest.approx(NOW + 10)
    assert crashing(path, NOW)
    assert crashing(path, NOW + 9.9)
    assert not crashing(path, NOW + 10), "at T the fault has passed"
    assert not crashing(path, NOW + 11)


def test_a_past_time_crashes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "crash"
    write_crash_until(path, time.time() - 1)
    assert not crashing(path)
    write_crash_until(path, time.time() + 60)
    assert crashing(path), "the default clock is the current time"


@pytest.mark.parametrize("text", ["", "soon", "12:00", "inf", "-inf", "nan", "1e400"])
def test_a_file_without_a_finite_time_crashes_nothing(tmp_path: Path, text: str) -> None:
    path = tmp_path / "crash"
    path.write_text(text)
    assert crash_until(path) is None
    assert not crashing(path, NOW)


def test_whitespace_around_the_time_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "crash"
    path.write_text(f"  {NOW + 5}\n\n")
    assert crashing(path, NOW)


def test_the_file_is_written_whole_and_its_directory_made(tmp_path: Path) -> None:
    path = tmp_path / "instances" / "terminal-engine-1.crash-until"
    write_crash_until(path, NOW + 3.25)
    write_crash_until(path, NOW + 7.5)  # replaced, not appended to
    assert path.read_text() == f"{NOW + 7.5:.3f}\n"
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file left"


def test_main_exits_at_once_with_code_1_while_the_file_says_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "crash"
    write_crash_until(path, time.time() + 60)
    t0 = time.monotonic()
    assert main(["--crash-file", str(path)]) == CRASH_EXIT_CODE == 1
    assert time.monotonic() - t0 < 1.0
    assert "crash until" in capsys.readouterr().out


def test_main_refuses_a_check_interval_that_is_not_positive(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--crash-file", str(tmp_path / "crash"), "--check-interval", "0"])
    assert exc.value.code == 2


# ---- the terminal as the stack runs it --------------------------------------------------------
@pytest.fixture
def terminals() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def start(
    started: list[subprocess.Popen[bytes]], argv: list[str], cwd: Path
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started.append(proc)
    return proc


def running_with_a_socket(proc: subprocess.Popen[bytes]) -> bool:
    now = sample(proc.pid)
    return proc.poll() is None and now is not None and now.sockets > 0


def test_it_runs_holding_a_socket_and_stops_cleanly_on_sigterm(
    tmp_path: Path, terminals: list[subprocess.Popen[bytes]]
) -> None:
    proc = start(terminals, demo_terminal_command(tmp_path / "crash"), tmp_path)
    wait_until(lambda: running_with_a_socket(proc), 10, "the terminal to hold its link")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0


def test_it_crashes_within_its_check_interval_when_the_file_appears(
    tmp_path: Path, terminals: list[subprocess.Popen[bytes]]
) -> None:
    path = tmp_path / "crash"
    proc = start(terminals, demo_terminal_command(path), tmp_path)
    wait_until(lambda: running_with_a_socket(proc), 10, "the terminal to run")
    write_crash_until(path, time.time() + 30)
    t0 = time.monotonic()
    assert proc.wait(5) == CRASH_EXIT_CODE
    assert time.monotonic() - t0 < 2.0


def test_started_during_the_crash_it_exits_at_once_and_runs_once_the_time_has_passed(
    tmp_path: Path, terminals: list[subprocess.Popen[bytes]]
) -> None:
    path = tmp_path / "crash"
    until = time.time() + 2.0
    write_crash_until(path, until)
    t0 = time.monotonic()
    assert start(terminals, demo_terminal_command(path), tmp_path).wait(5) == CRASH_EXIT_CODE
    assert time.monotonic() - t0 < 2.0, "a crash at start is quick: no package import"
    time.sleep(max(0.0, until - time.time()) + 0.05)
    later = start(terminals, demo_terminal_command(path), tmp_path)
    wait_until(lambda: running_with_a_socket(later), 10, "the terminal to run after T")
    assert path.exists(), "T passing ends the fault; the file may stay"


def test_pids_watching_finds_the_terminals_of_that_file_only(
    tmp_path: Path, terminals: list[subprocess.Popen[bytes]]
) -> None:
    mine, other = tmp_path / "mine.crash-until", tmp_path / "other.crash-until"
    script = start(terminals, demo_terminal_command(mine), tmp_path)
    module = start(
        terminals,
        [sys.executable, "-m", "tradeguard.instances.demo_terminal", "--crash-file", str(mine)],
        tmp_path,
    )
    elsewhere = start(terminals, demo_terminal_command(other), tmp_path)
    # Not a demo terminal, though its command line ends the same way.
    stranger = start(
        terminals,
        [sys.executable, "-c", "import time; time.sleep(30)", "--crash-file", str(mine)],
        tmp_path,
    )
    wait_until(
        lambda: running_with_a_socket(script) and running_with_a_socket(module),
        20,
        "both terminals of the file to run",
    )
    assert sorted(pids_watching(mine)) == sorted([script.pid, module.pid])
    assert pids_watching(other) == [elsewhere.pid]
    assert stranger.poll() is None and stranger.pid not in pids_watching(mine)
    assert pids_watching(tmp_path / "nobody") == []


# ---- the stack's names for it -----------------------------------------------------------------
def test_each_replica_has_its_own_instance_and_crash_file(tmp_path: Path) -> None:
    layout = StackLayout(tmp_path, engine_ports={"engine-1": 1, "engine-2": 2})
    ids = [layout.instance_of(r) for r in layout.engine_ports]
    assert ids == ["terminal-engine-1", "terminal-engine-2"]
    assert [layout.replica_of(i) for i in ids] == ["engine-1", "engine-2"]
    assert layout.replica_of("terminal-engine-3") is None
    files = {layout.instance_crash_file(r) for r in layout.engine_ports}
    assert len(files) == 2
    assert all(f.parent == layout.instances_dir == tmp_path / "instances" for f in files)
