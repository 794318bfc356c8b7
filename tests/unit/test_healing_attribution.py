"""Which action healed a scenario's alert, read from the responder's stored events and audit.

The responder's cool-down is per action and target across alerts: when two alerts of one fault
ask for the same action (InstanceFailed and InstanceRecoveryFailed both ask restart_instance),
whichever asks first after the cool-down runs it for both, possibly before this alert's firing
notice reached the responder. The runner must count that as the healing action, and must not
count one done before the fault went in or after the alert resolved, or none at all.
"""

from __future__ import annotations

from typing import Any

from tradeguard.chaos.runner import ScenarioResult, wait_healed

T0 = 1_800_000_000.0
ALERT = "InstanceRecoveryFailed"


class StoredView:
    """The two reads the runner makes of a responder, over fixed records."""

    def __init__(self, events: list[dict[str, Any]], actions: list[dict[str, Any]]) -> None:
        self._events = events
        self._actions = actions

    def events(self, alertname: str) -> list[dict[str, Any]]:
        return [e for e in self._events if e["alertname"] == alertname]

    def actions(self, alertname: str | None = None) -> list[dict[str, Any]]:
        chosen = [a for a in self._actions if alertname in (None, a["alertname"])]
        return sorted(chosen, key=lambda a: a["decided_at"], reverse=True)


def event(status: str, at: float) -> dict[str, Any]:
    return {"alertname": ALERT, "status": status, "received_at": at}


def restart(alertname: str, at: float, outcome: str = "done") -> dict[str, Any]:
    return {
        "alertname": alertname,
        "action": "restart_instance",
        "outcome": outcome,
        "decided_at": at,
    }


def healed(actions: list[dict[str, Any]]) -> ScenarioResult:
    result = ScenarioResult("instance-crash", ALERT, injected_at=T0, fired_after=10.0)
    view = StoredView([event("firing", T0 + 10), event("resolved", T0 + 30)], actions)
    wait_healed(result, "restart_instance", view, timeout=0)
    return result


def test_the_alerts_own_action_heals_it() -> None:
    result = healed([restart(ALERT, T0 + 25)])
    assert result.healed_by == "restart_instance" and result.healed_for is None
    assert result.healed_after == 20.0 and not result.error


def test_the_same_action_asked_by_another_alert_of_the_fault_heals_it() -> None:
    result = healed([restart("InstanceFailed", T0 + 2), restart("InstanceFailed", T0 + 25)])
    assert result.healed_by == "restart_instance"
    assert result.healed_for == "InstanceFailed" and not result.error


def test_one_decided_before_the_firing_notice_arrived_heals_it_too() -> None:
    """The alert path is slower than the responder's decision on the other alert."""
    result = healed([restart("InstanceFailed", T0 + 8)])
    assert result.healed_by == "restart_instance" and result.healed_for == "InstanceFailed"


def test_an_action_before_the_fault_or_after_the_alert_resolved_did_not_heal_it() -> None:
    result = healed(
        [
            restart("InstanceFailed", T0 - 5),
            restart("InstanceFailed", T0 + 40),
            restart(ALERT, T0 + 25, outcome="failed"),
        ]
    )
    assert result.healed_by is None
    assert result.error == f"{ALERT} resolved, but not by restart_instance (no such action done)"
