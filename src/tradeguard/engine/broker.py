"""The broker interface the engine executes through, and its error classes.

``client_order_id`` is the signal id: a broker that has seen it answers ``lookup`` with the
earlier fill, which is how an engine restarted mid-order finds out whether the order went
through before sending it again. The engine never relies on the broker refusing a repeated
client order id: a MetaTrader terminal, for one, takes a resent order as a new order.
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
    """The connection to the broker was lost. Raised by ``place_order`` the outcome is
    unknown (the order may have gone out before the line dropped): reconcile, never resend."""


class BrokerNotConnected(BrokerDisconnected):
    """There was no connection when the order was to be sent: nothing left. Safe to retry."""


class BrokerTimeout(BrokerError):
    """No answer in time: the order may have reached the broker and may still fill."""


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
        """The fill of an earlier order with this client id, if the broker shows one yet.

        It may lag behind the fill and may raise BrokerDisconnected: callers retry it, and
        trust a "no fill" only once the broker's maximum in-flight time has passed."""
