"""Cost of instrumentation: the same bus round trip with metrics on and off, same run.

Rounds alternate on and off; the figure is the median slowdown (target <= 10 %).
"""

from __future__ import annotations

import argparse

from prometheus_client import CollectorRegistry

from bench.bus_roundtrip import tradeguard_loop
from bench.common import median, redis_server
from tradeguard.bus.connection import make_client
from tradeguard.metrics.catalog import Metrics


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args([]) if __name__ != "__main__" else parser.parse_args()
    with redis_server() as server:
        client = make_client(server.url)
        on, off = [], []
        for r in range(args.rounds):
            off.append(args.n / sum(tradeguard_loop(client, args.n, f"off{r}:", None)))
            on.append(
                args.n
                / sum(tradeguard_loop(client, args.n, f"on{r}:", Metrics(CollectorRegistry())))
            )
    overhead = 1 - median(on) / median(off)
    print(f"instrumentation, {args.rounds} rounds x {args.n} round trips:")
    print(f"  metrics off: {median(off):8.0f}/s   metrics on: {median(on):8.0f}/s")
    print(f"  overhead: {overhead * 100:5.1f} % (target <= 10 %)")
    return {"instrumentation_overhead": overhead}


if __name__ == "__main__":
    main()
