"""RTS, RIS and RTRS against a real redis-server."""

from __future__ import annotations

import pytest
from redis import Redis

from tradeguard.bus import (
    IllegalTransition,
    InstanceEvent,
    InstanceRegistry,
    InstanceState,
    Keys,
    ResultStream,
    TradeResult,
    TradeState,
)
from tradeguard.bus.connection import make_client
from tradeguard.fencing import Fill
from tradeguard.metrics.catalog import Metrics
from tradeguard.process.services import RedisServer

S = InstanceState


@pytest.fixture
def client(redis_server: RedisServer) -> Redis:
    return make_client(redis_server.url)


def result(i: int) -> TradeResult:
    return TradeResult(
        f"s{i}", "a", "EURUSD", "buy", 1.0, "filled", 1.0, 1.0001, 0.0001, 0.002, 1.0, 2.0, "e1"
    )


def test_results_stream_stays_near_its_cap(client: Redis) -> None:
    results = ResultStream(client, Keys(), maxlen=10_000)
    pipe_batches = 15_000
    for i in range(pipe_batches):
        results.append(result(i))
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default): near, never far above.
    assert 10_000 <= results.length() <= 10_100


def test_fill_is_applied_once_per_signal(client: Redis, metrics: Metrics) -> None:
    state = TradeState(client, Keys(), metrics)
    buy = Fill("acct", "EURUSD", "buy", 2.0, 100.0)
    assert state.apply_fill("sig-1", buy)
    assert not state.apply_fill("sig-1", buy)  # a retry
    st = state.get("acct")
    assert st is not None
    assert (st.positions["EURUSD"], st.balance, st.trades) == (2.0, -200.0, 1)
    samples = metrics.registry.get_sample_value(
        "tradeguard_redis_operation_duration_seconds_count", {"layer": "trade_state", "op": "read"}
    )
    assert samples == 1


def test_close_flattens_the_position_whatever_its_size(client: Redis) -> None:
    state = TradeState(client, Keys())
    assert state.apply_fill("b1", Fill("acct", "XAU", "buy", 3.0, 10.0))
    assert state.apply_fill("s1", Fill("acct", "XAU", "sell", 1.0, 12.0))
    assert state.apply_fill("c1", Fill("acct", "XAU", "close", 0.5, 11.0))  # volume ignored
    assert not state.apply_fill("c1", Fill("acct", "XAU", "close", 0.5, 11.0))
    st = state.get("acct")
    assert st is not None
    assert "XAU" not in st.positions
    assert st.balance == pytest.approx(-30.0 + 12.0 + 2.0 * 11.0)
    assert st.trades == 3


def test_instance_state_machine_and_events(client: Redis, metrics: Metrics) -> None:
    reg = InstanceRegistry(client, Keys(), metrics)
    reg.transition("mt5-1", S.STARTING, pid=123)
    reg.transition("mt5-1", S.RUNNING)
    reg.transition("mt5-1", S.FAILED)
    reg.transition("mt5-1", S.RECOVERING)
    assert reg.info("mt5-1")["recovery_attempts"] == "1"
    reg.transition("mt5-1", S.RUNNING)
    assert reg.info("mt5-1")["recovery_attempts"] == "0"
    reg.report("mt5-1", InstanceEvent.SOCKET_FAILURE, "connection reset")
    reg.transition("mt5-1", S.STOPPED)
    events = [e["event"] for e in reg.events()]
    assert events == [
        "instance_started",
        "instance_failed",
        "instance_recovered",
        "socket_failure",
        "instance_stopped",
    ]
    gauge = metrics.registry.get_sample_value(
        "tradeguard_instance_state", {"instance": "mt5-1", "state": "stopped"}
    )
    assert gauge == 1


def test_illegal_transition_raises_and_changes_nothing(client: Redis) -> None:
    reg = InstanceRegistry(client, Keys())
    reg.transition("mt5-2", S.STARTING)
    reg.transition("mt5-2", S.STOPPED)
    with pytest.raises(IllegalTransition, match="stopped -> failed"):
        reg.transition("mt5-2", S.FAILED)
    assert reg.state("mt5-2") is S.STOPPED
    with pytest.raises(IllegalTransition):
        InstanceRegistry(client, Keys()).transition("new-one", S.RUNNING)
