"""Runs every benchmark in turn and prints their figures (no pass/fail: figures for notes).

Run from the repository root: ``python -m bench.run_all [bench.module ...]`` (``make bench``;
``make bench BENCH=bench.metrics_render`` for one).
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = [
    "bench.bus_roundtrip",
    "bench.instrumentation_overhead",
    "bench.metrics_render",
    "bench.detection",
    "bench.fenced_throughput",
    "bench.failover",
    "bench.responder_intake",
]


def main() -> None:
    names = sys.argv[1:] or BENCHMARKS
    for name in names:
        print(f"== {name}")
        # Benchmarks with options parse sys.argv; the names given here are not theirs.
        saved, sys.argv = sys.argv, [name]
        try:
            importlib.import_module(name).main()
        finally:
            sys.argv = saved
        print()


if __name__ == "__main__":
    main()
