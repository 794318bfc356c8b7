"""An engine's /metrics: served, valid for promtool, with live stream figures."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import httpx

from tradeguard.bus import Signal
from tradeguard.config import Settings
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.process import wait_until


def test_metrics_page_is_valid_and_reports_streams(
    settings: Settings, require_binary: Callable[[str], str]
) -> None:
    """The page is checked by promtool, which is required: without it the test fails."""
    promtool = require_binary("promtool")
    with EngineService(settings, EngineOptions(metrics_port=0)) as svc:
        for i in range(5):
            svc.signals.publish(
                Signal(account="a", symbol="S", action="sell", volume=1, signal_id=f"m{i}")
            )
        wait_until(lambda: svc.engine.stats.processed == 5, 10, "5 signals processed")
        body = httpx.get(svc.metrics_url).text
        assert 'tradeguard_signals_processed_total{action="sell",status="filled"} 5.0' in body
        assert 'tradeguard_stream_pending{stream="signals"} 0.0' in body
        assert "tradeguard_duckdb_file_size_bytes" in body
        assert "process_resident_memory_bytes" in body
        assert httpx.get(svc.metrics_url.replace("/metrics", "/nope")).status_code == 404
    check = subprocess.run(
        [promtool, "check", "metrics"],
        input=body.encode(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def halt_loops(svc: EngineService) -> None:
    """Stop the engine's threads but keep its registry and clients: a frozen engine."""
    svc.stop_event.set()
    wait_until(lambda: not any(t.is_alive() for t in svc._threads), 5, "engine loops to stop")


def test_oldest_pending_age_grows_while_nobody_acks(settings: Settings) -> None:
    with EngineService(settings, EngineOptions(metrics_port=0, persist=False)) as svc:
        halt_loops(svc)
        svc.signals.publish(Signal(account="a", symbol="S", action="buy", volume=1))
        svc.signals.read("idle-consumer", block_ms=None)

        def age() -> float:
            v = svc.registry.get_sample_value(
                "tradeguard_stream_oldest_pending_age_seconds", {"stream": "signals"}
            )
            return v or 0.0

        wait_until(lambda: age() > 0.2, 5, "the pending entry to age")
        assert (
            svc.registry.get_sample_value("tradeguard_stream_pending", {"stream": "signals"}) == 1
        )


def test_stream_lag_counts_undelivered(settings: Settings) -> None:
    with EngineService(settings, EngineOptions(metrics_port=0, persist=False)) as svc:
        halt_loops(svc)
        svc.signals.ensure_group()
        for i in range(3):
            svc.signals.publish(
                Signal(account="a", symbol="S", action="buy", volume=1, signal_id=f"lag{i}")
            )
        assert svc.registry.get_sample_value("tradeguard_stream_lag", {"stream": "signals"}) == 3
