"""The broker interface the engine executes through, and its error classes.

``client_order_id`` is the signal id: a broker that has seen it answers ``lookup`` with the
earlier fill, which is how an engine restarted mid-order finds out whether the order went
through before sending it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tradeguard.errors import TradeguardError


class BrokerError(TradeguardError):
    """The order failed at the broker; the result is recorded as failed."""


class BrokerRejected(BrokerError):
    """The broker refused the order (margin, market closed, ...); final."""


class BrokerDisconnected(BrokerError):
    """No connection to the broker; nothing was sent. Reconnect and retry."""


class BrokerTimeout(BrokerError):
    """A network timeout: the order may or may not have reached the broker (look it up)."""


@dataclass(frozen=True, slots=True)
class Order:
    client_order_id: str
    account: str
    symbol: str
    side: str  # buy | sell | close
    volume: float
    price: float | None = None  # the price the strategy saw; None = market


@dataclass(frozen=True, slots=True)
class Fill:
    client_order_id: str
    price: float
    volume: float
    executed_at: float


class Broker(Protocol):
    """What the engine needs from a broker or terminal."""

    @property
    def connected(self) -> bool: ...

    def connect(self) -> None:
        """(Re)establish the connection; raise BrokerDisconnected if that fails."""

    def place_order(self, order: Order) -> Fill:
        """Execute ``order``; raise a BrokerError subclass when it did not fill."""

    def lookup(self, client_order_id: str) -> Fill | None:
        """The fill of an earlier order with this client id, if the broker has one."""
