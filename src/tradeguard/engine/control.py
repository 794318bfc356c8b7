"""Runtime control of an engine process through Redis: broker knobs, intake pause, loop stall.

Chaos scenarios, the demo and remediation actions (``throttle_intake``) change a running
engine without restarting it: they write ``{prefix}control:broker`` (knob -> value) and
``{prefix}control:intake``; every engine polls both once a second. The intake hash holds:

``paused``                 1/0: every engine stops (or resumes) taking signals
``stall_until``            unix time: every engine's loop stands still until then
``stall_until:<replica>``  unix time: only that engine's loop (its consumer / HA replica id)

A stall simulates a hung call in the engine loop (a broker call that never returns, a
deadlock) while the rest of the process, its HA coordinator and its HTTP endpoint included,
lives on: the chaos of ``LeaderEngineStuck``. It always ends by itself at its time, even when
the clear is lost.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from redis import Redis

from tradeguard.bus.connection import AUTH_ERRORS, CONNECTION_ERRORS
from tradeguard.bus.keys import Keys
from tradeguard.engine.paper import BrokerKnobs
from tradeguard.fencing import Fence, Fill, Ticket

log = logging.getLogger(__name__)


def broker_key(keys: Keys) -> str:
    return f"{keys.prefix}control:broker"


def intake_key(keys: Keys) -> str:
    return f"{keys.prefix}control:intake"


STALL_FIELD = "stall_until"


def stall_field(replica: str | None = None) -> str:
    """The intake hash field that stalls ``replica``'s engine loop (None: every engine's)."""
    return STALL_FIELD if replica is None else f"{STALL_FIELD}:{replica}"


class ControlPoller:
    """Applies the control hashes to this process's broker knobs and intake gate."""

    def __init__(
        self, redis: Redis, keys: Keys, knobs: BrokerKnobs | None, interval: float = 1.0
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.knobs = knobs
        self.defaults = BrokerKnobs(**vars(knobs)) if knobs is not None else None
        self.interval = interval
        self.paused = False
        # stall field -> unix time its stall ends (STALL_FIELD itself: every engine's)
        self._stalls: dict[str, float] = {}
        self._bad_stalls: dict[str, str] = {}  # said once per bad value
        self._applied: dict[str, str] = {}

    def poll(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(broker_key(self.keys))
        pipe.hgetall(intake_key(self.keys))
        raw_knobs, raw_intake = pipe.execute()
        intake = _text(raw_intake)
        self.paused = intake.get("paused") == "1"
        self._stalls = self._read_stalls(intake)
        wanted = _text(raw_knobs)
        if wanted == self._applied or self.knobs is None or self.defaults is None:
            return
        try:
            fresh = BrokerKnobs(**vars(self.defaults))  # unset knobs fall back to start values
            fresh.update(wanted)
        except ValueError as exc:
            log.error("ignoring bad broker control values %s: %s", wanted, exc)
            self._applied = wanted
            return
        for name, value in vars(fresh).items():
            setattr(self.knobs, name, value)
        self._applied = wanted
        log.info("broker knobs now %s", vars(self.knobs))

    def _read_stalls(self, intake: dict[str, str]) -> dict[str, float]:
        stalls: dict[str, float] = {}
        bad: dict[str, str] = {}
        for name, value in intake.items():
            if name != STALL_FIELD and not name.startswith(f"{STALL_FIELD}:"):
                continue
            try:
                until = float(value)
            except ValueError:
                until = math.nan
            if math.isfinite(until):
                stalls[name] = until
                continue
            bad[name] = value
            if self._bad_stalls.get(name) != value:
                log.error("ignoring bad engine stall %s=%r (want unix seconds)", name, value)
        self._bad_stalls = bad
        return stalls

    def stall_remaining(self, replica: str) -> float:
        """Seconds ``replica``'s engine loop must still stand still (0: not stalled)."""
        stalls = self._stalls
        if not stalls:
            return 0.0
        until = max(stalls.get(STALL_FIELD, 0.0), stalls.get(stall_field(replica), 0.0))
        return max(0.0, until - time.time())

    def run(self, stop: threading.Event) -> None:
        refused = False  # log a refused password once, not on every poll
        while not stop.is_set():
            try:
                self.poll()
                refused = False
            except AUTH_ERRORS as exc:  # before CONNECTION_ERRORS: a subclass of it
                if not refused:
                    log.error("Redis refused the control poller's credentials: %s", exc)
                refused = True
            except CONNECTION_ERRORS:
                pass  # Redis is down: keep the last applied values
            stop.wait(self.interval)


class ControlledFence:
    """Wraps a fence so a paused intake stops new work on every replica; the engine loop also
    reads its stall through it."""

    def __init__(self, inner: Fence, control: ControlPoller) -> None:
        self.inner = inner
        self.control = control

    def may_execute(self) -> bool:
        return not self.control.paused and self.inner.may_execute()

    def holds_term(self, margin: float) -> bool:
        return self.inner.holds_term(margin)  # a paused intake stops new work, not work under way

    def term_started(self) -> float:
        return self.inner.term_started()

    def generation(self) -> int:
        return self.inner.generation()

    def begin(self, signal_id: str, signal: bytes | None = None) -> Ticket:
        return self.inner.begin(signal_id, signal)

    def open_intents(self) -> list[tuple[str, bytes | None]]:
        return self.inner.open_intents()

    def mark_unknown(self, ticket: Ticket) -> None:
        self.inner.mark_unknown(ticket)

    def complete(self, ticket: Ticket, status: str, recorded: bytes, fill: Fill | None) -> bool:
        return self.inner.complete(ticket, status, recorded, fill)


def set_broker_knobs(redis: Redis, keys: Keys, **knobs: float) -> None:
    """Ask every engine to use these knob values (others keep their start values)."""
    BrokerKnobs().update(knobs)  # validate before publishing
    redis.hset(broker_key(keys), mapping={k: repr(float(v)) for k, v in knobs.items()})


def reset_broker_knobs(redis: Redis, keys: Keys) -> None:
    redis.delete(broker_key(keys))


def set_intake_paused(redis: Redis, keys: Keys, paused: bool) -> None:
    redis.hset(intake_key(keys), "paused", "1" if paused else "0")


def set_engine_stall(redis: Redis, keys: Keys, until: float, replica: str | None = None) -> None:
    """Make ``replica``'s engine loop (None: every engine's) stand still until the unix time
    ``until``, as if a call in it hung; the engines see it within a poll interval."""
    if not math.isfinite(until):
        raise ValueError(f"a stall must end: until={until!r}")
    redis.hset(intake_key(keys), stall_field(replica), repr(float(until)))


def clear_engine_stall(redis: Redis, keys: Keys, replica: str | None = None) -> None:
    """End the stall that :func:`set_engine_stall` set for ``replica`` (None: for every engine;
    a stall set for one replica is left alone)."""
    redis.hdel(intake_key(keys), stall_field(replica))


def _text(raw: dict[bytes | str, bytes | str]) -> dict[str, str]:
    return {
        k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
        for k, v in raw.items()
    }
