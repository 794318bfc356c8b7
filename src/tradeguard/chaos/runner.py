"""Runs scenarios against a stack and measures them from the responder's point of view.

For each scenario: note the time, inject, wait until the responder has stored a *firing*
event of the expected alert that started after the injection, undo, wait for its *resolved*
event. The figures are what the demo's table and the detection-latency benchmark report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tradeguard.chaos.scenarios import Scenario
from tradeguard.responder.client import ResponderClient
from tradeguard.responder.remediation import EXHAUSTED_ALERT
from tradeguard.stack.stack import Stack
from tradeguard.stack.status import STACK_RESPONDER_HINTS

_T = TypeVar("_T")

HISTORY_LIMIT = 500  # events of one alert per read: far more than a scenario raises


@dataclass
class ScenarioResult:
    name: str
    alert: str
    injected_at: float  # when the injection began (events before it are not this run's)
    fired_after: float | None = None  # seconds from the fault being in place to the notice
    # Seconds the injection itself took (a burst of signals, a container stop): the alert's
    # clock starts when the fault is in place, not while it is still being put there.
    injection_took: float = 0.0
    undone_at: float | None = None
    resolved_after: float | None = None  # seconds from undo to the resolved notice
    notifications: int = 0
    error: str = ""
    # Self-healing scenarios: the action that healed the fault (done in the responder's audit)
    # and seconds from the firing notice to the resolved one, with nobody undoing the fault.
    healed_by: str | None = None
    healed_after: float | None = None
    # The alert whose remediation did it, when another alert of the same fault asked first
    # (a restart for InstanceFailed that also ends InstanceRecoveryFailed); None for its own.
    healed_for: str | None = None
    # Contained scenarios: the action done before the fault was undone (its undo follows the
    # resolution).
    contained_by: str | None = None
    # Scenarios no action can help: the action remediation gave up on (RemediationExhausted),
    # the seconds from the firing notice to that notice, and how many attempts it made.
    gave_up_on: str | None = None
    gave_up_after: float | None = None
    attempts: int = 0

    @property
    def caught(self) -> bool:
        return self.fired_after is not None

    @property
    def fired_at(self) -> float:
        """When the firing notice arrived (only for a caught scenario)."""
        assert self.fired_after is not None
        return self.injected_at + self.injection_took + self.fired_after


class ResponderView:
    """The responder's stored alert events as an :class:`AlertView`: a thin adapter over the
    stack's :class:`~tradeguard.responder.client.ResponderClient`, so a failed read raises
    ResponderUnavailable worded as everywhere else (a TradeguardError the CLI prints in one
    line), not a bare httpx error."""

    def __init__(self, base_url: str, token: str, token_file: Path | None = None) -> None:
        self.client = ResponderClient(
            base_url, token, token_file=token_file, timeout=3, hints=STACK_RESPONDER_HINTS
        )

    def events(self, alertname: str) -> list[dict[str, Any]]:
        return self.client.history(alertname=alertname, limit=HISTORY_LIMIT)

    def actions(self, alertname: str | None = None) -> list[dict[str, Any]]:
        """The remediation attempts the responder recorded for ``alertname`` (None: for any
        alert), newest first."""
        return self.client.actions(alertname=alertname, limit=HISTORY_LIMIT)

    def close(self) -> None:
        self.client.close()


class BypassView:
    """Reads the alerts that went around the responder from the bypass sink's JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self, alertname: str) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        events = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line being written
            if isinstance(record, dict) and record.get("alertname") == alertname:
                events.append(record)
        return events


class AlertView(Protocol):
    def events(self, alertname: str) -> list[dict[str, Any]]: ...


def view_for(stack: Stack, scenario: Scenario, responder: AlertView) -> AlertView:
    """Where ``scenario``'s alert shows up."""
    if scenario.observed_at == "bypass":
        return BypassView(stack.layout.bypass_sink_file)
    return responder


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
    view: AlertView,
    fire_timeout: float = 150.0,
    resolve_timeout: float = 400.0,
    on_progress: Callable[[str], None] | None = None,
    wait_resolved: bool = True,
    ready_timeout: float = 120.0,
    heal_timeout: float = 120.0,
) -> ScenarioResult:
    """Inject ``scenario``, wait for its alert, then undo the fault and wait for the resolved
    notice. A self-healing scenario (``heals_with``) is not undone when its alert fires: the
    runner waits (up to ``heal_timeout``) for the responder's remediation to resolve it, and
    only then tidies up; one that does not heal in time is undone as any other."""
    say = on_progress or (lambda _m: None)
    view = view_for(stack, scenario, view)
    if scenario.ready is not None:
        ready = scenario.ready
        _poll(lambda: ready(stack) or None, time.time() + ready_timeout, 0.5)
    injected = time.time()
    result = ScenarioResult(scenario.name, scenario.alert, injected)
    scenario.inject(stack)
    in_place = time.time()
    result.injection_took = in_place - injected
    say(f"{scenario.name}: injected, waiting for {scenario.alert}")
    try:
        fired = _poll(
            lambda: _first(view.events(scenario.alert), "firing", injected),
            injected + fire_timeout,
            0.2,
        )
        if fired is not None:
            result.fired_after = max(0.0, _ts(fired["received_at"]) - in_place)
        else:
            where = "the bypass sink" if scenario.observed_at == "bypass" else "the responder"
            result.error = f"{scenario.alert} did not reach {where} in {fire_timeout:.0f}s"
        if scenario.heals_with is not None and result.caught:
            say(f"{scenario.name}: fired; nobody undoes it, waiting for {scenario.heals_with}")
            wait_healed(result, scenario.heals_with, view, heal_timeout)
        elif scenario.contained_by is not None and result.caught:
            say(f"{scenario.name}: fired; waiting for {scenario.contained_by}")
            wait_contained(result, scenario.contained_by, view, heal_timeout)
        elif scenario.exhausts is not None and result.caught:
            say(f"{scenario.name}: fired; waiting for remediation to give up")
            wait_exhausted(result, scenario.exhausts, view, heal_timeout)
    finally:
        scenario.undo(stack)  # for a healed scenario: tidying up what the injection left
        result.undone_at = time.time()
    say(
        f"{scenario.name}: undone"
        + (f" after firing in {result.fired_after:.1f}s" if result.fired_after is not None else "")
    )
    if result.healed_after is not None:
        count_notifications(result, view)  # resolved already, by the remediation
    elif wait_resolved and result.caught:
        finish_resolution(result, view, resolve_timeout)
    return result


def _poll(find: Callable[[], _T | None], until: float, interval: float = 0.5) -> _T | None:
    """What ``find`` first returns other than None, looking every ``interval`` seconds until
    the wall-clock time ``until``; None if it never did."""
    while True:
        found = find()
        if found is not None or time.time() >= until:
            return found
        time.sleep(interval)


def wait_healed(result: ScenarioResult, action: str, view: AlertView, timeout: float) -> None:
    """Until the alert resolves with the fault still in place (bounded): then the action the
    responder's audit shows done for it is what healed it."""
    fired_at = result.fired_at
    resolved = _poll(
        lambda: _first(view.events(result.alert), "resolved", fired_at), time.time() + timeout
    )
    if resolved is None:
        result.error = f"{result.alert} did not heal by itself in {timeout:.0f}s"
        return
    resolved_at = _ts(resolved["received_at"])
    result.healed_after = resolved_at - fired_at
    if done_actions(view, result.alert, action, result.injected_at):
        result.healed_by = action
        return
    # The guard's cool-down is per action and target across alerts, so when two alerts of one
    # fault ask for the same action, whichever asks first runs it for both; and the alert path
    # may deliver this alert's firing notice after that action was decided (a restart for
    # InstanceFailed that ends InstanceRecoveryFailed before the responder heard of it). The
    # newest one done since the fault went in, and before the alert resolved, healed it.
    others = [
        a
        for a in done_actions(view, None, action, result.injected_at)
        if _ts(a.get("decided_at")) <= resolved_at
    ]
    if others:
        result.healed_by = action
        result.healed_for = str(others[0].get("alertname"))
    else:
        result.error = f"{result.alert} resolved, but not by {action} (no such action done)"


def done_actions(
    view: AlertView, alert: str | None, action: str, since: float
) -> list[dict[str, Any]]:
    """The audit's attempts of ``action`` for ``alert`` (None: for any alert) decided since
    ``since`` that ended ``done``, newest first (none for a view without an audit, such as
    the bypass sink)."""
    read_actions = getattr(view, "actions", None)
    attempts = read_actions(alert) if callable(read_actions) else []
    return [
        a
        for a in attempts
        if a.get("action") == action
        and a.get("outcome") == "done"
        and _ts(a.get("decided_at")) >= since
    ]


def wait_contained(result: ScenarioResult, action: str, view: AlertView, timeout: float) -> None:
    """Until the responder's audit shows ``action`` done for the alert (bounded)."""
    if _poll(
        lambda: done_actions(view, result.alert, action, result.injected_at) or None,
        time.time() + timeout,
    ):
        result.contained_by = action
    else:
        result.error = f"{action} was not done for {result.alert} within {timeout:.0f}s"


def wait_exhausted(result: ScenarioResult, action: str, view: AlertView, timeout: float) -> None:
    """Until the responder raises RemediationExhausted for the alert and ``action`` (bounded),
    with the fault still in place; then how many attempts of it the audit shows."""
    fired_at = result.fired_at

    def notice() -> dict[str, Any] | None:
        return next(
            (
                e
                for e in view.events(EXHAUSTED_ALERT)
                if e.get("status") == "firing"
                and _ts(e.get("received_at")) >= result.injected_at
                and e.get("labels", {}).get("for_alert") == result.alert
                and e.get("labels", {}).get("action") == action
            ),
            None,
        )

    found = _poll(notice, time.time() + timeout)
    if found is None:
        result.error = f"remediation did not give up on {action} within {timeout:.0f}s"
        return
    result.gave_up_on = action
    result.gave_up_after = _ts(found["received_at"]) - fired_at
    read_actions = getattr(view, "actions", None)
    rows = read_actions(result.alert) if callable(read_actions) else []
    result.attempts = sum(
        1
        for a in rows
        if a.get("action") == action
        and int(a.get("attempt", 0)) > 0
        and a.get("outcome") not in ("exhausted", "skipped", "dry_run")
        and _ts(a.get("decided_at")) >= result.injected_at
    )


def finish_resolution(result: ScenarioResult, view: AlertView, timeout: float) -> None:
    """Wait (bounded) for the resolved notice of a caught scenario and count notifications."""
    undone_at = result.undone_at
    assert undone_at is not None
    resolved = _poll(
        lambda: _first(view.events(result.alert), "resolved", undone_at), time.time() + timeout
    )
    if resolved is not None:
        result.resolved_after = _ts(resolved["received_at"]) - undone_at
    count_notifications(result, view)


def count_notifications(result: ScenarioResult, view: AlertView) -> None:
    result.notifications = sum(
        1 for e in view.events(result.alert) if _ts(e.get("received_at")) >= result.injected_at
    )
