"""The fencing interface between the engine and whoever decides it may act.

Owned by neither ``engine/`` nor ``ha/``: the engine executes through a ``Fence`` and never
learns how leadership is decided; the HA coordinator provides a fenced implementation backed by
its SQL ledger without knowing anything of the engine. One composition module joins the two.

The epoch a signal's intent was recorded under travels with it in a ``Ticket`` to the send and
to the completion: a replica that lost its term and won a later one can never complete an
action of the earlier term as if it were the current one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from tradeguard.errors import TradeguardError


class Intent(Enum):
    NEW = "new"  # first attempt: the intent is now recorded, go ahead
    OPEN = "open"  # an earlier attempt did not finish (or its outcome is unknown): reconcile
    DONE = "done"  # already executed and recorded: re-emit what was recorded, acknowledge


@dataclass(frozen=True, slots=True)
class Ticket:
    """What ``Fence.begin`` hands out: the intent, the epoch it is bound to, and, for a done
    action, the recorded result (JSON) so the caller can re-emit it after a crash."""

    signal_id: str
    intent: Intent
    epoch: int
    recorded: bytes | None = None


class FenceLost(TradeguardError):
    """This replica may no longer act (it lost leadership, or its epoch is stale)."""


def boot_clock() -> float:
    """Seconds on a clock that keeps counting through a host suspend (Linux CLOCK_BOOTTIME).

    ``time.monotonic`` stops while the machine sleeps: a lease measured on it would look
    younger after a resume than it is, and a leader would act on a lease that expired while it
    slept. Falls back to ``time.monotonic`` where CLOCK_BOOTTIME does not exist.
    """
    return time.clock_gettime(_BOOT)


_BOOT = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


class Fence(Protocol):
    def may_execute(self) -> bool:
        """Whether this replica should take new work now (cheap; called every loop)."""

    def holds_term(self, margin: float) -> bool:
        """Whether the current term will still hold ``margin`` seconds from now (asked just
        before an order leaves: the process may have been frozen since the intent)."""

    def term_started(self) -> float:
        """When (``boot_clock``) the current term began. Every order sent for an open intent
        by an earlier term or another process reached the broker before this instant."""

    def generation(self) -> int:
        """Changes whenever this replica starts a new term of work (a new epoch): the engine
        then takes over every pending entry at once instead of waiting for them to idle."""

    def begin(self, signal_id: str, signal: bytes | None = None) -> Ticket:
        """Record the intent to execute ``signal_id`` (with the signal's JSON, so the intent
        can be settled without its stream entry); raise FenceLost if not allowed."""

    def open_intents(self) -> list[tuple[str, bytes | None]]:
        """(signal id, signal JSON) of every intent not yet done: what a new term sweeps,
        whether or not its stream entry is still pending."""

    def mark_unknown(self, ticket: Ticket) -> None:
        """Record that the order's outcome is unknown (it may fill later); FenceLost if stale."""

    def complete(self, ticket: Ticket, status: str, recorded: bytes, fill: Fill | None) -> bool:
        """Close the action under the ticket's epoch with its final status and the result to
        re-emit; apply ``fill`` to the book of positions. True if this call closed it, False
        if it was already closed (nothing applied twice). FenceLost if the epoch is stale."""


@dataclass(frozen=True, slots=True)
class Fill:
    """A fill as the position book applies it: ``action`` buy/sell moves the position by
    ``volume``; close flattens it (see ``position_after``)."""

    account: str
    symbol: str
    action: str
    volume: float
    price: float


def position_after(current: float, action: str, volume: float) -> float:
    """The one definition of what a fill does to a position, used by every book.

    buy adds ``volume``, sell subtracts it, close flattens the account's position in that
    symbol whatever its size or side (the order's volume is then only what was asked for).
    """
    if action == "buy":
        return current + volume
    if action == "sell":
        return current - volume
    if action == "close":
        return 0.0
    raise ValueError(f"unknown action {action!r}")
