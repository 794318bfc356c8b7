from pathlib import Path

import pytest

from tradeguard.engine.broker import BrokerDisconnected, BrokerError, BrokerRejected, Order
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


def test_sqlite_book_is_shared_and_keeps_one_fill_per_client_id(tmp_path: Path) -> None:
    path = tmp_path / "book.sqlite"
    one = PaperBroker(BrokerKnobs(latency=0, jitter=0), book=SQLiteBook(path))
    two = PaperBroker(BrokerKnobs(latency=0, jitter=0), seed=9, book=SQLiteBook(path))
    one.connect()
    two.connect()
    first = one.place_order(Order("sig-1", "a", "S", "buy", 1, 100.0))
    second = two.place_order(Order("sig-1", "a", "S", "buy", 1, 100.0))
    assert second == first  # the broker answers a repeated client id with the earlier fill
    assert two.lookup("sig-1") == first
    assert SQLiteBook(path).attempts() == {"sig-1": 2}
    assert list(SQLiteBook(path).fills()) == ["sig-1"]


def test_knobs_update_validates() -> None:
    knobs = BrokerKnobs()
    knobs.update({"latency": "0.5", "failure_rate": 0.2})
    assert (knobs.latency, knobs.failure_rate) == (0.5, 0.2)
    with pytest.raises(ValueError, match="unknown broker knob"):
        knobs.update({"speed": 1})
    with pytest.raises(ValueError, match=">= 0"):
        knobs.update({"latency": -1})
