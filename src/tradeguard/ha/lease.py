"""The Redis lease: a fast failure detector, never the authority.

``SET key value NX PX ttl`` takes it; a compare-and-extend script renews it only while the value
is still ours; a compare-and-delete releases it on shutdown so a successor can take over within
about one renew interval. Whether a replica may act is decided by the SQL ledger's epoch; the
lease tells followers quickly that the leader is gone, and its holder is compared with the
ledger's to detect split-brain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from redis import Redis
from redis.exceptions import ResponseError

from tradeguard.bus.connection import AUTH_ERRORS, CONNECTION_ERRORS, as_text
from tradeguard.errors import TradeguardError

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseUnavailable(TradeguardError):
    """Redis did not answer, or answered with an error (READONLY after a failover, OOM, ...);
    the lease state is unknown."""


class LeaseRefused(LeaseUnavailable):
    """Redis refused our credentials (a password changed under a running replica): the lease
    state is unknown as with any outage, but waiting will not fix it, so it is told apart."""

    def __init__(self, message: str, layer: str) -> None:
        super().__init__(message)
        self.layer = layer


T = TypeVar("T")


class RedisLease:
    """One replica's handle on the leader key: value ``<replica>|<token>``."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        replica: str,
        token: str,
        ttl: float,
        layer: str = "instance_state",
    ) -> None:
        self.redis = redis
        self.layer = layer  # the Redis layer the key lives on, for the auth-error metric
        self.key = key
        self.replica = replica
        self.token = token
        self.ttl_ms = int(ttl * 1000)
        self.value = f"{replica}|{token}"
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _call(self, command: Callable[[], T]) -> T:
        """Run one Redis command; LeaseRefused or LeaseUnavailable when it cannot say."""
        try:
            return command()
        except AUTH_ERRORS as exc:  # before CONNECTION_ERRORS: a subclass of it
            raise LeaseRefused(f"Redis refused our credentials: {exc}", self.layer) from exc
        except (*CONNECTION_ERRORS, ResponseError) as exc:
            raise LeaseUnavailable(str(exc)) from exc

    def acquire(self) -> bool:
        """Take the key if nobody holds it."""
        return bool(
            self._call(lambda: self.redis.set(self.key, self.value, nx=True, px=self.ttl_ms))
        )

    def renew(self) -> bool:
        """Extend the key while it is still ours; False when it is gone or someone else's."""
        return bool(
            self._call(lambda: self._renew(keys=[self.key], args=[self.value, self.ttl_ms]))
        )

    def claim(self) -> None:
        """Overwrite the key with ours: only the ledger's leader does this (split-brain fix)."""
        self._call(lambda: self.redis.set(self.key, self.value, px=self.ttl_ms))

    def release(self) -> bool:
        return bool(self._call(lambda: self._release(keys=[self.key], args=[self.value])))

    def holder(self) -> str | None:
        """The replica id holding the key, or None."""
        raw = self._call(lambda: self.redis.get(self.key))
        if raw is None:
            return None
        return as_text(raw).split("|", 1)[0]
