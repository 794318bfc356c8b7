"""The process-control module: start, pause, resume, kill, restart, and clear start failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis

from tradeguard.errors import ServiceError
from tradeguard.process import ManagedProcess
from tradeguard.process.services import RedisServer


def test_pause_resume_kill_restart(redis_server: RedisServer) -> None:
    client = redis.Redis(port=redis_server.port, socket_timeout=0.3)
    assert client.ping()
    redis_server.pause()
    with pytest.raises(redis.TimeoutError):
        client.ping()
    redis_server.resume()
    assert client.ping()
    redis_server.kill()
    assert not redis_server.running
    with pytest.raises(redis.ConnectionError):
        client.ping()
    redis_server.start()
    assert client.ping()


def test_a_child_that_dies_at_start_reports_its_log(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "broken",
        [sys.executable, "-c", "print('boom: bad flag'); exit(3)"],
        tmp_path,
        health=lambda: False,
    )
    with pytest.raises(ServiceError, match="exited with code 3") as info:
        proc.start()
    assert "boom: bad flag" in str(info.value)


def test_a_child_that_never_gets_healthy_times_out(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "sleepy",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        tmp_path,
        health=lambda: False,
        start_timeout=0.5,
    )
    with pytest.raises(ServiceError, match="did not become healthy"):
        proc.start()
    proc.stop()
    assert not proc.running


def test_missing_binary_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="make setup"):
        ManagedProcess("x", ["/nonexistent/binary"], tmp_path).start()


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    """A supervisor SIGKILLed mid-run must not leave its children running."""
    import os
    import signal
    import subprocess

    from tradeguard.process import wait_until

    pidfile = tmp_path / "child.pid"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tradeguard.process import ManagedProcess\n"
        f"p = ManagedProcess('sleeper', [sys.executable, '-c', 'import time; time.sleep(300)'], "
        f"Path({str(tmp_path)!r})).start()\n"
        f"Path({str(pidfile)!r}).write_text(str(p.pid))\n"
        "time.sleep(300)\n"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_until(pidfile.exists, 20, "the supervisor to start its child")
        child = int(pidfile.read_text())
        os.kill(child, 0)  # running
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(5)

        def gone() -> bool:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return True
            with open(f"/proc/{child}/stat") as f:  # reaped by init soon; a zombie counts
                return f.read().split(")", 1)[1].split()[0] == "Z"

        wait_until(gone, 10, "the orphaned child to exit")
    finally:
        supervisor.kill()
