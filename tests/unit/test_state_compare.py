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


def test_fewer_trades_in_redis_than_duckdb_has_fills_is_lost_state_whatever_the_snapshot() -> None:
    """After a loss, trading lifts Redis's count past the snapshot's (3 trades in Redis since
    the loss, a snapshot of 2 taken before it): only DuckDB's 5 fills still show the loss."""
    found = compare({"acct": state(2, EURUSD=2.0)}, {"acct": state(3, EURUSD=3.0)}, {"acct": 5})
    assert [(m.kind, m.known_trades) for m in found] == [(LOST, 5)]
    assert "Redis 3 trades, DuckDB 5 trades" in found[0].describe()


def test_fills_up_to_redis_count_are_normal_and_fills_alone_are_checked() -> None:
    snapshot, in_redis = state(2, EURUSD=2.0), state(5, EURUSD=5.0)
    assert compare({"acct": snapshot}, {"acct": in_redis}, {"acct": 5}) == []
    assert [m.kind for m in compare({}, {"acct": None}, {"acct": 1})] == [LOST]
