"""Unknown outcomes at a broker that forgives nothing, against a real redis-server.

The strict paper broker fills every order it gets, even a resend with a client order id it has
seen, and an order that timed out may still fill afterwards. So an engine that recorded a
timeout as ``failed``, or resent after it, shows here as a wrong status or a second fill. The
first order of each test times out (``FirstOrderCutOff``); what happens next is the point.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest

from tradeguard.bus import Keys, Signal, SignalStream
from tradeguard.bus.connection import make_client
from tradeguard.bus.results import RESULT_FIELD
from tradeguard.config import Settings
from tradeguard.engine.broker import Fill, Order
from tradeguard.engine.paper import BrokerKnobs, MemoryBook, PaperBroker
from tradeguard.engine.risk import RiskLimits
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.process import wait_until

IN_FLIGHT = 0.6  # the engine's configured in-flight time (the broker's knobs may raise it)
LATE = 0.3  # a late fill lands this long after the timeout


class FirstOrderCutOff:
    """The strict paper broker, except that the first order times out (``fault``) and, with
    ``late``, fills ``LATE`` seconds afterwards all the same."""

    def __init__(self, fault: str = "timeout_rate", late: bool = True) -> None:
        self.paper = PaperBroker(
            BrokerKnobs(latency=0.001, jitter=0, late_fill_delay=LATE), book=MemoryBook()
        )
        self.fault = fault
        self.late = late
        self.cut = False

    @property
    def connected(self) -> bool:
        return self.paper.connected

    def connect(self) -> None:
        self.paper.connect()

    def max_in_flight(self) -> float:
        return self.paper.max_in_flight()

    def lookup(self, client_order_id: str) -> Fill | None:
        return self.paper.lookup(client_order_id)

    def place_order(self, order: Order) -> Fill:
        if self.cut:
            return self.paper.place_order(order)
        self.cut = True
        knobs = self.paper.knobs
        knobs.update({self.fault: 1, "late_fill_rate": 1 if self.late else 0})
        try:
            return self.paper.place_order(order)
        finally:
            knobs.update({self.fault: 0, "late_fill_rate": 0})


@pytest.fixture
def outcome_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"broker_max_in_flight_seconds": IN_FLIGHT})


def results(svc: EngineService) -> list[dict[str, object]]:
    return [json.loads(f[RESULT_FIELD]) for _id, f in svc.results.redis.xrange(svc.keys.results)]


def publish(settings: Settings, signal_id: str, **fields: object) -> None:
    values: dict[str, object] = {
        "account": "acct",
        "symbol": "EURUSD",
        "action": "buy",
        "volume": 1.0,
        "price": 1.1,
        "signal_id": signal_id,
        **fields,
    }
    SignalStream(make_client(settings.redis_url), Keys()).publish(Signal(**values))  # type: ignore[arg-type]


def settled(svc: EngineService, signal_id: str) -> dict[str, object]:
    """The one result for ``signal_id`` once it exists, and nothing pending any more."""
    wait_until(
        lambda: any(r["signal_id"] == signal_id for r in results(svc)),
        15,
        f"a result for {signal_id}",
    )
    wait_until(
        lambda: svc.signals.redis.xpending(svc.keys.signals, "engine")["pending"] == 0,
        10,
        "the entry acknowledged",
    )
    mine = [r for r in results(svc) if r["signal_id"] == signal_id]
    assert len(mine) == 1, mine
    return mine[0]


@pytest.fixture
def engine(outcome_settings: Settings) -> Iterator[tuple[EngineService, FirstOrderCutOff]]:
    broker = FirstOrderCutOff()
    with EngineService(outcome_settings, EngineOptions(metrics_port=0), broker=broker) as svc:
        yield svc, broker


def sample(svc: EngineService, name: str, **labels: str) -> float:
    return svc.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("fault", ["timeout_rate", "disconnect_rate"])
def test_a_timeout_then_a_late_fill_is_recorded_filled_and_never_resent(
    outcome_settings: Settings, fault: str
) -> None:
    broker = FirstOrderCutOff(fault, late=True)
    with EngineService(outcome_settings, EngineOptions(metrics_port=0), broker=broker) as svc:
        publish(outcome_settings, "late-1")
        result = settled(svc, "late-1")
        assert (result["status"], result["detail"]) == ("filled", "reconciled")
        assert broker.paper.book.attempts() == {"late-1": 1}  # never resent
        assert len(broker.paper.book.all_fills()) == 1
        assert sample(svc, "tradeguard_broker_orders_unknown_total") == 1
        assert sample(svc, "tradeguard_broker_orders_reconciled_total", status="matched") == 1
        state = svc.state.get("acct")
        assert state is not None and state.positions == {"EURUSD": 1.0}


def test_a_timeout_without_a_fill_is_sent_again_only_after_the_in_flight_time(
    outcome_settings: Settings,
) -> None:
    broker = FirstOrderCutOff(late=False)
    with EngineService(outcome_settings, EngineOptions(metrics_port=0), broker=broker) as svc:
        publish(outcome_settings, "t-1")
        wait_until(lambda: broker.cut, 10, "the first order to be cut off")
        cut_at = time.monotonic()
        result = settled(svc, "t-1")
        assert result["status"] == "filled" and result["detail"] == ""
        fills = broker.paper.book.all_fills()
        assert [f.client_order_id for f in fills] == ["t-1"]
        assert broker.paper.book.attempts() == {"t-1": 2}
        # The resend waited out the in-flight time: a late fill of the first could not come.
        assert time.monotonic() - cut_at >= IN_FLIGHT
        assert sample(svc, "tradeguard_broker_orders_reconciled_total", status="sent") == 1


def test_the_risk_filter_does_not_veto_an_order_the_broker_already_filled(
    engine: tuple[EngineService, FirstOrderCutOff], outcome_settings: Settings
) -> None:
    svc, broker = engine
    publish(outcome_settings, "r-1", volume=5.0)
    wait_until(lambda: broker.cut, 10, "the first order to be cut off")
    # The limits tighten while the outcome is unknown: the order is at the broker already.
    svc.engine.config = replace(svc.engine.config, risk=RiskLimits(max_volume=1.0))
    result = settled(svc, "r-1")
    assert (result["status"], result["detail"]) == ("filled", "reconciled")
    assert len(broker.paper.book.all_fills()) == 1


@pytest.mark.parametrize("late", [True, False])
def test_a_signal_that_expires_while_its_outcome_is_unknown(
    outcome_settings: Settings, late: bool
) -> None:
    """With a fill at the broker it is recorded (never dead-lettered: that would drop a fill);
    without one it is dead-lettered as expired and its intent closed."""
    settings = outcome_settings.model_copy(update={"signal_ttl_seconds": 2.0})
    broker = FirstOrderCutOff(late=late)
    with EngineService(settings, EngineOptions(metrics_port=0), broker=broker) as svc:
        publish(settings, "x-1", created_at=time.time() - 1.8)
        if late:
            result = settled(svc, "x-1")
            assert (result["status"], result["detail"]) == ("filled", "reconciled")
        else:
            wait_until(
                lambda: svc.signals.redis.xlen(svc.keys.signals_dead) == 1, 15, "a dead letter"
            )
            [(_id, dead)] = svc.signals.redis.xrange(svc.keys.signals_dead)
            assert (dead[b"signal_id"], dead[b"reason"]) == (b"x-1", b"expired")
            assert results(svc) == []
            assert svc.signals.redis.get(svc.keys.intent("x-1")) == b"done:expired"
            assert sample(svc, "tradeguard_broker_orders_reconciled_total", status="failed") == 1
        assert broker.paper.book.attempts() == {"x-1": 1}
        assert len(broker.paper.book.all_fills()) == (1 if late else 0)


def test_close_flattens_the_account_position_through_the_engine(
    engine: tuple[EngineService, FirstOrderCutOff], outcome_settings: Settings
) -> None:
    svc, broker = engine
    broker.cut = True  # no faults here
    publish(outcome_settings, "b-1", volume=2.0)
    publish(outcome_settings, "b-2", volume=0.5, action="sell")
    settled(svc, "b-2")
    state = svc.state.get("acct")
    assert state is not None and state.positions == {"EURUSD": 1.5}
    publish(outcome_settings, "c-1", volume=0.1, action="close")
    assert settled(svc, "c-1")["status"] == "filled"
    state = svc.state.get("acct")
    assert state is not None and state.positions == {}
    assert Counter(r["status"] for r in results(svc)) == Counter({"filled": 3})
