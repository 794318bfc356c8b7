"""Which Redis/DuckDB account pairs count as mismatched (tradeguard.store.consistency)."""

from __future__ import annotations

from tradeguard.bus.trade_state import AccountState
from tradeguard.store.consistency import DIVERGED, LOST, compare


def state(trades: int, balance: float = -100.0, **positions: float) -> AccountState:
    return AccountState("acct", balance=balance, trades=trades, positions=dict(positions))


def kinds(duck: AccountState, redis: AccountState | None) -> list[str]:
    return [m.kind for m in compare({"acct": duck}, {"acct": redis})]


def test_duckdb_behind_redis_is_normal() -> None:
    assert kinds(state(3, EURUSD=3.0), state(5, balance=-180.0, EURUSD=5.0)) == []


def test_equal_copies_agree_whatever_the_float_noise() -> None:
    assert kinds(state(5, EURUSD=0.3), state(5, EURUSD=0.1 + 0.2)) == []


def test_a_missing_hash_or_fewer_trades_in_redis_is_lost_state() -> None:
    assert kinds(state(5, EURUSD=5.0), None) == [LOST]
    assert kinds(state(5, EURUSD=5.0), state(1, balance=-20.0, EURUSD=1.0)) == [LOST]


def test_the_same_trade_count_with_other_figures_has_diverged() -> None:
    assert kinds(state(5, EURUSD=5.0), state(5, EURUSD=4.0)) == [DIVERGED]
    assert kinds(state(5, EURUSD=5.0), state(5, balance=-99.0, EURUSD=5.0)) == [DIVERGED]
    assert kinds(state(5, EURUSD=5.0), state(5, EURUSD=5.0, GBPUSD=1.0)) == [DIVERGED]


def test_accounts_only_in_redis_are_not_checked_yet() -> None:
    assert compare({}, {"acct": state(5)}) == []
