"""Trade signals: the model, its validation, and its wire form on the signal stream.

A signal that fails validation is never executed: the engine moves it to the dead-letter stream
with one of the bounded reasons below (they double as the ``reason`` metric label).
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tradeguard.errors import TradeguardError
from tradeguard.metrics.vocabulary import ACTIONS

SIGNAL_FIELD = b"signal"
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_FIELDS = frozenset(
    ("account", "symbol", "action", "volume", "price", "signal_id", "created_at", "strategy")
)
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,31}$")
REQUIRED = ("signal_id", "account", "symbol", "action", "volume", "created_at")


class InvalidSignal(TradeguardError):
    """A signal that must not be executed; ``reason`` is a bounded label value."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Signal:
    """One instruction from a strategy: act on ``volume`` lots of ``symbol`` for ``account``."""

    account: str
    symbol: str
    action: str
    volume: float
    price: float | None = None
    signal_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)
    strategy: str = ""

    def __post_init__(self) -> None:
        validate_fields(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        # Written out: dataclasses.asdict deep-copies and costs about 10x more on the hot path.
        return {
            "account": self.account,
            "symbol": self.symbol,
            "action": self.action,
            "volume": self.volume,
            "price": self.price,
            "signal_id": self.signal_id,
            "created_at": self.created_at,
            "strategy": self.strategy,
        }

    def to_json(self) -> bytes:
        return _ENCODER.encode(self.as_dict()).encode()

    @classmethod
    def _validated(cls, data: dict[str, Any]) -> Signal:
        """Build from fields ``validate_fields`` already accepted, without checking twice."""
        signal = object.__new__(cls)
        for name, value in (
            ("account", data["account"]),
            ("symbol", data["symbol"]),
            ("action", data["action"]),
            ("volume", float(data["volume"])),
            ("price", None if data.get("price") is None else float(data["price"])),
            ("signal_id", data["signal_id"]),
            ("created_at", float(data["created_at"])),
            ("strategy", data.get("strategy", "")),
        ):
            object.__setattr__(signal, name, value)
        return signal

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.created_at


# No volume, price or timestamp a venue trades is near this; bounding them keeps every product
# (notional, cash, slippage) finite, so one absurd signal cannot poison account state.
MAX_NUMBER = 1e12


def _positive_number(name: str, value: Any, reason: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSignal(reason, f"{name} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        raise InvalidSignal(reason, f"{name} is out of range") from None
    if not math.isfinite(number) or number <= 0 or number > MAX_NUMBER:
        raise InvalidSignal(
            reason, f"{name} must be a positive finite number up to {MAX_NUMBER:g}, got {value!r}"
        )
    return number


def validate_fields(data: dict[str, Any]) -> None:
    """Raise InvalidSignal with a precise reason when ``data`` is not an executable signal."""
    missing = [name for name in REQUIRED if data.get(name) in (None, "")]
    if missing:
        raise InvalidSignal("missing_field", f"missing {', '.join(missing)}")
    if data["action"] not in ACTIONS:
        raise InvalidSignal(
            "bad_action", f"action must be one of {ACTIONS}, got {data['action']!r}"
        )
    _positive_number("volume", data["volume"], "bad_volume")
    if data.get("price") is not None:
        _positive_number("price", data["price"], "bad_field")
    _positive_number("created_at", data["created_at"], "bad_field")
    for name, pattern in (
        ("signal_id", _ID_PATTERN),
        ("account", _NAME_PATTERN),
        ("symbol", _NAME_PATTERN),
    ):
        if not isinstance(data[name], str) or not pattern.fullmatch(data[name]):
            raise InvalidSignal("bad_field", f"{name} {data[name]!r} is not a valid identifier")
    if not isinstance(data.get("strategy", ""), str):
        raise InvalidSignal("bad_field", "strategy must be a string")


def decode_signal(fields: dict[bytes, bytes], max_bytes: int) -> Signal:
    """Parse and validate one stream entry; raise InvalidSignal on any problem."""
    raw = fields.get(SIGNAL_FIELD)
    if raw is None:
        raise InvalidSignal("missing_field", "entry has no 'signal' field")
    if len(raw) > max_bytes:
        raise InvalidSignal("oversized", f"payload is {len(raw)} bytes, limit {max_bytes}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nesting
        raise InvalidSignal("invalid_json", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise InvalidSignal("invalid_json", "payload is not a JSON object")
    unknown = data.keys() - _FIELDS
    if unknown:
        raise InvalidSignal("bad_field", f"unknown fields {sorted(unknown)}")
    validate_fields(data)
    return Signal._validated(data)


def peek_signal_id(fields: dict[bytes, bytes]) -> str | None:
    """Best-effort signal id of a possibly malformed entry, for dead-letter records."""
    try:
        data = json.loads(fields.get(SIGNAL_FIELD, b""))
        sid = data.get("signal_id") if isinstance(data, dict) else None
        # Only an id that is valid (hence plain ASCII): a lone surrogate cannot even be
        # written to Redis, and the dead-letter record must always be writable.
        return sid if isinstance(sid, str) and _ID_PATTERN.fullmatch(sid) else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
