"""Runs ``tradeguard responder`` with a crash hook: the process SIGKILLs itself at its first
delivery attempt, after the intake stored the event and its outbox entries but before any
channel was called. Test-only; the tests start it as
``python responder_crash_hook.py GO_FILE ARGS``.

The sender runs beside the intake, so its first delivery may start before the webhook's 200
is written. The hook therefore holds that delivery until the test, having read the 200,
creates ``GO_FILE``: the kill always lands after the answer and before any channel call.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tradeguard.cli import app
from tradeguard.responder.delivery import DeliverySender

GO_WAIT = 60.0  # the test creates the file right after its 200; this only bounds a lost test


def _die(self: DeliverySender, *args: Any, **kwargs: Any) -> Any:
    go = Path(sys.argv[1])
    deadline = time.monotonic() + GO_WAIT
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)


DeliverySender._deliver = _die  # type: ignore[method-assign]

if __name__ == "__main__":
    app(["responder", *sys.argv[2:]])
