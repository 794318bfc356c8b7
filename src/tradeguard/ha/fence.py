"""The fenced implementation of the engine's Fence, backed by the coordinator's ledger."""

from __future__ import annotations

from tradeguard.bus.results import TradeResult
from tradeguard.engine.fencing import FenceLost, Intent
from tradeguard.ha.coordinator import Coordinator
from tradeguard.ha.ledger import LedgerUnavailable
from tradeguard.metrics.catalog import Metrics


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

    def holds_term(self) -> bool:
        return self.coordinator.may_execute()

    def generation(self) -> int:
        return self.coordinator.generation()

    def _term(self) -> tuple[str, int]:
        c = self.coordinator
        if not c.may_execute():
            raise FenceLost(f"{c.config.replica_id} is not the leader")
        return c.config.replica_id, c.epoch

    def begin(self, signal_id: str) -> Intent:
        replica, epoch = self._term()
        try:
            return self.coordinator.ledger.begin_action(signal_id, replica, epoch)
        except FenceLost:
            self._rejected()
            raise
        except LedgerUnavailable as exc:
            raise FenceLost(f"ledger unavailable: {exc}") from exc

    def complete(self, result: TradeResult) -> None:
        replica, epoch = self.coordinator.config.replica_id, self.coordinator.epoch
        fill = None
        if result.status == "filled" and result.fill_price is not None:
            sign = -1.0 if result.action == "sell" else 1.0
            fill = (result.account, result.symbol, sign * result.volume, result.fill_price)
        try:
            self.coordinator.ledger.complete_action(
                result.signal_id, replica, epoch, result.status, fill, self.leverage
            )
        except FenceLost:
            self._rejected()
            raise
        except LedgerUnavailable as exc:
            raise FenceLost(f"ledger unavailable: {exc}") from exc

    def _rejected(self) -> None:
        if self.metrics is not None:
            self.metrics.ha_fenced_rejections.inc()
