"""Plain records the ledger returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Leadership:
    """The single leadership row, read with the database's own clock."""

    epoch: int
    holder: str | None
    token: str | None
    lease_until: float  # unix seconds, database clock
    db_now: float  # unix seconds, database clock, at the read

    @property
    def expired(self) -> bool:
        return self.lease_until <= self.db_now

    def remaining(self) -> float:
        return self.lease_until - self.db_now


@dataclass(frozen=True)
class ReplicaBeat:
    """One replica's last heartbeat, as the ledger saw it."""

    replica: str
    age_seconds: float
    is_leader: bool
    epoch: int
    mode: str


@dataclass(frozen=True)
class Position:
    """An open position as the ledger keeps it, with the risk and margin it was recorded with."""

    account: str
    symbol: str
    volume: float
    avg_price: float
    leverage: float
    risk: float
    margin: float
