"""RTRS: the result stream, capped at about ``maxlen`` entries (MAXLEN ~)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from redis import Redis

from tradeguard.bus.instrument import LayerInstruments
from tradeguard.bus.keys import Keys
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.vocabulary import ORDER_STATUSES

RESULT_FIELD = b"result"


@dataclass(frozen=True, slots=True)
class TradeResult:
    """What became of one signal."""

    signal_id: str
    account: str
    symbol: str
    action: str
    volume: float
    status: str  # filled | rejected | failed
    requested_price: float | None
    fill_price: float | None
    slippage: float  # |fill - requested| / requested; 0 when not filled
    execution_seconds: float  # broker round trip
    created_at: float  # when the strategy created the signal
    executed_at: float  # when the result was decided
    engine: str
    detail: str = ""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TradeResult:
        return cls(**json.loads(raw))


class ResultStream:
    """Appends results; readers (the DuckDB persister) consume them through a group."""

    def __init__(
        self, redis: Redis, keys: Keys, maxlen: int = 10_000, metrics: Metrics | None = None
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.maxlen = maxlen
        self.instruments = LayerInstruments(metrics, "result_stream")
        self._written = (
            {s: metrics.results_written.labels(s) for s in ORDER_STATUSES} if metrics else None
        )

    def append(self, result: TradeResult) -> bytes:
        with self.instruments.timed("xadd"):
            entry_id = self.redis.xadd(
                self.keys.results,
                {RESULT_FIELD: result.to_json()},
                maxlen=self.maxlen,
                approximate=True,
            )
        if self._written is not None:
            self._written[result.status].inc()
        return bytes(entry_id)

    def length(self) -> int:
        return int(self.redis.xlen(self.keys.results))
