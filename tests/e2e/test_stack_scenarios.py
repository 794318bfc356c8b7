"""End to end: the stack, five fault scenarios, the alert path, and the signal audit.

Each scenario's alert must reach the responder within its rule's `for` + 5 s of the fault
(the fast profile leaves every rule whose `for` is 30 s or less exactly as shipped), the
resolved notice must follow once the fault is undone, and no signal may be lost or executed
twice meanwhile.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tradeguard.chaos.audit import RunRecords, audit, drain
from tradeguard.chaos.runner import ScenarioResult, finish_resolution, run_scenario
from tradeguard.chaos.scenarios import SCENARIOS, burst_ids
from tradeguard.process import wait_until
from tradeguard.stack.render import duration_seconds
from tradeguard.stack.status import read_stack_status

from .conftest import LiveStack

pytestmark = pytest.mark.e2e

# scenario -> the `for` of its alert as shipped (checked against the rule file below)
CASES = {
    "duckdb-disk-low": "10s",
    "redis-down": "5s",
    "signal-backlog": "10s",
    "execution-failures": "0s",
    "broker-disconnect": "0s",
}
# Scrape (1 s) + evaluation (1 s) + Alertmanager group_wait 0 s: the budget is `for` + 5 s.
SLACK = 5.0


def rule_for(alert: str) -> str:
    import glob

    import yaml

    for path in glob.glob("deploy/prometheus/rules/*.rules.yml"):
        for group in yaml.safe_load(Path(path).read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alert:
                    return str(rule.get("for", "0s"))
    raise AssertionError(f"no rule {alert}")


def test_check_passes_on_a_healthy_stack(live_stack: LiveStack) -> None:
    wait_until(
        lambda: all(t["health"] == "up" for t in read_stack_status(live_stack.layout).targets),
        30,
        "every scrape target to be up",
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradeguard.cli",
            "check",
            "--prometheus-url",
            live_stack.layout.prometheus_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "every rule healthy" in out.stdout


def test_scenarios_fire_in_time_resolve_and_lose_nothing(live_stack: LiveStack) -> None:
    results: list[ScenarioResult] = []
    resolvers = []
    for name, shipped_for in CASES.items():
        scenario = SCENARIOS[name]
        assert rule_for(scenario.alert) in (shipped_for, shipped_for.removesuffix("0s") or "0s")
        budget = duration_seconds(shipped_for) + SLACK
        result = run_scenario(
            live_stack.stack,
            scenario,
            live_stack.view,
            fire_timeout=budget + 30,
            wait_resolved=False,
        )
        results.append(result)
        assert result.caught, result.error
        assert result.fired_after is not None and result.fired_after <= budget, (
            f"{scenario.alert} reached the responder {result.fired_after:.1f}s after the "
            f"fault; budget {budget:.0f}s"
        )
        t = threading.Thread(target=finish_resolution, args=(result, live_stack.view, 180))
        t.start()
        resolvers.append(t)
    for t in resolvers:
        t.join()
    unresolved = [r.name for r in results if r.resolved_after is None]
    assert not unresolved, f"no resolved notice for {unresolved}"
    report = live_stack.generator.stop()  # waits for the publish in flight
    published = report.published + burst_ids(live_stack.stack)
    with RunRecords.of(live_stack.layout) as records:
        drain(records, published, timeout=90)
        final = audit(records, published, report.indeterminate)
    assert final.published > 500
    assert final.lost == set(), f"{len(final.lost)} acknowledged signals never handled"
    assert final.duplicated == set(), f"{len(final.duplicated)} signals sent to the broker twice"
    assert final.unexpected == set()
    live_stack.results["scenarios"] = results


def test_alertmanager_crash_is_reported_by_status_and_by_an_alert(
    live_stack: LiveStack,
) -> None:
    live_stack.stack.kill_child("alertmanager-1")
    try:
        assert read_stack_status(live_stack.layout).children["alertmanager-1"] is False
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tradeguard.cli",
                "status",
                "--run-dir",
                str(live_stack.layout.run_dir),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 1 and "exited" in out.stdout

        def alert_firing() -> bool:
            alerts = httpx.get(f"{live_stack.layout.prometheus_url}/api/v1/alerts").json()
            return any(
                a["labels"].get("alertname") == "DockerServiceDown"
                and a["labels"].get("job") == "alertmanager"
                and a["state"] == "firing"
                for a in alerts["data"]["alerts"]
            )

        wait_until(alert_firing, 40, "DockerServiceDown for the dead Alertmanager")
    finally:
        live_stack.stack.start_child("alertmanager-1")
    wait_until(
        lambda: read_stack_status(live_stack.layout).children.get("alertmanager-1", True),
        10,
        "Alertmanager to run again",
    )


def test_alerts_test_command_round_trip(live_stack: LiveStack) -> None:
    t0 = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradeguard.cli",
            "alerts",
            "test",
            "--run-dir",
            str(live_stack.layout.run_dir),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "received" in out.stdout
    assert time.monotonic() - t0 < 60
