"""Alerts on metrics only tradeguard emits fire from what a running process actually exports.

promtool tests prove a rule's logic on hand-written series; they cannot tell whether any process
emits those series. Here a real Prometheus scrapes real tradeguard processes with the shipped
rule files, unchanged, and the alert must reach `firing` (and stay silent where it should).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tradeguard.bus import Signal
from tradeguard.config import InstanceSpec, Settings
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.process import wait_until
from tradeguard.process.services import Prometheus
from tradeguard.rulecheck.paths import find_repo_root

RULES = find_repo_root(Path(__file__).parent) / "deploy" / "prometheus" / "rules"

StartPrometheus = Callable[[list[str], list[str]], Prometheus]


@pytest.fixture
def prometheus_on(tmp_path: Path) -> Iterator[StartPrometheus]:
    """Start a Prometheus scraping ``targets`` (job `engine`, 1 s) with the shipped rule files."""
    started: list[Prometheus] = []

    def start(targets: list[str], rule_files: list[str]) -> Prometheus:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES / name) for name in rule_files],
            "scrape_configs": [
                {
                    "job_name": "engine",
                    "honor_labels": True,  # as deploy/prometheus/prometheus.yml: instance ids
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": targets, "labels": {"service": "engine"}}],
                }
            ],
        }
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        prom = Prometheus(tmp_path / "prometheus", path).start()
        started.append(prom)
        return prom

    yield start
    for prom in started:
        prom.stop()


def alerts(prom: Prometheus, name: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{prom.endpoint.url}/api/v1/alerts", timeout=5).json()
    found: list[dict[str, Any]] = [
        a for a in reply["data"]["alerts"] if a["labels"]["alertname"] == name
    ]
    return found


def gauge(svc: EngineService, name: str) -> float | None:
    """The value of an unlabelled series on the process's /metrics page."""
    for family in text_string_to_metric_families(httpx.get(svc.metrics_url, timeout=5).text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    return None


def snapshot_trades(svc: EngineService, account: str) -> int | None:
    """The trade count of ``account`` in the engine's DuckDB snapshot."""
    assert svc.store is not None
    state = svc.store.states().get(account)
    return None if state is None else state.trades


def tradeguard(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    """Run the tradeguard CLI as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "tradeguard.cli", *args, "--redis-url", redis_url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def instance_of(svc: EngineService) -> str:
    return svc.metrics_url.removeprefix("http://").removesuffix("/metrics")


def test_backend_memory_high_fires_for_a_process_over_its_budget_only(
    settings: Settings, prometheus_on: StartPrometheus
) -> None:
    tight = settings.model_copy(update={"memory_budget_bytes": 1_000_000})  # 1 MB: always over
    with (
        EngineService(tight, EngineOptions(metrics_port=0, persist=False)) as over,
        EngineService(settings, EngineOptions(metrics_port=0, persist=False)) as within,
    ):
        prom = prometheus_on([instance_of(over), instance_of(within)], ["backend.rules.yml"])
        wait_until(
            lambda: any(a["state"] == "firing" for a in alerts(prom, "BackendMemoryHigh")),
            30,
            "BackendMemoryHigh to fire for the engine with a 1 MB budget",
        )
        firing = alerts(prom, "BackendMemoryHigh")
        # Both processes are this one (same resident memory), evaluated together: only the
        # budget differs, so the default 1 GiB budget must keep the other silent.
        assert {a["labels"]["instance"] for a in firing} == {instance_of(over)}
        assert firing[0]["labels"]["service"] == "engine"
        assert gauge(within, "tradeguard_process_memory_budget_bytes") == 1 << 30


def test_the_low_rejection_gate_follows_the_setting(settings: Settings) -> None:
    selective = settings.model_copy(update={"signal_filter_expects_rejections": True})
    for configured, expected in ((settings, 0), (selective, 1)):
        with EngineService(configured, EngineOptions(metrics_port=0, persist=False)) as svc:
            assert gauge(svc, "tradeguard_signal_filter_expects_rejections") == expected


def test_trade_state_inconsistent_fires_when_redis_loses_an_account_and_resync_clears_it(
    settings: Settings, prometheus_on: StartPrometheus
) -> None:
    fast = settings.model_copy(update={"state_check_interval_seconds": 0.2})
    with EngineService(fast, EngineOptions(metrics_port=0)) as svc:
        assert svc.store is not None and svc.persister is not None
        prom = prometheus_on([instance_of(svc)], ["redis_trade_state.rules.yml"])
        for i in range(5):
            svc.signals.publish(
                Signal(account="acct", symbol="EURUSD", action="buy", volume=1, signal_id=f"t{i}")
            )
        wait_until(
            lambda: snapshot_trades(svc, "acct") == 5,
            15,
            "DuckDB's snapshot of the account after 5 fills",
        )
        assert gauge(svc, "tradeguard_state_mismatched_accounts") == 0

        svc.state.redis.delete(svc.keys.state("acct"))  # Redis loses the account's hash
        wait_until(
            lambda: any(a["state"] == "firing" for a in alerts(prom, "TradeStateInconsistent")),
            30,
            "TradeStateInconsistent to fire",
        )
        assert gauge(svc, "tradeguard_state_mismatched_accounts") == 1
        assert snapshot_trades(svc, "acct") == 5  # the durable copy survived

        check = tradeguard("state", "check", redis_url=settings.redis_url)
        assert check.returncode == 1 and "acct: lost (Redis no hash" in check.stdout, check.stdout
        resync = tradeguard("state", "resync", redis_url=settings.redis_url)
        assert resync.returncode == 0, resync.stdout + resync.stderr
        assert "restored from DuckDB: acct" in resync.stdout
        assert "consistent" in resync.stdout
        restored = svc.state.get("acct")
        assert restored is not None and (restored.trades, restored.positions) == (
            5,
            {"EURUSD": 5.0},
        )
        wait_until(
            lambda: gauge(svc, "tradeguard_state_mismatched_accounts") == 0,
            5,
            "the next check to find the copies agreeing",
        )
        wait_until(
            lambda: not alerts(prom, "TradeStateInconsistent"),
            30,
            "TradeStateInconsistent to resolve",
        )


def test_state_commands_say_when_no_engine_answers(settings: Settings) -> None:
    check = tradeguard("state", "check", redis_url=settings.redis_url)
    assert check.returncode == 2 and "no verdict yet" in check.stderr
    resync = tradeguard("state", "resync", "--timeout", "1", redis_url=settings.redis_url)
    assert resync.returncode == 2 and "no engine answered within 1s" in resync.stderr


def test_instance_alerts_fire_from_the_engine_that_supervises_the_instance(
    settings: Settings, prometheus_on: StartPrometheus, tmp_path: Path
) -> None:
    crasher = InstanceSpec(
        id="flaky", command=[sys.executable, "-c", "import sys, time; time.sleep(0.1); sys.exit(3)"]
    )
    supervised = settings.model_copy(
        update={
            "instances": [crasher],
            "instances_dir": tmp_path / "instances",
            "instance_stable_seconds": 0.5,
            "instance_restart_backoff_seconds": 0.2,
        }
    )
    with EngineService(supervised, EngineOptions(metrics_port=0, persist=False)) as svc:
        prom = prometheus_on([instance_of(svc)], ["instance.rules.yml"])
        wait_until(
            lambda: any(
                a["state"] == "firing" and a["labels"]["instance"] == "flaky"
                for a in alerts(prom, "InstanceRecoveryFailed")
            ),
            30,
            "InstanceRecoveryFailed to fire for the crash-looping instance",
        )
