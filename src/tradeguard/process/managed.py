"""One supervised child process: start, wait for health, stop/kill/pause/resume, log."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from tradeguard.errors import ServiceError

HealthCheck = Callable[[], bool]
_PR_SET_PDEATHSIG = 1
try:  # resolved here, in the parent: the child must not import anything between fork and exec
    _prctl: Callable[..., int] | None = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None  # not glibc Linux: children survive a killed supervisor


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM us when our parent dies.

    Children run in their own session (so Ctrl-C reaches only the supervisor), which also means
    nothing would stop them if the supervisor were SIGKILLed; this closes that gap. Only a
    pre-resolved C call runs here, so a lock held by another thread at fork time cannot bite.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.02,
) -> None:
    """Poll ``predicate`` until it is true; raise TimeoutError naming ``what`` otherwise.

    For conditions no event announces (a port opening, a metric appearing): bounded, with a
    message that says what was awaited.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # a probe may fail while the thing it probes is still starting
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


class ManagedProcess:
    """A child process with its own working directory and log file.

    The child runs in its own process group so that ``kill`` and ``stop`` reach the
    grandchildren too, and so a Ctrl-C in the terminal goes to the supervisor only, which then
    stops children in order.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        workdir: Path,
        health: HealthCheck | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 20.0,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.workdir = Path(workdir)
        self.health = health
        self.env = env
        self.start_timeout = start_timeout
        self.user = user
        self.log_path = self.workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        """Start the child and block until its health check passes (or raise ServiceError)."""
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {})}
        with open(self.log_path, "ab") as log:
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    cwd=self.workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                    user=self.user,
                    preexec_fn=_die_with_parent if _prctl is not None else None,
                )
            except FileNotFoundError:
                raise ServiceError(
                    f"{self.name}: binary {self.argv[0]!r} not found; run `make setup`"
                ) from None
        self._paused = False
        self.wait_healthy(self.start_timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        """Block until the health check passes; fail fast, with the log tail, if the child dies."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise ServiceError(
                    f"{self.name} exited with code {self.returncode} during start-up; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                if self.health is None or self.health():
                    return
            except Exception:
                pass
            if time.monotonic() >= deadline:
                raise ServiceError(
                    f"{self.name} did not become healthy within {timeout:.0f}s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it has not exited within ``timeout``."""
        if self._proc is None or self._proc.poll() is not None:
            return
        if self._paused:
            self.resume()
        self._signal_group(signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self._proc.wait(5)

    def kill(self) -> None:
        """SIGKILL the process group: a crash, with no chance to clean up."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._signal_group(signal.SIGKILL)
        self._proc.wait(5)
        self._paused = False

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing until resumed."""
        self._signal_group(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after a pause."""
        self._signal_group(signal.SIGCONT)
        self._paused = False

    def restart(self) -> Self:
        """Stop (gracefully) and start again with the same arguments and directory."""
        self.stop()
        return self.start()

    # ---- state -----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "paused" if self._paused else ("running" if self.running else "stopped")
        return f"<ManagedProcess {self.name} pid={self.pid} {state}>"
