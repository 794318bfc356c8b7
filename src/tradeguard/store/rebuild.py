"""An account's trade state rebuilt from its filled results: what ``resync_state`` writes back.

Redis applies every fill with one script (``bus/trade_state.py``): buy and sell move the
position by the signed volume and the balance by its cost, close sells what is held at the fill
price, and each fill counts one trade. Starting from an empty hash, the state is therefore a
fold of the account's fills in the order they were applied, and DuckDB's results table holds
every one of them (each replica persists every result). Rebuilding from them is exact, where
DuckDB's periodic snapshot is not: it trails Redis by up to a second of fills, and fills applied
after Redis lost the hash (onto a fresh, nearly empty one) are in no snapshot at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from tradeguard.bus.trade_state import AccountState
from tradeguard.fencing import Fill, position_after


def rebuild_account(
    account: str, fills: Iterable[Fill], like: AccountState | None = None
) -> AccountState:
    """The state the fill script leaves after ``fills`` (in applied order) on an empty hash.

    Fills never set equity or leverage; those are taken from ``like`` (DuckDB's snapshot), so a
    value another process put in the hash survives the rebuild.
    """
    balance = 0.0
    trades = 0
    positions: dict[str, float] = {}
    for fill in fills:
        if fill.action == "close":
            balance += positions.pop(fill.symbol, 0.0) * fill.price
        else:
            signed = position_after(0.0, fill.action, fill.volume)
            positions[fill.symbol] = positions.get(fill.symbol, 0.0) + signed
            balance -= signed * fill.price
        trades += 1
    return AccountState(
        account=account,
        balance=balance,
        equity=like.equity if like is not None else 0.0,
        leverage=like.leverage if like is not None else 1.0,
        trades=trades,
        updated_at=time.time(),
        positions=positions,
    )
