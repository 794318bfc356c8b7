"""RTSS: the signal stream — validated publish, consumer groups, ack, reclaim, dead-letter.

Delivery contract (DESIGN.md 2): a signal id is accepted once (a second publish of the same id
is refused), each entry stays pending until the engine acknowledges it after recording the
result, entries idle too long on a dead consumer are reclaimed, and a signal that must not run
(malformed, expired) goes to the dead-letter stream with its reason — never silently dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError, ResponseError

from tradeguard.bus.connection import CONNECTION_ERRORS
from tradeguard.bus.instrument import LayerInstruments
from tradeguard.bus.keys import Keys
from tradeguard.bus.signals import SIGNAL_FIELD, InvalidSignal, Signal, peek_signal_id
from tradeguard.errors import TradeguardError
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.vocabulary import ACTIONS, DROP_REASONS

# Marks the id and appends the entry in one atomic step, so a crash can never leave an id
# marked without its entry (which would make a retry look like a duplicate).
# The id key remembers the payload's digest and the entry id. Publishing the same signal again
# (a retry after a lost reply: redis-py retries a command whose connection dropped, and the
# first attempt may have run) returns the entry it already made instead of a duplicate error, so
# a publisher never reports as failed a signal that is queued; another payload under an id
# already used is refused.
_PUBLISH_SCRIPT = """
local digest = redis.sha1hex(ARGV[1])
local seen = redis.call('GET', KEYS[1])
if seen then
  local sep = string.find(seen, ' ', 1, true)
  if sep and string.sub(seen, 1, sep - 1) == digest then
    return string.sub(seen, sep + 1)
  end
  return false
end
local id = redis.call('XADD', KEYS[2], '*', 'signal', ARGV[1])
redis.call('SET', KEYS[1], digest .. ' ' .. id, 'EX', ARGV[2])
return id
"""
ID_MEMORY_SECONDS = 86_400


class PublishError(TradeguardError):
    """The signal was not confirmed as queued; the caller must retry or report it.

    ``maybe_queued`` is True when Redis may have appended it before the failure showed (a
    timeout or a connection dropped mid-command): the outcome is unknown. Retrying with the
    same signal is always safe: a second publish of an accepted signal returns its entry, and
    another signal under an accepted id is rejected.
    """

    def __init__(self, message: str, maybe_queued: bool = False) -> None:
        super().__init__(message)
        self.maybe_queued = maybe_queued


class DuplicateSignal(PublishError):
    """A different signal with this id was already accepted."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as read by a consumer."""

    entry_id: bytes
    fields: dict[bytes, bytes]


class SignalStream:
    """Publisher and consumer side of the signal stream for one consumer group."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        group: str = "engine",
        max_bytes: int = 4096,
        metrics: Metrics | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.group = group
        self.max_bytes = max_bytes
        self.instruments = LayerInstruments(metrics, "signal_stream")
        self._publish = redis.register_script(_PUBLISH_SCRIPT)
        self._metrics = metrics
        if metrics is not None:
            self._published = {a: metrics.signals_published.labels(a) for a in ACTIONS}
            self._publish_errors = {
                r: metrics.signal_publish_errors.labels(r)
                for r in ("redis_error", "invalid", "duplicate")
            }
            self._dropped = {r: metrics.signals_dropped.labels(r) for r in DROP_REASONS}

    # ---- publisher ---------------------------------------------------------------------
    def publish(self, signal: Signal) -> bytes:
        """Append ``signal``; return its entry id. Raise PublishError if it was not queued."""
        payload = signal.to_json()
        if len(payload) > self.max_bytes:
            self._count_publish_error("invalid")
            raise PublishError(
                f"signal {signal.signal_id} is {len(payload)} bytes, limit {self.max_bytes}"
            )
        try:
            with self.instruments.timed("xadd"):
                entry_id = self._publish(
                    keys=[self.keys.signal_id(signal.signal_id), self.keys.signals],
                    args=[payload, ID_MEMORY_SECONDS],
                )
        except CONNECTION_ERRORS as exc:
            self.instruments.connection_error()
            self._count_publish_error("redis_error")
            raise PublishError(
                f"signal {signal.signal_id} not confirmed: {exc}", maybe_queued=True
            ) from exc
        except ResponseError as exc:  # READONLY, OOM, MISCONF: the script did not run
            self._count_publish_error("redis_error")
            raise PublishError(f"signal {signal.signal_id} refused by Redis: {exc}") from exc
        except RedisError as exc:  # a reply that could not be read (InvalidResponse, ...)
            self.instruments.connection_error()
            self._count_publish_error("redis_error")
            raise PublishError(
                f"signal {signal.signal_id} not confirmed: {exc}", maybe_queued=True
            ) from exc
        if entry_id is None:
            self._count_publish_error("duplicate")
            raise DuplicateSignal(f"signal id {signal.signal_id} was already published")
        if self._metrics is not None:
            self._published[signal.action].inc()
        return bytes(entry_id)

    def publish_raw(self, fields: dict[bytes, bytes]) -> bytes:
        """Append an unvalidated entry, as a foreign producer might: for tests and chaos."""
        with self.instruments.timed("xadd"):
            return bytes(self.redis.xadd(self.keys.signals, fields))

    def _count_publish_error(self, reason: str) -> None:
        if self._metrics is not None:
            self._publish_errors[reason].inc()

    # ---- consumer ----------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing; idempotent."""
        try:
            self.redis.xgroup_create(self.keys.signals, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, consumer: str, count: int = 64, block_ms: int | None = 100) -> list[Entry]:
        """New entries for ``consumer`` (they become pending until acknowledged)."""
        try:
            with self.instruments.timed("xreadgroup"):
                reply = self.redis.xreadgroup(
                    self.group, consumer, {self.keys.signals: ">"}, count=count, block=block_ms
                )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was lost (e.g. Redis restarted empty)
                self.ensure_group()
                return []
            raise
        if not reply:
            return []
        return [Entry(eid, fields) for eid, fields in reply[0][1]]

    def reclaim(self, consumer: str, min_idle_ms: int, count: int = 64) -> list[Entry]:
        """Take over entries left pending by another consumer for at least ``min_idle_ms``."""
        with self.instruments.timed("xautoclaim"):
            reply = self.redis.xautoclaim(
                self.keys.signals,
                self.group,
                consumer,
                min_idle_ms,
                start_id="0-0",
                count=count,
            )
        # Redis 7: [next_id, [[id, fields]...], [deleted ids]]; deleted entries come as None.
        return [Entry(eid, fields) for eid, fields in reply[1] if fields is not None]

    def deliveries(self, entry_id: bytes) -> int:
        """How many times the pending entry ``entry_id`` was delivered (0 if not pending)."""
        rows = self.redis.xpending_range(
            self.keys.signals, self.group, min=entry_id, max=entry_id, count=1
        )
        return int(rows[0]["times_delivered"]) if rows else 0

    def ack(self, *entry_ids: bytes) -> None:
        if not entry_ids:
            return
        with self.instruments.timed("xack"):
            self.redis.xack(self.keys.signals, self.group, *entry_ids)

    def dead_letter(self, entry: Entry, reason: str, detail: str) -> None:
        """Move ``entry`` to the dead-letter stream with its reason, then acknowledge it."""
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        record: dict[bytes | str, bytes | str] = {
            "reason": reason,
            "detail": detail[:500],
            "entry_id": entry.entry_id,
            "signal_id": peek_signal_id(entry.fields) or "",
            "payload": entry.fields.get(SIGNAL_FIELD, b"")[: self.max_bytes],
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.keys.signals_dead, record, maxlen=100_000, approximate=True)
        pipe.xack(self.keys.signals, self.group, entry.entry_id)
        with self.instruments.timed("xadd"):
            pipe.execute()
        if self._metrics is not None:
            self._dropped[reason].inc()

    def trim_acknowledged(self, keep_seconds: float) -> int:
        """Delete entries every consumer is done with and older than ``keep_seconds``.

        The cut is the oldest of: the oldest pending entry, the group's last delivered entry,
        and ``now - keep_seconds``; nothing unacknowledged or undelivered is ever trimmed.
        """
        pipe = self.redis.pipeline(transaction=False)
        pipe.xinfo_groups(self.keys.signals)
        pipe.xpending(self.keys.signals, self.group)
        groups, summary = pipe.execute()
        cut_ms = int((time.time() - keep_seconds) * 1000)
        for g in groups:
            last = entry_ms(g.get("last-delivered-id"))
            cut_ms = min(cut_ms, last if last is not None else 0)
        oldest = entry_ms(summary.get("min"))
        if oldest is not None:
            cut_ms = min(cut_ms, oldest)
        if cut_ms <= 0:
            return 0
        return int(self.redis.xtrim(self.keys.signals, minid=f"{cut_ms}-0", approximate=True))

    def dead_letter_invalid(self, entry: Entry, error: InvalidSignal) -> None:
        self.dead_letter(entry, error.reason, error.detail)


def entry_ms(entry_id: bytes | str | None) -> int | None:
    """Millisecond part of a stream entry id."""
    if not entry_id:
        return None
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    try:
        return int(text.split("-", 1)[0])
    except ValueError:
        return None
