"""The fenced implementation of the Fence, backed by the coordinator's ledger.

Every intent, unknown-outcome mark and completion is one ledger transaction checked against the
epoch the ticket carries: the epoch taken when the intent was recorded, never the coordinator's
current one, so an action of an earlier term cannot be completed under a later term.
"""

from __future__ import annotations

import logging

from tradeguard.fencing import FenceLost, Fill, Ticket
from tradeguard.ha.coordinator import Coordinator
from tradeguard.ha.ledger import LedgerStatementError, LedgerUnavailable
from tradeguard.metrics.catalog import Metrics

log = logging.getLogger(__name__)
LEDGER_FAILURES = (LedgerUnavailable, LedgerStatementError)


def _fence_lost(exc: Exception) -> FenceLost:
    """No fenced action without a ledger that records it.

    A refused statement (a bug, or a schema this version does not expect) stops execution just
    as an outage does: the signal stays pending and runs once the ledger is fixed, where treating
    it as the signal's own failure would dead-letter every signal while the fault lasts. It is
    logged as what it is, so nobody waits for an outage to end.
    """
    if isinstance(exc, LedgerStatementError):
        log.error("%s: not executing until the ledger is fixed", exc)
        return FenceLost(str(exc))
    return FenceLost(f"ledger unavailable: {exc}")


class LedgerFence:
    """Every intent and completion is one ledger transaction checked against our epoch."""

    def __init__(
        self, coordinator: Coordinator, metrics: Metrics | None = None, leverage: float = 1.0
    ) -> None:
        self.coordinator = coordinator
        self.metrics = metrics
        self.leverage = leverage

    def may_execute(self) -> bool:
        return self.coordinator.may_execute()

    def holds_term(self, margin: float) -> bool:
        return self.coordinator.holds_term(margin)

    def term_started(self) -> float:
        return self.coordinator.term_started()

    def generation(self) -> int:
        return self.coordinator.generation()

    @property
    def replica(self) -> str:
        return self.coordinator.config.replica_id

    def begin(self, signal_id: str, signal: bytes | None = None) -> Ticket:
        c = self.coordinator
        if not c.may_execute():
            raise FenceLost(f"{self.replica} is not the leader")
        try:
            return c.ledger.begin_action(signal_id, self.replica, c.epoch, signal)
        except FenceLost:
            self._rejected()
            raise
        except LEDGER_FAILURES as exc:
            raise _fence_lost(exc) from exc

    def open_intents(self) -> list[tuple[str, bytes | None]]:
        try:
            return self.coordinator.ledger.open_intents()
        except LEDGER_FAILURES as exc:
            raise _fence_lost(exc) from exc

    def mark_unknown(self, ticket: Ticket) -> None:
        try:
            self.coordinator.ledger.mark_unknown(ticket.signal_id, self.replica, ticket.epoch)
        except FenceLost:
            self._rejected()
            raise
        except LEDGER_FAILURES as exc:
            raise _fence_lost(exc) from exc

    def complete(self, ticket: Ticket, status: str, recorded: bytes, fill: Fill | None) -> bool:
        try:
            return self.coordinator.ledger.complete_action(
                ticket.signal_id, self.replica, ticket.epoch, status, recorded, fill, self.leverage
            )
        except FenceLost:
            self._rejected()
            raise
        except LEDGER_FAILURES as exc:
            raise _fence_lost(exc) from exc

    def _rejected(self) -> None:
        if self.metrics is not None:
            self.metrics.ha_fenced_rejections.inc()
