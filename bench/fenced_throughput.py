"""Throughput of the fenced engine, and what the send-margin check before each order costs.

One engine, in this process, leads through a real ledger (SQLite, ``--ledger postgresql`` for a
throwaway PostgreSQL) and a Redis lease, and executes batches of signals through the strict
paper broker (no latency) over a real redis-server. Three fences take turns, round by round, so
drift in the machine hits all alike:

- ``ledger``: the shipped fence (intent, completion and the fill in the ledger; before each
  order, the check that the term holds for longer than the send margin);
- ``ledger, no margin check``: the same with ``holds_term`` always true (the cost of the check
  is the difference);
- ``local``: the single-replica fence (intents in Redis), for the cost of the ledger itself.

Prints signals/s per fence (median over rounds) and the ratios to the shipped fence.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import median, redis_server
from tradeguard.bus import Keys, Signal, SignalStream
from tradeguard.bus.connection import make_client
from tradeguard.bus.results import ResultStream
from tradeguard.bus.trade_state import TradeState
from tradeguard.engine.fencing import LocalFence
from tradeguard.engine.loop import Engine, EngineConfig
from tradeguard.engine.paper import BrokerKnobs, PaperBroker
from tradeguard.fencing import Fence
from tradeguard.ha.coordinator import Coordinator, HAConfig
from tradeguard.ha.fence import LedgerFence
from tradeguard.ha.lease import RedisLease
from tradeguard.ha.ledger import open_ledger
from tradeguard.process.services import PostgresServer

SEND_MARGIN = 1.0  # the shipped default


class NoMarginCheck(LedgerFence):
    """The shipped fence without the check before each order."""

    def holds_term(self, margin: float) -> bool:
        return True


@contextlib.contextmanager
def ledger_url(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'ledger.sqlite'}"
        return
    server = PostgresServer(tmp / "pg").start()
    try:
        yield server.url
    finally:
        server.stop()


def run_batch(fence: Fence, redis_url: str, prefix: str, n: int) -> float:
    """Publish ``n`` signals under a fresh prefix, then time the engine draining them."""
    client = make_client(redis_url)
    keys = Keys(prefix)
    stream = SignalStream(client, keys)
    stream.ensure_group()
    for i in range(n):
        stream.publish(
            Signal(
                account="acct",
                symbol="EURUSD",
                action="buy" if i % 2 else "sell",
                volume=1.0,
                price=1.1,
                signal_id=f"{prefix}{i}",
            )
        )
    broker = PaperBroker(BrokerKnobs(latency=0, jitter=0))
    broker.connect()
    engine = Engine(
        EngineConfig(consumer="bench", block_ms=1, send_margin=SEND_MARGIN),
        stream,
        ResultStream(client, keys),
        TradeState(client, keys),
        broker,
        fence,
    )
    started = time.perf_counter()
    while engine.stats.processed < n:
        engine.step()
    took = time.perf_counter() - started
    client.close()
    return n / took


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=400, help="signals per batch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ledger", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    with (
        redis_server() as redis,
        tempfile.TemporaryDirectory(prefix="tradeguard-bench-") as tmp,
        ledger_url(args.ledger, Path(tmp)) as url,
    ):
        ledger = open_ledger(url, timeout=5.0)
        ledger.setup()
        lease_client = make_client(redis.url)
        coordinator = Coordinator(
            HAConfig("bench"),
            ledger,
            lambda token: RedisLease(lease_client, "tg:leader", "bench", token, 5.0),
        )
        stop = threading.Event()
        loop = threading.Thread(target=coordinator.run, args=(stop,), daemon=True)
        loop.start()
        deadline = time.monotonic() + 10
        while not coordinator.may_execute():
            if time.monotonic() > deadline:
                raise SystemExit("the bench replica never became leader")
            time.sleep(0.01)
        fences: dict[str, Fence] = {
            "ledger": LedgerFence(coordinator),
            "ledger, no margin check": NoMarginCheck(coordinator),
            "local": LocalFence(make_client(redis.url), Keys("bench-local:")),
        }
        rates: dict[str, list[float]] = {name: [] for name in fences}
        for r in range(args.rounds):
            for i, (name, fence) in enumerate(fences.items()):
                prefix = f"b{r}-f{i}:"
                rates[name].append(run_batch(fence, redis.url, prefix, args.signals))
        stop.set()
        loop.join(10)
        ledger.close()
    shipped = median(rates["ledger"])
    print(
        f"fenced engine throughput, {args.signals} signals x {args.rounds} rounds, "
        f"{args.ledger} ledger, strict paper broker without latency, send margin {SEND_MARGIN}s:"
    )
    for name, values in rates.items():
        rate = median(values)
        print(f"  {name:<26} {rate:8.0f} signals/s   ({rate / shipped:.2f}x the shipped fence)")


if __name__ == "__main__":
    main()
