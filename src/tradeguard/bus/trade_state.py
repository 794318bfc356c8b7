"""RTS: live account state (balance, equity, positions, leverage) in one hash per account.

Every write and read is timed (``op="write"``/``"read"`` on the trade_state layer): the seeds'
trade-state latency alerts are built on these histograms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis import Redis

from tradeguard.bus.instrument import LayerInstruments
from tradeguard.bus.keys import Keys
from tradeguard.fencing import Fill, position_after
from tradeguard.metrics.catalog import Metrics

POSITION_PREFIX = "pos:"
APPLIED_TTL_SECONDS = 86_400
# ARGV: position field, action, signed volume, cash delta, price, now, marker TTL. The position
# change is tradeguard.fencing.position_after: buy adds, sell subtracts (the signed volume and
# its cash come from the caller), close flattens what is held (the field goes, its value is
# sold at the price).
_APPLY_FILL = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[7]) then return 0 end
if ARGV[2] == 'close' then
  local held = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HINCRBYFLOAT', KEYS[1], 'balance', string.format('%.17g', held * tonumber(ARGV[5])))
else
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[1], ARGV[3])
  redis.call('HINCRBYFLOAT', KEYS[1], 'balance', ARGV[4])
end
redis.call('HINCRBY', KEYS[1], 'trades', 1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[6])
return 1
"""


@dataclass
class AccountState:
    """A decoded account hash."""

    account: str
    balance: float = 0.0
    equity: float = 0.0
    leverage: float = 1.0
    trades: int = 0
    updated_at: float = 0.0
    positions: dict[str, float] = field(default_factory=dict)


class TradeState:
    """Reads and updates account hashes."""

    def __init__(self, redis: Redis, keys: Keys, metrics: Metrics | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.instruments = LayerInstruments(metrics, "trade_state")
        self._metrics = metrics
        self._apply = redis.register_script(_APPLY_FILL)

    def apply_fill(self, signal_id: str, fill: Fill) -> bool:
        """Apply one fill to the account, once per signal id; False if it was applied before.

        Position, balance, trade count and the applied-marker change in one script, so an
        engine that crashed after this call and retries the signal cannot count it twice. The
        balance moves by the cash the position change cost (a close sells what was held).
        """
        signed = position_after(0.0, fill.action, fill.volume)  # 0 for close: see the script
        with self.instruments.timed("write"):
            applied = self._apply(
                keys=[self.keys.state(fill.account), self.keys.applied(signal_id)],
                args=[
                    POSITION_PREFIX + fill.symbol,
                    fill.action,
                    repr(signed),
                    repr(-signed * fill.price),
                    repr(fill.price),
                    repr(time.time()),
                    APPLIED_TTL_SECONDS,
                ],
            )
        if applied and self._metrics is not None:
            self._metrics.trade_state_updates.labels(fill.account).inc()
        return bool(applied)

    def put(self, state: AccountState) -> None:
        """Overwrite an account's state (used by resync from DuckDB)."""
        key = self.keys.state(state.account)
        mapping: dict[str, str] = {
            "balance": repr(state.balance),
            "equity": repr(state.equity),
            "leverage": repr(state.leverage),
            "trades": str(state.trades),
            "updated_at": repr(state.updated_at or time.time()),
        }
        mapping.update({POSITION_PREFIX + s: repr(v) for s, v in state.positions.items()})
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=mapping)
        with self.instruments.timed("write"):
            pipe.execute()
        if self._metrics is not None:
            self._metrics.trade_state_updates.labels(state.account).inc()

    def get(self, account: str) -> AccountState | None:
        with self.instruments.timed("read"):
            raw: dict[bytes, bytes] = self.redis.hgetall(self.keys.state(account))
        if not raw:
            return None
        return decode_state(account, raw)

    def accounts(self) -> list[str]:
        prefix = self.keys.state("")
        return sorted(
            k.decode()[len(prefix) :] for k in self.redis.scan_iter(match=prefix + "*", count=500)
        )


def decode_state(account: str, raw: dict[bytes, bytes]) -> AccountState:
    """Decode an account hash, ignoring fields it does not know."""
    state = AccountState(account=account)
    for k, v in raw.items():
        name = k.decode()
        if name.startswith(POSITION_PREFIX):
            state.positions[name[len(POSITION_PREFIX) :]] = float(v)
        elif name in ("balance", "equity", "leverage", "updated_at"):
            setattr(state, name, float(v))
        elif name == "trades":
            state.trades = int(v)
    return state
