"""The four Redis layers: trade state (RTS), instance state (RIS), signals (RTSS), results (RTRS).

The bus knows nothing of HA or the engine: it stores, streams and times.
"""

from tradeguard.bus.instance_state import (
    IllegalTransition,
    InstanceEvent,
    InstanceRegistry,
    InstanceState,
)
from tradeguard.bus.keys import Keys
from tradeguard.bus.results import ResultStream, TradeResult
from tradeguard.bus.signal_stream import DuplicateSignal, Entry, PublishError, SignalStream
from tradeguard.bus.signals import InvalidSignal, Signal
from tradeguard.bus.trade_state import AccountState, TradeState

__all__ = [
    "AccountState",
    "DuplicateSignal",
    "Entry",
    "IllegalTransition",
    "InstanceEvent",
    "InstanceRegistry",
    "InstanceState",
    "InvalidSignal",
    "Keys",
    "PublishError",
    "ResultStream",
    "Signal",
    "SignalStream",
    "TradeResult",
    "TradeState",
]
