"""What the supervisor can see of an instance from outside: CPU, memory, sockets (Linux /proc).

Read straight from /proc rather than through a process library: three small files per sample,
and the supervisor samples every instance once a second. A process that exits between two reads
yields ``None``; the supervisor notices the exit on its own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Sample:
    cpu_seconds: float  # user + system time of the process so far
    rss_bytes: int
    sockets: int  # open socket file descriptors
    taken_at: float  # monotonic


def sample(pid: int, proc: Path = Path("/proc")) -> Sample | None:
    """One reading of process ``pid``; None when it is gone or unreadable."""
    base = proc / str(pid)
    try:
        stat = (base / "stat").read_text()
        statm = (base / "statm").read_text()
        fds = list((base / "fd").iterdir())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Fields after the command name (which may hold spaces) start after its closing paren.
    after = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(after[11]), int(after[12])
    sockets = 0
    for fd in fds:
        try:
            if os.readlink(fd).startswith("socket:"):
                sockets += 1
        except OSError:
            continue  # closed meanwhile
    return Sample(
        cpu_seconds=(utime + stime) / _TICKS,
        rss_bytes=int(statm.split()[1]) * _PAGE,
        sockets=sockets,
        taken_at=time.monotonic(),
    )


def cpu_ratio(before: Sample, after: Sample) -> float:
    """CPU used between two samples as a share of one core (above 1 with several threads)."""
    elapsed = after.taken_at - before.taken_at
    if elapsed <= 0:
        return 0.0
    return max(0.0, after.cpu_seconds - before.cpu_seconds) / elapsed
