"""The single-replica fence: the engine's default when no HA coordinator is in front of it.

Always allowed to act; intents live as Redis keys with a day's TTL, so a restart or a reclaim can
tell "never tried" from "tried, outcome unknown" from "done". A term starts when the process
does: every order an earlier process sent for an open intent was sent before that instant.
"""

from __future__ import annotations

from redis import Redis

from tradeguard.bus.keys import Keys
from tradeguard.fencing import Fill, Intent, Ticket, boot_clock

INTENT_TTL_SECONDS = 86_400
DONE_PREFIX = b"done:"
# Closes an intent once: a second completion (a retry after a crash) changes nothing.
_COMPLETE = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, 5) == 'done:' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
# Marks an open intent unknown, unless it was closed meanwhile.
_UNKNOWN = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, 5) == 'done:' then return 0 end
redis.call('SET', KEYS[1], 'unknown', 'EX', ARGV[1])
return 1
"""


class LocalFence:
    """Single-replica fence: always allowed; intents as Redis keys with a day's TTL."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._started = boot_clock()
        self._complete = redis.register_script(_COMPLETE)
        self._unknown = redis.register_script(_UNKNOWN)

    def may_execute(self) -> bool:
        return True

    def holds_term(self, margin: float) -> bool:
        return True

    def term_started(self) -> float:
        return self._started

    def generation(self) -> int:
        return 0

    def open_intents(self) -> list[tuple[str, bytes | None]]:
        """None to sweep: the intents live on the signal stream's Redis, so they can only be
        lost together with the entries that would settle them (and trimming never removes a
        pending entry)."""
        return []

    def begin(self, signal_id: str, signal: bytes | None = None) -> Ticket:
        key = self.keys.intent(signal_id)
        if self.redis.set(key, "intent", nx=True, ex=INTENT_TTL_SECONDS):
            return Ticket(signal_id, Intent.NEW, 0)
        current = self.redis.get(key)
        # A missing key (expired in between) is treated as unknown: reconcile, never assume.
        if current and current.startswith(DONE_PREFIX):
            return Ticket(signal_id, Intent.DONE, 0, current[len(DONE_PREFIX) :] or None)
        return Ticket(signal_id, Intent.OPEN, 0)

    def mark_unknown(self, ticket: Ticket) -> None:
        self._unknown(keys=[self.keys.intent(ticket.signal_id)], args=[INTENT_TTL_SECONDS])

    def complete(self, ticket: Ticket, status: str, recorded: bytes, fill: Fill | None) -> bool:
        value = DONE_PREFIX + recorded
        return bool(
            self._complete(
                keys=[self.keys.intent(ticket.signal_id)], args=[value, INTENT_TTL_SECONDS]
            )
        )
