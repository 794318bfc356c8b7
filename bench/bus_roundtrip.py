"""Bus round trip (publish -> consume -> ack) against a bare redis-py loop, same run.

Both loops do one signal at a time over the same redis-server: XADD, XREADGROUP COUNT 1, XACK.
tradeguard's publish adds a uniqueness check (one Lua call instead of XADD) and its consume
adds validation and timing. Rounds alternate so drift in the machine hits both alike.
Prints throughput, p50/p99 per round trip, and the ratio (target >= 0.7x).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import uuid

from prometheus_client import CollectorRegistry
from redis import Redis

from bench.common import median, quantile, redis_server
from tradeguard.bus import Keys, Signal, SignalStream
from tradeguard.bus.connection import make_client
from tradeguard.bus.signals import decode_signal
from tradeguard.metrics.catalog import Metrics


def bare_loop(client: Redis, n: int, stream: str) -> list[float]:
    with contextlib.suppress(Exception):
        client.xgroup_create(stream, "g", id="0", mkstream=True)
    payload = Signal(account="a", symbol="EURUSD", action="buy", volume=1.0).to_json()
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.xadd(stream, {b"signal": payload})
        reply = client.xreadgroup("g", "c", {stream: ">"}, count=1)
        json.loads(reply[0][1][0][1][b"signal"])
        client.xack(stream, "g", reply[0][1][0][0])
        lat.append(time.perf_counter() - t0)
    return lat


def tradeguard_loop(client: Redis, n: int, prefix: str, metrics: Metrics | None) -> list[float]:
    stream = SignalStream(client, Keys(prefix), metrics=metrics)
    stream.ensure_group()
    lat = []
    for _ in range(n):
        sig = Signal(
            account="a", symbol="EURUSD", action="buy", volume=1.0, signal_id=uuid.uuid4().hex
        )
        t0 = time.perf_counter()
        stream.publish(sig)
        [entry] = stream.read("c", count=1, block_ms=None)
        decode_signal(entry.fields, 4096)
        stream.ack(entry.entry_id)
        lat.append(time.perf_counter() - t0)
    return lat


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3000, help="round trips per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args([]) if __name__ != "__main__" else parser.parse_args()
    with redis_server() as server:
        client = make_client(server.url)
        bare_tp, tg_tp, bare_all, tg_all = [], [], [], []
        for r in range(args.rounds):
            lat = bare_loop(client, args.n, f"bare:{r}")
            bare_tp.append(args.n / sum(lat))
            bare_all += lat
            lat = tradeguard_loop(client, args.n, f"tg{r}:", Metrics(CollectorRegistry()))
            tg_tp.append(args.n / sum(lat))
            tg_all += lat
    bare, tg = median(bare_tp), median(tg_tp)
    print(f"bus round trip, {args.rounds} rounds x {args.n} signals, one at a time:")
    print(
        f"  bare redis-py : {bare:8.0f}/s  p50 {quantile(bare_all, 0.5) * 1e6:6.0f} us  "
        f"p99 {quantile(bare_all, 0.99) * 1e6:6.0f} us"
    )
    print(
        f"  tradeguard    : {tg:8.0f}/s  p50 {quantile(tg_all, 0.5) * 1e6:6.0f} us  "
        f"p99 {quantile(tg_all, 0.99) * 1e6:6.0f} us"
    )
    print(f"  ratio tradeguard/bare: {tg / bare:.2f}x (target >= 0.70x)")
    return {"bus_ratio": tg / bare, "bus_tp": tg, "bare_tp": bare}


if __name__ == "__main__":
    main()
