"""The pre-trade risk filter: valid signals a team does not want executed."""

from __future__ import annotations

from dataclasses import dataclass

from tradeguard.bus.signals import Signal


@dataclass(frozen=True)
class RiskLimits:
    """Limits per signal; ``symbols`` empty means every symbol is allowed."""

    max_volume: float = 100.0
    symbols: frozenset[str] = frozenset()

    def check(self, signal: Signal) -> str | None:
        """None if the signal may go to the broker, else the reason it may not."""
        if signal.volume > self.max_volume:
            return f"volume {signal.volume} above the limit {self.max_volume}"
        if self.symbols and signal.symbol not in self.symbols:
            return f"symbol {signal.symbol} is not allowed"
        return None
