"""Runs ``tradeguard`` with the engine's crash points armed: the fault tests' deterministic
crashes. Test-only (DESIGN.md 5): the engine only marks the moments where a crash is most
dangerous, with its no-op ``Engine._checkpoint``; this module overrides that method.

``TRADEGUARD_CRASH_AT=<mode>:<signal id prefix>`` (a contract of the tests, not of the product)
chooses what happens when the engine reaches the mode's checkpoint for a signal whose id starts
with the prefix:

``after_intent``, ``after_fill``
    the process exits at once with code 137, as SIGKILL would: the intent is committed and the
    order not yet sent, or the broker filled the order and no result is recorded yet.
``thread_after_intent``
    at ``after_intent``, raises ``EngineThreadCrash`` (a BaseException, so no per-entry handler
    keeps it): a bug that kills the engine thread while the rest of the process (HTTP
    endpoint, coordinator) lives on.
``poison``
    at ``before_intent``, raises an ordinary exception while the entry is handled: a bug one
    entry's content triggers.

The HA harness starts a replica whose environment sets ``TRADEGUARD_CRASH_AT`` as
``python engine_crash_hook.py coordinator ARGS``; an in-process test patches
``Engine._checkpoint`` with ``crashing_checkpoint(...)`` itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from tradeguard.engine.loop import Checkpoint, Engine

CRASH_ENV = "TRADEGUARD_CRASH_AT"
# mode -> the engine checkpoint it acts at
MODES: dict[str, Checkpoint] = {
    "after_intent": "after_intent",
    "after_fill": "after_fill",
    "thread_after_intent": "after_intent",
    "poison": "before_intent",
}


class EngineThreadCrash(BaseException):
    """Ends the engine thread (a BaseException, so no per-entry handler keeps it)."""


def parse_crash_at(raw: str) -> tuple[str, str]:
    """``<mode>:<signal id prefix>`` as (mode, prefix); ValueError when it is not that."""
    mode, _, prefix = raw.partition(":")
    if mode not in MODES or not prefix:
        raise ValueError(f"{CRASH_ENV} must be <{'|'.join(MODES)}>:<prefix>, got {raw!r}")
    return mode, prefix


def crashing_checkpoint(mode: str, prefix: str) -> Callable[[Engine, Checkpoint, str], None]:
    """An ``Engine._checkpoint`` that crashes as ``mode`` says for the signals with ``prefix``."""
    at = MODES[mode]

    def checkpoint(self: Engine, point: Checkpoint, signal_id: str) -> None:
        if point != at or not signal_id.startswith(prefix):
            return
        os.write(2, f"{CRASH_ENV}: crashing {mode} for {signal_id}\n".encode())
        if mode == "thread_after_intent":
            raise EngineThreadCrash(f"{CRASH_ENV}: engine thread crash for {signal_id}")
        if mode == "poison":
            raise RuntimeError(f"{CRASH_ENV}: cannot handle {signal_id}")
        os._exit(137)

    return checkpoint


def main(argv: list[str]) -> None:
    """Arm the crash point ``TRADEGUARD_CRASH_AT`` names, then run ``tradeguard ARGV``."""
    try:
        mode, prefix = parse_crash_at(os.environ.get(CRASH_ENV, ""))
    except ValueError as exc:  # a typo must not quietly run a test without its crash
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    Engine._checkpoint = crashing_checkpoint(mode, prefix)  # type: ignore[method-assign]

    from tradeguard.cli import app  # here: the harness imports this module for CRASH_ENV only

    app(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
