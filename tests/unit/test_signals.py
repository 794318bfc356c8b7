import json
import math

import pytest

from tradeguard.bus.signals import SIGNAL_FIELD, InvalidSignal, Signal, decode_signal


def entry(**data: object) -> dict[bytes, bytes]:
    base: dict[str, object] = {
        "signal_id": "s-1",
        "account": "acct-1",
        "symbol": "EURUSD",
        "action": "buy",
        "volume": 1.0,
        "price": 1.1,
        "created_at": 1_700_000_000.0,
    }
    base.update(data)
    return {SIGNAL_FIELD: json.dumps({k: v for k, v in base.items() if v is not ...}).encode()}


def test_round_trip() -> None:
    sig = Signal(account="a", symbol="EURUSD", action="sell", volume=2.5, price=1.2)
    back = decode_signal({SIGNAL_FIELD: sig.to_json()}, 4096)
    assert back == sig


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (entry(account=...), "missing_field"),
        (entry(action="hold"), "bad_action"),
        (entry(volume=0), "bad_volume"),
        (entry(volume=-3), "bad_volume"),
        (entry(volume="1"), "bad_volume"),
        (entry(volume=True), "bad_volume"),
        (entry(price=-1), "bad_field"),
        (entry(signal_id="has space"), "bad_field"),
        (entry(extra="x"), "bad_field"),
        ({SIGNAL_FIELD: b"{not json"}, "invalid_json"),
        ({SIGNAL_FIELD: b"[1,2]"}, "invalid_json"),
        ({SIGNAL_FIELD: b"\xff\xfe"}, "invalid_json"),
        ({b"other": b"x"}, "missing_field"),
        ({SIGNAL_FIELD: b"x" * 5000}, "oversized"),
    ],
)
def test_malformed_signals_are_rejected_with_a_reason(
    fields: dict[bytes, bytes], reason: str
) -> None:
    with pytest.raises(InvalidSignal) as info:
        decode_signal(fields, 4096)
    assert info.value.reason == reason


def test_nan_and_infinite_volume_are_rejected() -> None:
    # json.dumps writes NaN/Infinity literals, which json.loads accepts: they must still fail.
    for bad in (math.nan, math.inf):
        raw = json.dumps(
            {
                "signal_id": "s",
                "account": "a",
                "symbol": "X",
                "action": "buy",
                "volume": bad,
                "created_at": 1.0,
            }
        ).encode()
        with pytest.raises(InvalidSignal) as info:
            decode_signal({SIGNAL_FIELD: raw}, 4096)
        assert info.value.reason == "bad_volume"


def test_constructor_validates_too() -> None:
    with pytest.raises(InvalidSignal):
        Signal(account="a", symbol="X", action="buy", volume=math.nan)
