"""The remediation command stream: the responder asks, the engines obey and answer.

The responder never reaches into a process (no signals, no SSH, no admin port): it appends a
:class:`Command` to ``{prefix}commands`` (a stream on the signal layer's Redis, capped), and
every engine reads the stream from where it joined. An engine handles a command addressed to
it (``target`` is its replica id) or to any engine (``*``); it first answers ``acknowledged``
and then once with the outcome, on a per-command list ``{prefix}command:<id>:answers`` that
expires after a day. The issuer reads the answers and decides; the absence of any outcome by
the command's deadline is the issuer's ``timed_out``, never an engine's answer.

A command carries its own deadline: an engine that reads it later (it was down, or Redis was)
does not run it (an old remediation may be wrong now) and answers ``refused``. A command is
idempotent per id on the engine side (an engine remembers the ids it ran).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from redis import Redis

from tradeguard.bus.connection import as_text
from tradeguard.bus.keys import Keys

ANY_ENGINE = "*"
STREAM_MAXLEN = 1000  # commands are rare; this keeps about a day of a busy incident
ANSWERS_TTL_SECONDS = 24 * 3600
# What an engine answers. ``not_applicable``: addressed to any engine, and this one lacks the
# thing (the instance is supervised elsewhere, it is not the leader); the issuer waits for
# another engine's outcome.
Answer = Literal["acknowledged", "done", "refused", "failed", "not_applicable"]
ANSWERS: tuple[Answer, ...] = ("acknowledged", "done", "refused", "failed", "not_applicable")
FINAL_ANSWERS: frozenset[str] = frozenset({"done", "refused", "failed"})


class CommandError(ValueError):
    """A stream entry that is not a well-formed command (skipped and answered ``refused``
    when its id can be read)."""


@dataclass(frozen=True)
class Command:
    """One remediation request. ``params`` are the action's (an instance id, ...);
    ``occurrence`` names the alert occurrence it answers, for the audit on both sides."""

    action: str
    target: str = ANY_ENGINE
    params: dict[str, str] = field(default_factory=dict)
    occurrence: str = ""
    issued_at: float = field(default_factory=time.time)
    timeout: float = 30.0
    command_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def expires_at(self) -> float:
        return self.issued_at + self.timeout

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) > self.expires_at

    def addressed_to(self, replica: str) -> bool:
        return self.target in (ANY_ENGINE, replica)

    def fields(self) -> dict[str, str]:
        return {
            "id": self.command_id,
            "action": self.action,
            "target": self.target,
            "params": json.dumps(self.params, sort_keys=True),
            "occurrence": self.occurrence,
            "issued_at": repr(self.issued_at),
            "timeout": repr(self.timeout),
        }

    @classmethod
    def from_fields(cls, raw: dict[Any, Any]) -> Command:
        values = {as_text(k): as_text(v) for k, v in raw.items()}
        try:
            params = json.loads(values.get("params") or "{}")
            if not isinstance(params, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in params.items()
            ):
                raise CommandError("params must be an object of strings")
            return cls(
                action=values["action"],
                target=values.get("target") or ANY_ENGINE,
                params=params,
                occurrence=values.get("occurrence", ""),
                issued_at=float(values["issued_at"]),
                timeout=float(values["timeout"]),
                command_id=values["id"],
            )
        except (KeyError, ValueError) as exc:
            raise CommandError(f"malformed command {values.get('id', '?')}: {exc}") from None


@dataclass(frozen=True)
class CommandAnswer:
    """One engine's answer to one command."""

    replica: str
    answer: Answer
    detail: str = ""
    duration_seconds: float = 0.0
    at: float = field(default_factory=time.time)

    @property
    def final(self) -> bool:
        return self.answer in FINAL_ANSWERS

    def to_json(self) -> str:
        return json.dumps(
            {
                "replica": self.replica,
                "answer": self.answer,
                "detail": self.detail,
                "duration_seconds": self.duration_seconds,
                "at": self.at,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> CommandAnswer:
        doc = json.loads(raw)
        answer = doc["answer"]
        if answer not in ANSWERS:
            raise CommandError(f"unknown answer {answer!r}")
        return cls(
            str(doc["replica"]),
            answer,
            str(doc.get("detail", "")),
            float(doc.get("duration_seconds", 0.0)),
            float(doc.get("at", 0.0)),
        )


class CommandBus:
    """Both ends of the command stream over one Redis client (the signal layer's)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    # ---- the issuer (the responder) -------------------------------------------------------
    def issue(self, command: Command) -> str:
        """Append ``command``; its stream entry id."""
        entry = self.redis.xadd(
            self.keys.commands, command.fields(), maxlen=STREAM_MAXLEN, approximate=True
        )
        return as_text(entry)

    def answers(self, command_id: str) -> list[CommandAnswer]:
        """Every answer so far, oldest first (malformed ones skipped)."""
        out = []
        for raw in self.redis.lrange(self.keys.command_answers(command_id), 0, -1):
            try:
                out.append(CommandAnswer.from_json(raw))
            except (CommandError, ValueError, KeyError, TypeError):
                continue
        return out

    # ---- an engine -------------------------------------------------------------------------
    def last_id(self) -> str:
        """Where a reader joining now starts: after the newest command (older ones are not
        for it: they were issued before it was there to answer)."""
        newest = self.redis.xrevrange(self.keys.commands, count=1)
        return as_text(newest[0][0]) if newest else "0-0"

    def read(self, after: str, block_ms: int = 1000, count: int = 16) -> list[tuple[str, Any]]:
        """Entries after ``after`` (waiting up to ``block_ms``): ``(entry id, Command or
        CommandError)``; a malformed entry is returned as its error, so the reader moves on."""
        reply = self.redis.xread({self.keys.commands: after}, count=count, block=block_ms)
        out: list[tuple[str, Any]] = []
        for _stream, entries in reply or []:
            for entry_id, raw in entries:
                try:
                    out.append((as_text(entry_id), Command.from_fields(raw)))
                except CommandError as exc:
                    out.append((as_text(entry_id), exc))
        return out

    def ask(
        self, command: Command, poll_seconds: float = 0.2
    ) -> tuple[CommandAnswer | None, list[CommandAnswer]]:
        """Issue ``command`` and wait, until its own deadline, for an engine's outcome: a
        person's request outside remediation (the responder follows its commands without
        blocking). ``(the final answer or None, every answer heard)``."""
        self.issue(command)
        while True:
            answers = self.answers(command.command_id)
            final = next((a for a in answers if a.final), None)
            if final is not None or command.expired():
                return final, answers
            time.sleep(poll_seconds)

    def answer(self, command_id: str, answer: CommandAnswer) -> None:
        key = self.keys.command_answers(command_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(key, answer.to_json())
        pipe.expire(key, ANSWERS_TTL_SECONDS)
        pipe.execute()


# ---- the run-time off switch ----------------------------------------------------------------
ALL_ACTIONS = "*"


def turn_off(redis: Redis, keys: Keys, action: str = ALL_ACTIONS) -> None:
    """Stop the responders from issuing ``action`` (``*``: every action) until turned on again;
    shared by every responder replica, read at each decision pass."""
    redis.hset(keys.remediation_switch, action, "off")


def turn_on(redis: Redis, keys: Keys, action: str = ALL_ACTIONS) -> None:
    redis.hdel(keys.remediation_switch, action)


def turned_off(redis: Redis, keys: Keys) -> frozenset[str]:
    """The actions turned off at run time (``*`` among them: all)."""
    return frozenset(as_text(k) for k in redis.hkeys(keys.remediation_switch))
