"""The end-of-run signal audit: what was acknowledged at publish against what was executed.

Jepsen-style final read. It reads the records that keep everything a run did: the engine's
ledger (one row per signal it acted on, ``done`` once the outcome is recorded), the dead-letter
stream (signals refused with a reason) and the paper broker's book (every fill). The result
stream is not one of them: it is capped (MAXLEN ~10,000), so on a long run its oldest results are
trimmed and an audit that read it would report signals lost that were executed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.config import Layer
from tradeguard.engine.paper import SQLiteBook
from tradeguard.ha.ledger import Ledger, LedgerUnavailable, open_ledger
from tradeguard.stack.layout import StackLayout


@dataclass
class Audit:
    """Counts and the offending ids; a clean run has all three sets empty."""

    published: int = 0
    executed: int = 0
    dropped: int = 0  # dead-lettered with a reason (expired past their TTL): not lost
    lost: set[str] = field(default_factory=set)
    duplicated: set[str] = field(default_factory=set)
    unexpected: set[str] = field(default_factory=set)


class RunRecords:
    """A run's records, read through one ledger connection and one Redis client for as long
    as the records are open (a drain polls them every half second): the engine's ledger, the
    signal layer's Redis, the broker's book. Close it, or use it as a context manager."""

    def __init__(self, ledger_url: str, signals_redis_url: str, broker_book: Path) -> None:
        self.ledger_url = ledger_url
        self.signals_redis_url = signals_redis_url
        self.broker_book = broker_book
        self._ledger: Ledger | None = None
        self._redis: Redis | None = None

    @classmethod
    def of(cls, layout: StackLayout) -> RunRecords:
        return cls(layout.ledger_url, layout.redis_url(Layer.SIGNAL_STREAM), layout.broker_book)

    def __enter__(self) -> RunRecords:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
        if self._redis is not None:
            self._redis.close()
            self._redis = None

    def executed(self) -> set[str]:
        """Signals whose outcome the engine recorded (its ledger's ``done`` actions)."""
        if self._ledger is None:
            self._ledger = open_ledger(self.ledger_url)
        return {sid for sid, (state, _, _) in self._ledger.actions().items() if state == "done"}

    def dead_lettered(self) -> set[str]:
        if self._redis is None:
            self._redis = make_client(self.signals_redis_url)
        return {f[b"signal_id"].decode() for _id, f in self._redis.xrange(Keys().signals_dead)}


def audit(records: RunRecords, published: list[str], maybe: Iterable[str] = ()) -> Audit:
    """Compare what was acknowledged at publish with what the ledger, the dead letters and the
    broker hold.

    ``maybe`` are ids whose publish failed with an unknown outcome: executing them is allowed
    (they are not unexpected), but they were never promised (they cannot be lost).
    """
    executed = records.executed()
    dead = records.dead_lettered()
    book = SQLiteBook(records.broker_book)
    # The paper broker is strict: every order it gets fills, so executed twice is two fills.
    # (More than one order with one fill is a resend after an outcome that proved empty.)
    fills = Counter(f.client_order_id for f in book.all_fills())
    ids = set(published)
    return Audit(
        published=len(ids),
        executed=len(executed & ids),
        dropped=len(dead & ids),
        lost=ids - executed - dead,
        duplicated={k for k, n in fills.items() if n > 1},
        unexpected=set(book.fills()) - ids - set(maybe),
    )


def drain(records: RunRecords, published: list[str], timeout: float = 60) -> None:
    """Wait (bounded) until the engines have handled every published signal; the audit that
    follows reports whatever is still missing."""
    wanted = set(published)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if wanted <= records.executed() | records.dead_lettered():
                return
        except LedgerUnavailable:  # busy with the engines' writes: look again
            pass
        time.sleep(0.5)
