"""Runs ``tradeguard responder`` with a crash hook: the process SIGKILLs itself at its first
delivery attempt, after the intake stored the event and its outbox entries but before any
channel was called. Test-only; the tests start it as ``python responder_crash_hook.py ARGS``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from tradeguard.cli import app
from tradeguard.responder.delivery import DeliverySender


def _die(self: DeliverySender, *args: Any, **kwargs: Any) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)


DeliverySender._deliver = _die  # type: ignore[method-assign]

if __name__ == "__main__":
    app(["responder", *sys.argv[1:]])
