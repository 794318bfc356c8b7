"""Whether a PID the stack recorded still belongs to the process the stack started.

PIDs are reused: after a reboot, or once enough processes have come and gone, the PID in a
stack's state file may belong to someone else's process. ``tradeguard down`` must not signal
that process, so the state file keeps each child's start time (``/proc/<pid>/stat`` field 22, in
clock ticks since boot) next to its PID, and a PID counts as the stack's only while both match.
"""

from __future__ import annotations

import os


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); read its state to tell.
    fields = _stat_fields(pid)
    return fields is None or fields[0] != "Z"


def process_start(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (None if there is no such process)."""
    fields = _stat_fields(pid) if pid > 0 else None
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def same_process(pid: int, started: int | None) -> bool:
    """``pid`` is alive and is the process that started at ``started``.

    ``started`` is None for state files written before start times were kept: then liveness is
    all there is to go on.
    """
    if not pid_alive(pid):
        return False
    return started is None or process_start(pid) == started
