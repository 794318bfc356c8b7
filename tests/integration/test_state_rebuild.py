"""The resync's rebuild of an account from its fills agrees with Redis's own fill script.

Any sequence of buys, sells and closes, applied by ``TradeState.apply_fill`` (the script every
engine runs) to an empty hash on a real redis-server, leaves the state ``rebuild_account``
computes from the same fills: what a resync writes back is what Redis would have held.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tradeguard.bus import Keys
from tradeguard.bus.connection import make_client
from tradeguard.bus.trade_state import AccountState, TradeState
from tradeguard.fencing import Fill
from tradeguard.process.services import RedisServer
from tradeguard.store.consistency import compare
from tradeguard.store.rebuild import rebuild_account

fills = st.lists(
    st.builds(
        Fill,
        account=st.just("acct"),
        symbol=st.sampled_from(["EURUSD", "XAUUSD"]),
        action=st.sampled_from(["buy", "sell", "close"]),
        volume=st.floats(min_value=0.01, max_value=100, allow_nan=False).map(lambda v: round(v, 2)),
        price=st.floats(min_value=0.5, max_value=5000, allow_nan=False).map(lambda p: round(p, 5)),
    ),
    max_size=40,
)
_runs = itertools.count()


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=fills)
def test_the_rebuild_is_the_state_the_fill_script_leaves(
    redis_server: RedisServer, sequence: list[Fill]
) -> None:
    keys = Keys(prefix=f"run{next(_runs)}:")
    state = TradeState(make_client(redis_server.url), keys)
    for n, fill in enumerate(sequence):
        assert state.apply_fill(f"s{n}", fill)
    in_redis = state.get("acct") or AccountState("acct")
    rebuilt = rebuild_account("acct", sequence, like=None)
    assert rebuilt.trades == in_redis.trades == len(sequence)
    # compare() is the consistency check's own rule: the same trade count, and balance and
    # positions equal within floating-point noise.
    assert compare({"acct": rebuilt}, {"acct": in_redis}) == [], (rebuilt, in_redis)


def test_equity_and_leverage_come_from_the_snapshot() -> None:
    snapshot = AccountState("acct", equity=1000.0, leverage=30.0, trades=1)
    rebuilt = rebuild_account("acct", [Fill("acct", "EURUSD", "buy", 2.0, 1.5)], like=snapshot)
    assert (rebuilt.equity, rebuilt.leverage, rebuilt.balance) == (1000.0, 30.0, -3.0)
    assert rebuilt.positions == {"EURUSD": 2.0}
