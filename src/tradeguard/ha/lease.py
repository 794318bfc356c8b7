"""The Redis lease: a fast failure detector, never the authority.

``SET key value NX PX ttl`` takes it; a compare-and-extend script renews it only while the value
is still ours; a compare-and-delete releases it on shutdown so a successor can take over within
about one renew interval. Whether a replica may act is decided by the SQL ledger's epoch; the
lease tells followers quickly that the leader is gone, and its holder is compared with the
ledger's to detect split-brain.
"""

from __future__ import annotations

from redis import Redis
from redis.exceptions import ResponseError

from tradeguard.bus.connection import CONNECTION_ERRORS, as_text
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


_UNAVAILABLE = (*CONNECTION_ERRORS, ResponseError)


class RedisLease:
    """One replica's handle on the leader key: value ``<replica>|<token>``."""

    def __init__(self, redis: Redis, key: str, replica: str, token: str, ttl: float) -> None:
        self.redis = redis
        self.key = key
        self.replica = replica
        self.token = token
        self.ttl_ms = int(ttl * 1000)
        self.value = f"{replica}|{token}"
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the key if nobody holds it."""
        try:
            return bool(self.redis.set(self.key, self.value, nx=True, px=self.ttl_ms))
        except _UNAVAILABLE as exc:
            raise LeaseUnavailable(str(exc)) from exc

    def renew(self) -> bool:
        """Extend the key while it is still ours; False when it is gone or someone else's."""
        try:
            return bool(self._renew(keys=[self.key], args=[self.value, self.ttl_ms]))
        except _UNAVAILABLE as exc:
            raise LeaseUnavailable(str(exc)) from exc

    def claim(self) -> None:
        """Overwrite the key with ours: only the ledger's leader does this (split-brain fix)."""
        try:
            self.redis.set(self.key, self.value, px=self.ttl_ms)
        except _UNAVAILABLE as exc:
            raise LeaseUnavailable(str(exc)) from exc

    def release(self) -> bool:
        try:
            return bool(self._release(keys=[self.key], args=[self.value]))
        except _UNAVAILABLE as exc:
            raise LeaseUnavailable(str(exc)) from exc

    def holder(self) -> str | None:
        """The replica id holding the key, or None."""
        try:
            raw = self.redis.get(self.key)
        except _UNAVAILABLE as exc:
            raise LeaseUnavailable(str(exc)) from exc
        if raw is None:
            return None
        return as_text(raw).split("|", 1)[0]
