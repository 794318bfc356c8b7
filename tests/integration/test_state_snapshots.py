"""DuckDB's account snapshots only move forward (tradeguard.store.duck)."""

from __future__ import annotations

from pathlib import Path

from tradeguard.bus.trade_state import AccountState
from tradeguard.store.duck import DuckStore


def test_a_snapshot_with_fewer_trades_never_replaces_the_durable_copy(tmp_path: Path) -> None:
    store = DuckStore(tmp_path / "store.duckdb")
    try:
        store.upsert_states([AccountState("acct", balance=-500.0, trades=5, positions={"X": 5.0})])
        # Redis lost the account and a new fill started it again from zero: not a newer copy.
        store.upsert_states([AccountState("acct", balance=-100.0, trades=1, positions={"X": 1.0})])
        kept = store.states()["acct"]
        assert (kept.trades, kept.balance, kept.positions) == (5, -500.0, {"X": 5.0})
        store.upsert_states([AccountState("acct", balance=-600.0, trades=6, positions={"X": 6.0})])
        assert store.states()["acct"].trades == 6
    finally:
        store.close()
