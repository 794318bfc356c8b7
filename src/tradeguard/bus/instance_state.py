"""RIS: instance state as an explicit state machine, and the instance event stream.

A transition is a compare-and-set in Redis (Lua): it succeeds only from the state the caller
expects, so two supervisors cannot silently overwrite each other, and an illegal transition
(``stopped -> failed``) raises instead of being written.
"""

from __future__ import annotations

import time
from enum import StrEnum

from redis import Redis

from tradeguard.bus.instrument import LayerInstruments
from tradeguard.bus.keys import Keys
from tradeguard.errors import TradeguardError
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.vocabulary import INSTANCE_STATES


class InstanceState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    FAILED = "failed"
    RECOVERING = "recovering"
    STOPPED = "stopped"


class InstanceEvent(StrEnum):
    """The seven events of seed 001, published on the instance event stream."""

    STARTED = "instance_started"
    FAILED = "instance_failed"
    RECOVERED = "instance_recovered"
    STOPPED = "instance_stopped"
    DEGRADED = "instance_degraded"
    NETWORK_ISSUE = "network_issue"
    SOCKET_FAILURE = "socket_failure"


S = InstanceState
ALLOWED: dict[InstanceState | None, frozenset[InstanceState]] = {
    None: frozenset({S.STARTING}),
    S.STARTING: frozenset({S.RUNNING, S.FAILED, S.STOPPED}),
    S.RUNNING: frozenset({S.DEGRADED, S.FAILED, S.STOPPED}),
    S.DEGRADED: frozenset({S.RUNNING, S.FAILED, S.STOPPED}),
    S.FAILED: frozenset({S.RECOVERING, S.STOPPED}),
    S.RECOVERING: frozenset({S.RUNNING, S.FAILED, S.STOPPED}),
    S.STOPPED: frozenset({S.STARTING}),
}
assert {s.value for s in InstanceState} == set(INSTANCE_STATES)


def event_for(old: InstanceState | None, new: InstanceState) -> InstanceEvent | None:
    """The event a transition announces, if any."""
    if new is S.RUNNING:
        return InstanceEvent.STARTED if old is S.STARTING else InstanceEvent.RECOVERED
    return {
        S.FAILED: InstanceEvent.FAILED,
        S.STOPPED: InstanceEvent.STOPPED,
        S.DEGRADED: InstanceEvent.DEGRADED,
    }.get(new)


class IllegalTransition(TradeguardError):
    """The requested state change is not allowed from the instance's current state."""


class ConcurrentTransition(TradeguardError):
    """Another writer changed the instance's state between our read and our write."""


# KEYS[1] hash, KEYS[2] events stream; ARGV: expected ('' for none), new, now, event ('' none),
# recovery policy ('inc' | 'reset' | 'keep'), instance id, extra field pairs...
_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'state')
if (cur or '') ~= ARGV[1] then return {0, cur or ''} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'since', ARGV[3])
if ARGV[5] == 'inc' then redis.call('HINCRBY', KEYS[1], 'recovery_attempts', 1)
elseif ARGV[5] == 'reset' then redis.call('HSET', KEYS[1], 'recovery_attempts', 0) end
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'event', ARGV[4],
             'instance', ARGV[6], 'from', ARGV[1], 'to', ARGV[2],
             'ts', ARGV[3])
end
return {1, ARGV[2]}
"""


class InstanceRegistry:
    """State of every supervised instance, and the events their transitions emit."""

    def __init__(self, redis: Redis, keys: Keys, metrics: Metrics | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.instruments = LayerInstruments(metrics, "instance_state")
        self._metrics = metrics
        self._transition = redis.register_script(_TRANSITION)

    def state(self, instance_id: str) -> InstanceState | None:
        with self.instruments.timed("read"):
            raw = self.redis.hget(self.keys.instance(instance_id), "state")
        return InstanceState(raw.decode()) if raw else None

    def info(self, instance_id: str) -> dict[str, str]:
        with self.instruments.timed("read"):
            raw: dict[bytes, bytes] = self.redis.hgetall(self.keys.instance(instance_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def transition(
        self, instance_id: str, new: InstanceState, **fields: str | int | float
    ) -> InstanceState | None:
        """Move ``instance_id`` to ``new``; return the previous state.

        Raises IllegalTransition when ``new`` is not allowed from the current state, and
        ConcurrentTransition when the state changed under us.
        """
        old = self.state(instance_id)
        if new not in ALLOWED[old]:
            raise IllegalTransition(
                f"instance {instance_id}: {old.value if old else 'new'} -> {new.value} "
                f"is not allowed (allowed: {sorted(s.value for s in ALLOWED[old])})"
            )
        event = event_for(old, new)
        policy = "inc" if new is S.RECOVERING else ("reset" if new is S.RUNNING else "keep")
        args: list[str] = [
            old.value if old else "",
            new.value,
            repr(time.time()),
            event.value if event else "",
            policy,
            instance_id,
        ]
        for k, v in fields.items():
            args += [k, str(v)]
        with self.instruments.timed("write"):
            ok, _cur = self._transition(
                keys=[self.keys.instance(instance_id), self.keys.instance_events], args=args
            )
        if not ok:
            raise ConcurrentTransition(f"instance {instance_id} changed state concurrently")
        if self._metrics is not None:
            self._metrics.instances.update(instance_id, state=new.value)
            if new is S.RECOVERING:
                self._metrics.instances.update(
                    instance_id,
                    recovery_attempts=float(self.info(instance_id).get("recovery_attempts", 0)),
                )
            elif new is S.RUNNING:
                self._metrics.instances.update(instance_id, recovery_attempts=0.0)
            if event is not None:
                self._metrics.instance_events.labels(event.value).inc()
        return old

    def report(self, instance_id: str, event: InstanceEvent, detail: str = "") -> None:
        """Publish an event that is not a state change (network_issue, socket_failure)."""
        if event not in (InstanceEvent.NETWORK_ISSUE, InstanceEvent.SOCKET_FAILURE):
            raise ValueError(f"{event.value} is announced by a transition, not reported")
        with self.instruments.timed("xadd"):
            self.redis.xadd(
                self.keys.instance_events,
                {
                    "event": event.value,
                    "instance": instance_id,
                    "detail": detail[:500],
                    "ts": repr(time.time()),
                },
                maxlen=10_000,
                approximate=True,
            )
        if self._metrics is not None:
            self._metrics.instance_events.labels(event.value).inc()

    def events(self, count: int = 100) -> list[dict[str, str]]:
        """The most recent events, newest last."""
        raw = self.redis.xrevrange(self.keys.instance_events, count=count)
        return [{k.decode(): v.decode() for k, v in f.items()} for _id, f in reversed(raw)]
