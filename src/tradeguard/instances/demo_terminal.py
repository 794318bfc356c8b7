"""A demo terminal instance: a stand-in for a MetaTrader bridge that the local stack's engines
supervise, so the instance alerts and their remediation can be shown and tested.

    python -m tradeguard.instances.demo_terminal --crash-file PATH

It runs until SIGTERM/SIGINT (exit 0), holding one socket open as a bridge holds its link to
the terminal (a running instance without sockets raises InstanceSocketDown). While ``PATH``
exists and holds a unix time in the future it crashes: it exits at once with code 1, when it
starts and, if it is running, within ``--check-interval`` seconds of the file appearing. That is
"crash until T", a fault that passes by itself, as a dependency that comes back: the chaos
helpers (:mod:`tradeguard.chaos.instance_faults`) write the file; removing it, or T passing,
ends the fault. A missing file, or one that holds no finite number, crashes nothing.

Standard library only, and nothing imported from the package, so that it can run as a script
(``python -I path/to/demo_terminal.py --crash-file PATH``, as the stack runs it): a start then
costs the interpreter's few tens of milliseconds, where ``-m`` first imports the
``tradeguard.instances`` package (the supervisor, redis, the metric catalog), about a second of
CPU at every restart of a crash-looping instance.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

CRASH_EXIT_CODE = 1
CHECK_INTERVAL_SECONDS = 0.2
MODULE = "tradeguard.instances.demo_terminal"


def crash_until(path: Path) -> float | None:
    """The unix time ``path`` says to crash until; None when it is missing or unreadable, or
    holds no finite number (what it says then is no crash)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        until = float(text.strip())
    except ValueError:
        return None
    return until if math.isfinite(until) else None


def crashing(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` asks for a crash at ``now`` (default: the current time)."""
    until = crash_until(path)
    return until is not None and until > (time.time() if now is None else now)


def write_crash_until(path: Path, until: float) -> None:
    """Ask every demo terminal watching ``path`` to crash until the unix time ``until``
    (written whole, through a temporary file, so no reader sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{until:.3f}\n")
    tmp.replace(path)


def pids_watching(crash_file: Path, proc: Path = Path("/proc")) -> list[int]:
    """This user's demo terminals watching ``crash_file``, by their command line: this module
    or this file, then ``--crash-file PATH`` (however they were started). Nothing else matches,
    so a chaos helper that kills them kills no stranger."""
    tail = [b"--crash-file", str(crash_file).encode()]
    uid = os.getuid()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue  # gone meanwhile, or not ours to read
        head = argv[: -len(tail)]
        if argv[-len(tail) :] == tail and any(_is_this(a) for a in head):
            found.append(int(entry.name))
    return found


def _is_this(arg: bytes) -> bool:
    return arg == MODULE.encode() or arg.endswith(b"/demo_terminal.py")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="A demo terminal instance: runs until terminated; crashes (exit 1) while "
        "the crash file holds a unix time in the future.",
    )
    parser.add_argument("--crash-file", type=Path, required=True, help="the crash-until file")
    parser.add_argument(
        "--check-interval",
        type=float,
        default=CHECK_INTERVAL_SECONDS,
        help="seconds between two looks at the crash file while running",
    )
    args = parser.parse_args(argv)
    if args.check_interval <= 0:
        parser.error("--check-interval must be positive")
    if crashing(args.crash_file):
        print(f"crash file {args.crash_file} says crash until {crash_until(args.crash_file)}")
        return CRASH_EXIT_CODE
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    link, peer = socket.socketpair()  # the bridge's link to its terminal, held while running
    print(f"demo terminal running (pid {os.getpid()}), watching {args.crash_file}", flush=True)
    try:
        while not stopping:
            time.sleep(args.check_interval)
            if crashing(args.crash_file):
                print(f"crash file {args.crash_file} appeared: crashing", flush=True)
                return CRASH_EXIT_CODE
    finally:
        link.close()
        peer.close()
    print("demo terminal stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
