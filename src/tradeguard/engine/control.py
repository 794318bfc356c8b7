"""Runtime control of an engine process through Redis: broker knobs and intake pause.

Chaos scenarios, the demo and remediation actions (``throttle_intake``) change a running
engine without restarting it: they write ``{prefix}control:broker`` (knob -> value) and
``{prefix}control:intake`` (``paused`` = 1/0); every engine polls both once a second.
"""

from __future__ import annotations

import logging
import threading

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
        self._applied: dict[str, str] = {}

    def poll(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(broker_key(self.keys))
        pipe.hget(intake_key(self.keys), "paused")
        raw_knobs, paused = pipe.execute()
        self.paused = paused in (b"1", "1")
        wanted = {
            k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
            for k, v in raw_knobs.items()
        }
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
    """Wraps a fence so a paused intake stops new work on every replica."""

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
