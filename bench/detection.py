"""Detection latency per scenario, and the stack's start-up time.

Detection latency = time from fault injection to the responder storing the firing alert, minus
the rule's `for` (what the pipeline adds: scrape, evaluation, Alertmanager, webhook), with 1 s
scrape and evaluation. Target: <= 3 s. Each run waits for the resolved notice before the next
injection so every run sees a fresh alert. The baseline for start-up is a bare redis-server
started in the same session.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from tradeguard.chaos.runner import ResponderView, run_scenario
from tradeguard.chaos.scenarios import SCENARIOS
from tradeguard.process.services import RedisServer
from tradeguard.stack.layout import StackLayout
from tradeguard.stack.render import duration_seconds, ensure_token
from tradeguard.stack.stack import Stack

DEFAULT = [
    "redis-down",
    "duckdb-disk-low",
    "signal-backlog",
    "execution-failures",
    "broker-disconnect",
]


def rendered_for(layout: StackLayout, alert: str) -> float:
    for path in (layout.run_dir / "prometheus" / "rules").glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alert:
                    return duration_seconds(str(rule.get("for", "0s")))
    raise KeyError(alert)


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(DEFAULT))
    args = parser.parse_args([]) if __name__ != "__main__" else parser.parse_args()
    names = [n for n in args.scenarios.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="tradeguard-bench-") as tmp:
        t0 = time.monotonic()
        redis = RedisServer(Path(tmp) / "baseline").start()
        baseline = time.monotonic() - t0
        redis.stop()
        layout = StackLayout.allocate(Path(tmp) / "stack", profile="fast", workload_rate=20)
        stack = Stack(layout)
        t0 = time.monotonic()
        stack.start()
        startup = time.monotonic() - t0
        figures: dict[str, list[float]] = {}
        try:
            view = ResponderView(layout.responder_url, ensure_token(layout))
            for name in names:
                scenario = SCENARIOS[name]
                hold = rendered_for(layout, scenario.alert)
                for run in range(args.runs):
                    result = run_scenario(stack, scenario, view, resolve_timeout=240)
                    if result.fired_after is None:
                        print(f"  {name} run {run + 1}: not caught ({result.error})")
                        continue
                    figures.setdefault(name, []).append(result.fired_after - hold)
        finally:
            stack.stop()
    print(
        f"stack start-up: {startup:.1f}s for {len(stack.children)} processes "
        f"(a bare redis-server: {baseline:.2f}s, ratio {startup / baseline:.0f}x)"
    )
    print(
        f"detection latency = fault -> responder receipt - rule `for` ({args.runs} runs each; "
        "target <= 3 s):"
    )
    worst = 0.0
    for name, values in figures.items():
        worst = max(worst, max(values))
        print(
            f"  {name:20s} {SCENARIOS[name].alert:24s} p50 {statistics.median(values):5.2f}s"
            f"  max {max(values):5.2f}s"
        )
    return {"startup_s": startup, "detection_max_s": worst}


if __name__ == "__main__":
    main()
