"""The foundation demo: a local redis-server, one engine, a signal generator and a live view.

Everything runs on loopback under one run directory and stops cleanly on Ctrl-C or after the
requested duration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from tradeguard.config import load_settings
from tradeguard.engine.generator import GeneratorConfig, SignalGenerator
from tradeguard.engine.paper import BrokerKnobs
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.net import LOOPBACK
from tradeguard.process.ports import free_port, port_open
from tradeguard.process.services import RedisServer


@dataclass
class DemoOptions:
    duration: float = 30.0
    rate: float = 100.0
    run_dir: Path = Path("run/demo")
    metrics_port: int = 9464
    seed: int = 7


def _view(
    svc: EngineService, gen: SignalGenerator, elapsed: float, rate: float, dead: int
) -> Group:
    stats = svc.engine.stats
    p50, p99 = stats.quantiles()
    table = Table(title="tradeguard engine", show_header=False, min_width=56)
    table.add_column(style="bold cyan")
    table.add_column(justify="right")
    table.add_row("elapsed", f"{elapsed:5.1f} s")
    table.add_row("signals/s (last second)", f"{rate:7.1f}")
    table.add_row("published", str(len(gen.report.published)))
    table.add_row("signal→result p50 / p99", f"{p50 * 1000:6.1f} ms / {p99 * 1000:6.1f} ms")
    for status in ("filled", "rejected", "failed"):
        table.add_row(f"results {status}", str(stats.by_status.get(status, 0)))
    table.add_row(
        "dropped (by reason)",
        ", ".join(f"{k}={v}" for k, v in sorted(stats.dropped.items())) or "0",
    )
    table.add_row("dead-lettered (stream length)", str(dead))
    persisted = svc.persister.persisted if svc.persister else 0
    table.add_row("persisted to DuckDB", str(persisted))
    return Group(table, Panel(f"metrics: [link]{svc.metrics_url}[/link]", expand=False))


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    console = console or Console()
    run_dir = options.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    port = options.metrics_port
    if port_open(LOOPBACK, port):
        port = free_port()
    console.print(f"[bold]tradeguard demo[/] — run directory {run_dir}")
    console.print("starting redis-server …")
    redis = RedisServer(run_dir / "redis").start()
    svc: EngineService | None = None
    gen: SignalGenerator | None = None
    try:
        settings = load_settings(
            redis_url=redis.url, duckdb_path=run_dir / "demo.duckdb", metrics_port=port
        )
        knobs = BrokerKnobs(latency=0.002, failure_rate=0.01, reject_rate=0.01, slippage_max=0.002)
        svc = EngineService(
            settings, EngineOptions(consumer="demo-engine", seed=options.seed, knobs=knobs)
        ).start()
        gen = SignalGenerator(
            svc.signals,
            GeneratorConfig(
                rate=options.rate,
                invalid_share=0.02,
                oversized_volume_share=0.02,
                seed=options.seed,
            ),
        )
        gen.start()
        console.print(
            f"redis {redis.url}  ·  metrics {svc.metrics_url}  ·  "
            f"{options.rate:.0f} signals/s for {options.duration:.0f}s (Ctrl-C stops)"
        )
        start = time.monotonic()
        last_count, last_t, rate = 0, start, 0.0
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while (elapsed := time.monotonic() - start) < options.duration:
                now = time.monotonic()
                if now - last_t >= 1.0:
                    count = svc.engine.stats.processed
                    rate = (count - last_count) / (now - last_t)
                    last_count, last_t = count, now
                dead = int(svc.signals.redis.xlen(svc.keys.signals_dead))
                live.update(_view(svc, gen, elapsed, rate, dead))
                time.sleep(0.25)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: stopping")
    finally:
        if gen is not None:
            gen.stop()
        if svc is not None:
            svc.stop()
        redis.stop()
    if svc is not None:
        stats = svc.engine.stats
        console.print(
            f"done: {stats.processed} signals handled "
            f"({dict(stats.by_status)}), dropped {dict(stats.dropped)}; "
            "all processes stopped."
        )
    return 0
