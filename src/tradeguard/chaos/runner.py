"""Runs scenarios against a stack and measures them from the responder's point of view.

For each scenario: note the time, inject, wait until the responder has stored a *firing*
event of the expected alert that started after the injection, undo, wait for its *resolved*
event. The figures are what the demo's table and the detection-latency benchmark report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from tradeguard.chaos.scenarios import Scenario
from tradeguard.stack.stack import Stack


@dataclass
class ScenarioResult:
    name: str
    alert: str
    injected_at: float
    fired_after: float | None = None
    undone_at: float | None = None
    resolved_after: float | None = None  # seconds from undo to the resolved notice
    notifications: int = 0
    error: str = ""

    @property
    def caught(self) -> bool:
        return self.fired_after is not None


class ResponderView:
    """Reads alert events from the responder's HTTP API."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base_url, timeout=3, headers={"Authorization": f"Bearer {token}"}
        )

    def events(self, alertname: str) -> list[dict[str, Any]]:
        reply = self.client.get(
            "/api/alerts/history", params={"alertname": alertname, "limit": 500}
        )
        reply.raise_for_status()
        data = reply.json()
        events: list[dict[str, Any]] = data["alerts"]
        return events


def _ts(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _first(events: list[dict[str, Any]], status: str, after: float) -> dict[str, Any] | None:
    """The first event with ``status`` received after ``after`` (unix seconds)."""
    matching = [
        e for e in events if e.get("status") == status and _ts(e.get("received_at")) >= after
    ]
    return min(matching, key=lambda e: _ts(e.get("received_at")), default=None)


def run_scenario(
    stack: Stack,
    scenario: Scenario,
    view: ResponderView,
    fire_timeout: float = 150.0,
    resolve_timeout: float = 400.0,
    on_progress: Callable[[str], None] | None = None,
    wait_resolved: bool = True,
) -> ScenarioResult:
    say = on_progress or (lambda _m: None)
    injected = time.time()
    result = ScenarioResult(scenario.name, scenario.alert, injected)
    scenario.inject(stack)
    say(f"{scenario.name}: injected, waiting for {scenario.alert}")
    try:
        while time.time() - injected < fire_timeout:
            fired = _first(view.events(scenario.alert), "firing", injected)
            if fired is not None:
                result.fired_after = _ts(fired["received_at"]) - injected
                break
            time.sleep(0.2)
        else:
            result.error = f"{scenario.alert} did not reach the responder in {fire_timeout:.0f}s"
    finally:
        scenario.undo(stack)
        result.undone_at = time.time()
    say(
        f"{scenario.name}: undone"
        + (f" after firing in {result.fired_after:.1f}s" if result.fired_after is not None else "")
    )
    if wait_resolved and result.caught:
        finish_resolution(result, view, resolve_timeout)
    return result


def finish_resolution(result: ScenarioResult, view: ResponderView, timeout: float) -> None:
    """Wait (bounded) for the resolved notice of a caught scenario and count notifications."""
    assert result.undone_at is not None
    deadline = time.time() + timeout
    while time.time() < deadline:
        events = view.events(result.alert)
        resolved = _first(events, "resolved", result.undone_at)
        if resolved is not None:
            result.resolved_after = _ts(resolved["received_at"]) - result.undone_at
            break
        time.sleep(0.5)
    result.notifications = sum(
        1 for e in view.events(result.alert) if _ts(e.get("received_at")) >= result.injected_at
    )
