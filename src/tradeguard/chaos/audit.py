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

from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.config import Layer
from tradeguard.engine.paper import SQLiteBook
from tradeguard.ha.ledger import LedgerUnavailable, open_ledger
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


@dataclass(frozen=True)
class RunRecords:
    """Where a run's records are: the engine's ledger, the signal layer's Redis, the broker's
    book."""

    ledger_url: str
    signals_redis_url: str
    broker_book: Path

    @classmethod
    def of(cls, layout: StackLayout) -> RunRecords:
        return cls(layout.ledger_url, layout.redis_url(Layer.SIGNAL_STREAM), layout.broker_book)

    def executed(self) -> set[str]:
        """Signals whose outcome the engine recorded (its ledger's ``done`` actions)."""
        ledger = open_ledger(self.ledger_url)
        try:
            return {sid for sid, (state, _, _) in ledger.actions().items() if state == "done"}
        finally:
            ledger.close()

    def dead_lettered(self) -> set[str]:
        client = make_client(self.signals_redis_url)
        return {f[b"signal_id"].decode() for _id, f in client.xrange(Keys().signals_dead)}


def audit(
    where: StackLayout | RunRecords, published: list[str], maybe: Iterable[str] = ()
) -> Audit:
    """Compare what was acknowledged at publish with what the ledger, the dead letters and the
    broker hold.

    ``maybe`` are ids whose publish failed with an unknown outcome: executing them is allowed
    (they are not unexpected), but they were never promised (they cannot be lost).
    """
    records = where if isinstance(where, RunRecords) else RunRecords.of(where)
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


def drain(layout: StackLayout, published: list[str], timeout: float = 60) -> None:
    """Wait (bounded) until the engines have handled every published signal; the audit that
    follows reports whatever is still missing."""
    records = RunRecords.of(layout)
    wanted = set(published)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if wanted <= records.executed() | records.dead_lettered():
                return
        except LedgerUnavailable:  # busy with the engines' writes: look again
            pass
        time.sleep(0.5)
