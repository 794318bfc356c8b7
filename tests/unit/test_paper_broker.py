import time
from pathlib import Path

import pytest

from tradeguard.engine.broker import (
    BrokerDisconnected,
    BrokerError,
    BrokerNotConnected,
    BrokerRejected,
    BrokerTimeout,
    Order,
)
from tradeguard.engine.paper import BrokerKnobs, PaperBroker, SQLiteBook


def outcomes(seed: int, n: int = 200) -> list[str]:
    broker = PaperBroker(
        BrokerKnobs(latency=0, jitter=0, failure_rate=0.1, reject_rate=0.1, slippage_max=0.01),
        seed=seed,
    )
    broker.connect()
    out = []
    for i in range(n):
        try:
            fill = broker.place_order(Order(f"o{i}", "a", "EURUSD", "buy", 1.0, 1.0))
            out.append(f"fill:{fill.price:.6f}")
        except BrokerRejected:
            out.append("rejected")
        except BrokerError:
            out.append("failed")
    return out


def test_same_seed_same_outcomes() -> None:
    a, b = outcomes(3), outcomes(3)
    assert a == b
    assert outcomes(4) != a
    assert 5 < a.count("rejected") < 40 and 5 < a.count("failed") < 40


def test_orders_need_a_connection_and_disconnects_drop_it() -> None:
    broker = PaperBroker(BrokerKnobs(latency=0, jitter=0, disconnect_rate=1.0))
    with pytest.raises(BrokerDisconnected):
        broker.place_order(Order("x", "a", "S", "buy", 1))
    broker.connect()
    with pytest.raises(BrokerDisconnected):
        broker.place_order(Order("x", "a", "S", "buy", 1))
    assert not broker.connected


def test_a_strict_book_is_shared_and_fills_every_send_again(tmp_path: Path) -> None:
    """The strict broker (the default) is a MetaTrader terminal: a resent order is a new order."""
    path = tmp_path / "book.sqlite"
    one = PaperBroker(BrokerKnobs(latency=0, jitter=0), book=SQLiteBook(path))
    two = PaperBroker(BrokerKnobs(latency=0, jitter=0), seed=9, book=SQLiteBook(path))
    one.connect()
    two.connect()
    first = one.place_order(Order("sig-1", "a", "S", "buy", 1, 100.0))
    second = two.place_order(Order("sig-1", "a", "S", "buy", 1, 100.0))
    assert second != first
    assert two.lookup("sig-1") == first  # lookup answers with the first fill
    book = SQLiteBook(path)
    assert book.attempts() == {"sig-1": 2}
    assert [(f.client_order_id, f.side, f.volume) for f in book.all_fills()] == [
        ("sig-1", "buy", 1),
        ("sig-1", "buy", 1),
    ]


def test_the_forgiving_book_keeps_one_fill_per_client_id(tmp_path: Path) -> None:
    """The old, kind behaviour stays available as a knob, so a test can show what it hides."""
    path = tmp_path / "book.sqlite"
    knobs = BrokerKnobs(latency=0, jitter=0, forgiving=1)
    one = PaperBroker(knobs, book=SQLiteBook(path))
    two = PaperBroker(knobs, seed=9, book=SQLiteBook(path))
    one.connect()
    two.connect()
    first = one.place_order(Order("sig-1", "a", "S", "buy", 1, 100.0))
    assert two.place_order(Order("sig-1", "a", "S", "buy", 1, 100.0)) == first
    assert len(SQLiteBook(path).all_fills()) == 1


@pytest.mark.parametrize("fault", ["timeout_rate", "disconnect_rate"])
def test_an_order_cut_off_may_still_fill_later(fault: str) -> None:
    knobs = BrokerKnobs(latency=0, jitter=0, late_fill_rate=1.0, late_fill_delay=0.2)
    knobs.update({fault: 1.0})
    broker = PaperBroker(knobs)
    broker.connect()
    with pytest.raises(BrokerTimeout if fault == "timeout_rate" else BrokerDisconnected):
        broker.place_order(Order("late", "a", "S", "buy", 1, 100.0))
    assert broker.lookup("late") is None  # not yet
    deadline = time.monotonic() + 5
    while broker.lookup("late") is None:
        assert time.monotonic() < deadline, "the late fill never showed"
        time.sleep(0.02)
    assert time.monotonic() <= deadline
    assert knobs.max_in_flight() >= 0.2


def test_a_timed_out_order_never_fills_at_the_forgiving_broker() -> None:
    knobs = BrokerKnobs(latency=0, jitter=0, timeout_rate=1, late_fill_rate=1, forgiving=1)
    broker = PaperBroker(knobs)
    broker.connect()
    with pytest.raises(BrokerTimeout):
        broker.place_order(Order("t", "a", "S", "buy", 1, 100.0))
    assert broker.book.all_fills() == []


def test_lookup_lags_behind_the_fill_and_may_fail() -> None:
    broker = PaperBroker(BrokerKnobs(latency=0, jitter=0, visibility_delay=0.15))
    broker.connect()
    fill = broker.place_order(Order("v", "a", "S", "sell", 2, 50.0))
    assert broker.lookup("v") is None
    time.sleep(0.2)
    assert broker.lookup("v") == fill
    broker.knobs.update({"lookup_failure_rate": 1})
    with pytest.raises(BrokerDisconnected):
        broker.lookup("v")


def test_a_reconnect_may_block() -> None:
    broker = PaperBroker(BrokerKnobs(reconnect_block=0.1))
    started = time.monotonic()
    broker.connect()
    assert time.monotonic() - started >= 0.1
    assert broker.connected


def test_sending_without_a_connection_sends_nothing() -> None:
    broker = PaperBroker(BrokerKnobs(latency=0, jitter=0))
    with pytest.raises(BrokerNotConnected):
        broker.place_order(Order("n", "a", "S", "buy", 1))
    assert broker.book.attempts() == {}


def test_knobs_update_validates() -> None:
    knobs = BrokerKnobs()
    knobs.update({"latency": "0.5", "failure_rate": 0.2})
    assert (knobs.latency, knobs.failure_rate) == (0.5, 0.2)
    with pytest.raises(ValueError, match="unknown broker knob"):
        knobs.update({"speed": 1})
    with pytest.raises(ValueError, match=">= 0"):
        knobs.update({"latency": -1})


def test_a_dead_session_fails_every_order_until_the_client_connects_again() -> None:
    """The venue dropped the session without a word: the client still thinks it is connected,
    every order fails, and only a new connection (what reconnect_broker does) trades again."""
    broker = PaperBroker(BrokerKnobs(latency=0, jitter=0))
    broker.connect()
    assert broker.place_order(Order("o1", "a", "EURUSD", "buy", 1.0, 1.0)).volume == 1.0
    dropped_at = time.time()
    broker.knobs.update({"dead_sessions_before": dropped_at})
    for i in range(3):
        with pytest.raises(BrokerError, match="session is dead"):
            broker.place_order(Order(f"d{i}", "a", "EURUSD", "buy", 1.0, 1.0))
    assert broker.connected, "nothing tells the client"
    broker.connect()  # a new session, opened after the drop
    assert broker.place_order(Order("o2", "a", "EURUSD", "buy", 1.0, 1.0)).volume == 1.0
