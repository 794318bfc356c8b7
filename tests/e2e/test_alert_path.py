"""End to end: the alert path watches itself (its own stack, fast profile).

Kill every Alertmanager, or Prometheus, and the responder's dead man's switch must tell the
operator through the responder's own channels within its timeout (20 s in the fast profile) plus
10 s; freeze the responder while an alert fires, and the alert must still reach it once it runs
again while ResponderDown goes around it to the bypass sink; kill one Alertmanager peer, and
every alert is still delivered, once.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tradeguard.chaos.runner import BypassView, finish_resolution, run_scenario
from tradeguard.chaos.scenarios import SCENARIOS
from tradeguard.process import wait_until

from .conftest import LiveStack

pytestmark = pytest.mark.e2e

SWITCH_SECONDS = 20.0  # the fast profile's dead man's switch
BUDGET = SWITCH_SECONDS + 10.0  # the bound: the switch's time plus 10 s


def notifications(live: LiveStack) -> list[dict[str, Any]]:
    path: Path = live.layout.run_dir / "responder" / "notifications.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def alert_path(live: LiveStack) -> dict[str, Any]:
    health = httpx.get(f"{live.layout.responder_url}/healthz", timeout=3).json()
    state: dict[str, Any] = health["alert_path"]
    return state


def wait_path_ok(live: LiveStack, timeout: float = 60) -> None:
    wait_until(lambda: alert_path(live)["state"] == "ok", timeout, "Watchdog to arrive again")


def probe(name: str, fingerprint_hint: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "labels": {
                "alertname": name,
                "severity": "warning",
                "component": "e2e",
                "instance": fingerprint_hint,
            },
            "annotations": {"summary": f"{name} probe"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=10)).isoformat(),
        }
    ]


def post_to_peers(live: LiveStack, alerts: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Send ``alerts`` to every Alertmanager peer as Prometheus would: the peers that took them,
    and for the others why not."""
    took: list[str] = []
    refusals: list[str] = []
    for url in live.layout.alertmanager_urls.values():
        try:
            reply = httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=3)
        except httpx.HTTPError as exc:
            refusals.append(f"{url}: {exc}")
            continue
        if reply.status_code == 200:
            took.append(url)
        else:
            refusals.append(f"{url}: {reply.status_code} {reply.text}")
    return took, refusals


@pytest.mark.parametrize("scenario", ["alertmanager-down", "prometheus-down"])
def test_a_dead_link_is_reported_by_the_responder_itself(
    live_stack: LiveStack, scenario: str
) -> None:
    wait_path_ok(live_stack)
    before = len(notifications(live_stack))
    result = run_scenario(
        live_stack.stack,
        SCENARIOS[scenario],
        live_stack.view,
        fire_timeout=BUDGET + 20,
        wait_resolved=False,
    )
    assert result.caught, result.error
    assert result.fired_after is not None and result.fired_after <= BUDGET, (
        f"AlertPathBroken {result.fired_after:.1f}s after {scenario}; budget {BUDGET:.0f}s"
    )
    broken = [n for n in notifications(live_stack)[before:] if n["alertname"] == "AlertPathBroken"]
    assert [n["status"] for n in broken] == ["firing"], "the operator is told, once"
    assert broken[0]["severity"] == "critical"
    finish_resolution(result, live_stack.view, 90)
    assert result.resolved_after is not None, "no resolved notice once the path works again"
    wait_path_ok(live_stack)
    live_stack.results[scenario] = result


def test_a_frozen_responder_gets_the_alert_late_and_its_own_alert_goes_around_it(
    live_stack: LiveStack,
) -> None:
    wait_path_ok(live_stack)
    before = len(notifications(live_stack))
    scenario = SCENARIOS["responder-down"]
    responder = live_stack.stack.child("responder")
    fired: dict[str, float] = {}

    def fire_probe_while_frozen(_: object) -> None:
        scenario.inject(live_stack.stack)
        assert responder.paused
        took, refusals = post_to_peers(live_stack, probe("FrozenResponderProbe", "probe:1"))
        assert took, refusals
        fired["at"] = time.time()

    frozen = type(scenario)(
        scenario.name,
        scenario.description,
        scenario.alert,
        fire_probe_while_frozen,
        scenario.undo,
        observed_at=scenario.observed_at,
    )
    result = run_scenario(
        live_stack.stack, frozen, live_stack.view, fire_timeout=60, wait_resolved=False
    )
    assert result.caught, result.error
    # ResponderDown is `for: 30s`; a frozen target fails its 1 s scrapes at once.
    assert result.fired_after is not None and result.fired_after <= 30 + 10
    # Alertmanager kept retrying the probe: it reached the responder once it ran again.
    wait_until(
        lambda: any(
            e["status"] == "firing" for e in live_stack.view.events("FrozenResponderProbe")
        ),
        30,
        "the probe to reach the responder after SIGCONT",
    )
    sink = BypassView(live_stack.layout.bypass_sink_file)
    assert not sink.events("FrozenResponderProbe"), "only the responder's own alerts go around"
    finish_resolution(result, sink, 90)
    assert result.resolved_after is not None, "ResponderDown resolved at the bypass sink"
    # The responder missed Watchdog while it was frozen itself: that is ResponderDown's to
    # report (around it), not a broken path for the responder to raise when it runs again.
    raised = [n["alertname"] for n in notifications(live_stack)[before:]]
    assert "AlertPathBroken" not in raised
    live_stack.results["responder-down"] = result


def test_with_one_alertmanager_peer_dead_every_alert_is_delivered_once(
    live_stack: LiveStack,
) -> None:
    wait_path_ok(live_stack)
    peers = [name for name in live_stack.stack.children if name.startswith("alertmanager")]
    assert len(peers) == 2
    live_stack.stack.kill_child(peers[1])
    try:
        names = [f"PeerDownProbe{i}" for i in range(3)]
        for i, name in enumerate(names):
            took, refusals = post_to_peers(live_stack, probe(name, f"probe:{i}"))
            assert len(took) == 1, refusals
        for name in names:
            wait_until(
                lambda name=name: live_stack.view.events(name),  # type: ignore[misc]
                30,
                f"{name} to reach the responder through the surviving peer",
            )
        # The responder notifies each alert occurrence once, however often it is delivered.
        wait_until(
            lambda: (
                all(
                    sum(n["alertname"] == name for n in notifications(live_stack)) >= 1
                    for name in names
                )
                and httpx.get(f"{live_stack.layout.responder_url}/healthz", timeout=3).json()[
                    "outbox"
                ]["pending"]
                == 0
            ),
            15,
            "a notification per probe, and nothing left to send",
        )
        counts = {
            name: sum(n["alertname"] == name for n in notifications(live_stack)) for name in names
        }
        assert counts == {name: 1 for name in names}
        for name in names:
            assert [e["status"] for e in live_stack.view.events(name)] == ["firing"]
    finally:
        live_stack.stack.start_child(peers[1])
    wait_path_ok(live_stack)
