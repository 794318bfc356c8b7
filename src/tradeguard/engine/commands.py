"""The engine's end of the remediation command stream (``bus/commands.py``).

One :class:`CommandListener` thread per engine replica reads ``{prefix}commands`` from where it
joined (older commands were issued before it was there to answer), and for each command
addressed to its replica id or to any engine:

- an id it ran already (a duplicate delivery): skipped, answered nothing more;
- expired (read after its deadline: Redis or this engine was away) or an unknown action:
  answered ``refused`` with the reason, and not run;
- otherwise ``acknowledged``, then the action's handler runs and its outcome is answered once:
  ``done``, ``failed`` (with the exception's text), ``refused`` (why it cannot run here) or
  ``not_applicable`` (this engine lacks the thing: not the leader, not the instance's
  supervisor), with how long it took.

Handlers are keyed by the action names of the remediation registry (this module does not import
``tradeguard.remediation``: engine and remediation are siblings; a test keeps the two in step)
and live in ``engine/remediation_handlers.py``. A handler that raises answers ``failed``; it
never ends the thread. Redis outages are ridden out with backoff, and an answer that could not
be written is kept and written once Redis is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from redis.exceptions import ResponseError

from tradeguard.bus.commands import (
    ANY_ENGINE,
    Answer,
    Command,
    CommandAnswer,
    CommandBus,
    CommandError,
)
from tradeguard.bus.connection import AUTH_ERRORS, CONNECTION_ERRORS, as_text

log = logging.getLogger(__name__)

REMEMBERED_IDS = 1000  # command ids this process ran, newest kept (commands are rare)
UNSENT_ANSWERS = 100  # answers held while Redis is away, oldest dropped past this


@dataclass(frozen=True)
class Outcome:
    """What a handler reports: the final answer and a sentence for the audit."""

    answer: Answer
    detail: str = ""


def done(detail: str = "") -> Outcome:
    return Outcome("done", detail)


def failed(detail: str) -> Outcome:
    return Outcome("failed", detail)


def refused(detail: str) -> Outcome:
    return Outcome("refused", detail)


def not_applicable(detail: str) -> Outcome:
    return Outcome("not_applicable", detail)


# A handler runs one action for one command; ``stop`` is set when the engine is stopping (a
# handler that waits wakes on it).
Handler = Callable[[Command, threading.Event], Outcome]


class CommandListener:
    """Reads the command stream and runs the commands addressed to ``replica``."""

    def __init__(
        self,
        bus: CommandBus,
        replica: str,
        handlers: Mapping[str, Handler],
        block_ms: int = 250,
    ) -> None:
        self.bus = bus
        self.replica = replica
        self.handlers = dict(handlers)
        self.block_ms = block_ms
        # Set once the listener knows where it joined the stream: a command issued after that
        # is read. Tests (and anyone issuing right after start) wait on it.
        self.joined = threading.Event()
        self.handled = 0  # commands run to an outcome (not counting refusals before running)
        self._after: str | None = None
        self._ran: OrderedDict[str, None] = OrderedDict()
        self._unsent: list[tuple[str, CommandAnswer]] = []
        self._refused = False  # Redis refuses our credentials: said once, until it accepts

    # ---- loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set; never ends on a Redis outage or a handler's exception."""
        backoff = 0.05
        while not stop.is_set():
            try:
                self.step(stop)
                backoff = 0.05
                if self._refused:
                    self._refused = False
                    log.info("Redis accepts the command listener's credentials again")
            except AUTH_ERRORS as exc:  # before CONNECTION_ERRORS: a subclass of it
                if not self._refused:
                    log.error("Redis refused the command listener's credentials: %s", exc)
                self._refused = True
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            except CONNECTION_ERRORS:
                stop.wait(backoff)  # Redis is down: commands wait in the stream
                backoff = min(backoff * 2, 2.0)
            except ResponseError as exc:  # READONLY, OOM, LOADING, ...: the server's state
                log.warning("Redis refused the command listener (%s); retrying", exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:  # a bug: log it, never end the thread
                log.exception("command listener step failed; retrying")
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def step(self, stop: threading.Event) -> int:
        """Join if not yet joined, send held answers, read and handle one batch; how many
        commands of the batch were addressed to this replica."""
        if self._after is None:
            self._after = self.bus.last_id()
            self.joined.set()
            log.info("command listener of %s joined after %s", self.replica, self._after)
        self._flush_unsent()
        mine = 0
        for entry_id, item in self.bus.read(self._after, block_ms=self.block_ms):
            if isinstance(item, CommandError):
                mine += self._malformed(entry_id, item)
            elif item.addressed_to(self.replica):
                mine += 1
                self.handle(item, stop)
            # Past it only once handled: a Redis error before the command was remembered
            # leaves it to be read again (and once remembered, it never runs twice).
            self._after = entry_id
            if stop.is_set():
                break
        return mine

    # ---- one command -----------------------------------------------------------------------
    def handle(self, command: Command, stop: threading.Event) -> None:
        """Run ``command`` here unless it ran already, expired, or names no known action."""
        cid, action = command.command_id, command.action
        if self._already_ran(cid):
            log.info("command %s (%s) delivered again: already ran, skipped", cid, action)
            return
        self._remember(cid)
        if command.expired():
            late = time.time() - command.expires_at
            self._final(command, refused(f"{action}: expired {late:.1f}s before it was read"))
            return
        handler = self.handlers.get(action)
        if handler is None:
            self._final(command, refused(f"unknown action {action!r}"))
            return
        log.info(
            "command %s: %s %s (occurrence %s)",
            cid,
            action,
            command.params or "",
            command.occurrence or "-",
        )
        self._send(cid, CommandAnswer(self.replica, "acknowledged"))
        start = time.monotonic()
        try:
            outcome = handler(command, stop)
        except Exception as exc:  # the handler's failure is the command's, never the thread's
            log.exception("command %s: %s raised", cid, action)
            outcome = failed(f"{action}: {type(exc).__name__}: {exc}")
        self.handled += 1
        self._final(command, outcome, time.monotonic() - start)

    def _final(self, command: Command, outcome: Outcome, took: float = 0.0) -> None:
        level = logging.INFO if outcome.answer in ("done", "not_applicable") else logging.WARNING
        log.log(
            level,
            "command %s: %s %s in %.3fs: %s",
            command.command_id,
            command.action,
            outcome.answer,
            took,
            outcome.detail or "-",
        )
        self._send(
            command.command_id,
            CommandAnswer(self.replica, outcome.answer, outcome.detail, round(took, 6)),
        )

    def _malformed(self, entry_id: str, error: CommandError) -> int:
        """Answer ``refused`` to a malformed entry addressed here, when its id can be read."""
        entries = self.bus.redis.xrange(self.bus.keys.commands, entry_id, entry_id)
        raw = {as_text(k): as_text(v) for k, v in (entries[0][1] if entries else {}).items()}
        cid = raw.get("id")
        if not cid or (raw.get("target") or ANY_ENGINE) not in (ANY_ENGINE, self.replica):
            log.warning("skipped malformed command entry %s: %s", entry_id, error)
            return 0
        if self._already_ran(cid):
            return 0
        self._remember(cid)
        log.warning("command %s refused: %s", cid, error)
        self._send(cid, CommandAnswer(self.replica, "refused", str(error)))
        return 1

    # ---- memory of what ran ----------------------------------------------------------------
    def _already_ran(self, command_id: str) -> bool:
        """Ran by this process, or answered by this replica before (a restart under the same
        id within the answers' lifetime)."""
        if command_id in self._ran:
            return True
        return any(a.replica == self.replica for a in self.bus.answers(command_id))

    def _remember(self, command_id: str) -> None:
        self._ran[command_id] = None
        if len(self._ran) > REMEMBERED_IDS:
            self._ran.popitem(last=False)

    # ---- answers ---------------------------------------------------------------------------
    def _send(self, command_id: str, answer: CommandAnswer) -> None:
        """Write the answer; if Redis is away, hold it (in order) for the next step."""
        if self._unsent:
            self._hold(command_id, answer)
            return
        try:
            self.bus.answer(command_id, answer)
        except (*CONNECTION_ERRORS, ResponseError) as exc:
            log.warning("answer to command %s held until Redis is back: %s", command_id, exc)
            self._hold(command_id, answer)

    def _hold(self, command_id: str, answer: CommandAnswer) -> None:
        self._unsent.append((command_id, answer))
        if len(self._unsent) > UNSENT_ANSWERS:
            lost_id, lost = self._unsent.pop(0)
            log.error("answer %s to command %s dropped: Redis away too long", lost.answer, lost_id)

    def _flush_unsent(self) -> None:
        while self._unsent:
            command_id, answer = self._unsent[0]
            self.bus.answer(command_id, answer)  # raises while Redis is still away
            self._unsent.pop(0)
