"""End to end: faults that heal without a human, on the real stack.

The fault stays in place: nobody undoes it. Prometheus fires the alert, Alertmanager routes it,
the responder's remediation issues the rule's action, an engine carries it out, and the alert
resolves. The same fault with the action turned off stays firing for longer than it took to
heal, until a person undoes it. Every step is read from the responder's audit and metrics.
"""

from __future__ import annotations

from typing import Any

import pytest

from tradeguard.bus.commands import turn_off, turn_on
from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.chaos.runner import run_scenario
from tradeguard.chaos.scenarios import SCENARIOS, leader_of
from tradeguard.config import Layer
from tradeguard.process import wait_until

from .conftest import LiveStack

pytestmark = pytest.mark.e2e

HEAL_TIMEOUT = 120.0  # the alert's 1 m failure window plus the path's few seconds, twice over


def remediation_counter(live: LiveStack, action: str, outcome: str) -> float:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{live.layout.responder_url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "tradeguard_remediation_actions_total"
                and sample.labels.get("action") == action
                and sample.labels.get("outcome") == outcome
            ):
                return float(sample.value)
    return 0.0


def attempts(live: LiveStack, alert: str, action: str, outcome: str) -> list[dict[str, Any]]:
    """The responder's audit rows of ``action`` for ``alert`` that ended ``outcome``."""
    return [
        a for a in live.view.actions(alert) if a["action"] == action and a["outcome"] == outcome
    ]


def test_a_dead_broker_session_heals_by_itself(live_stack: LiveStack) -> None:
    scenario = SCENARIOS["broker-session-dead"]
    assert scenario.heals_with == "reconnect_broker"
    before = remediation_counter(live_stack, "reconnect_broker", "done")
    result = run_scenario(
        live_stack.stack, scenario, live_stack.view, fire_timeout=60, heal_timeout=HEAL_TIMEOUT
    )
    assert result.caught, result.error
    assert result.healed_by == "reconnect_broker", result.error
    assert result.healed_after is not None and result.healed_after < HEAL_TIMEOUT
    done = attempts(live_stack, scenario.alert, "reconnect_broker", "done")
    assert done and done[0]["verdict"] == "run" and done[0]["detail"]
    assert remediation_counter(live_stack, "reconnect_broker", "done") > before
    live_stack.results["healed_after"] = result.healed_after


def test_the_same_fault_with_the_action_off_stays_firing_until_a_person_acts(
    live_stack: LiveStack,
) -> None:
    scenario = SCENARIOS["broker-session-dead"]
    healed_after = live_stack.results.get("healed_after")
    assert isinstance(healed_after, float), "runs after the healing test"
    redis = make_client(live_stack.layout.redis_url(Layer.SIGNAL_STREAM))
    turn_off(redis, Keys(), "reconnect_broker")
    try:
        result = run_scenario(
            live_stack.stack,
            scenario,
            live_stack.view,
            fire_timeout=60,
            heal_timeout=healed_after + 15,  # longer than it took to heal with the action on
            resolve_timeout=150,
        )
    finally:
        turn_on(redis, Keys(), "reconnect_broker")
    assert result.caught, result.error
    assert result.healed_by is None and "did not heal by itself" in result.error
    assert result.resolved_after is not None, "a person's undo resolves it"
    skipped = attempts(live_stack, scenario.alert, "reconnect_broker", "skipped")
    assert skipped, "the audit says why nothing was done"


def test_a_full_duckdb_disk_is_contained_and_writes_resume_when_space_is_back(
    live_stack: LiveStack,
) -> None:
    """Remediation cannot free a disk: it stops the engine's DuckDB writes (results wait in
    the stream) before a person frees space; once the alert resolves, writes resume."""
    scenario = SCENARIOS["duckdb-disk-low"]
    assert scenario.contained_by == "stop_duckdb_writes"
    result = run_scenario(
        live_stack.stack, scenario, live_stack.view, fire_timeout=60, heal_timeout=60
    )
    assert result.caught, result.error
    assert result.contained_by == "stop_duckdb_writes", result.error
    assert result.resolved_after is not None, "freeing the space resolves it"
    wait_until(
        lambda: bool(attempts(live_stack, scenario.alert, "resume_duckdb_writes", "done")),
        30,
        "the responder to resume DuckDB writes after the resolution",
    )


def test_a_leader_whose_engine_is_stuck_hands_over_by_itself(live_stack: LiveStack) -> None:
    """Its coordinator keeps the lease, so no failover happens on its own; LeaderEngineStuck
    fires, the responder demotes it, the other replica takes over and trades on."""
    scenario = SCENARIOS["leader-engine-stuck"]
    before = leader_of(live_stack.stack)
    result = run_scenario(
        live_stack.stack, scenario, live_stack.view, fire_timeout=90, heal_timeout=HEAL_TIMEOUT
    )
    assert result.caught, result.error
    assert result.healed_by == "demote_leader", result.error
    after = leader_of(live_stack.stack)
    assert after != before, f"{before} still leads"
    [done] = attempts(live_stack, scenario.alert, "demote_leader", "done")
    assert before in done["detail"]


def test_a_crashing_instance_the_supervisor_gave_up_on_is_restarted_by_itself(
    live_stack: LiveStack,
) -> None:
    """The terminal crashes at every start for a while; its supervisor stops it after three
    recoveries (InstanceRecoveryFailed); once the cause has passed, the responder's fresh
    restart brings it back."""
    scenario = SCENARIOS["instance-crash"]
    result = run_scenario(
        live_stack.stack, scenario, live_stack.view, fire_timeout=60, heal_timeout=HEAL_TIMEOUT
    )
    assert result.caught, result.error
    assert result.healed_by == "restart_instance", result.error
    assert attempts(live_stack, scenario.alert, "restart_instance", "done")


def test_an_account_redis_lost_is_rebuilt_from_its_fills_by_itself(live_stack: LiveStack) -> None:
    """Redis loses an account's hash while trading goes on (the next fills land on a fresh
    one); TradeStateInconsistent fires, the leader rebuilds the account from its fills in
    DuckDB, and the next check finds the copies agreeing."""
    scenario = SCENARIOS["account-state-lost"]
    assert scenario.heals_with == "resync_state"
    before = remediation_counter(live_stack, "resync_state", "done")
    result = run_scenario(
        live_stack.stack, scenario, live_stack.view, fire_timeout=60, heal_timeout=HEAL_TIMEOUT
    )
    assert result.caught, result.error
    assert result.healed_by == "resync_state", result.error
    [done] = attempts(live_stack, scenario.alert, "resync_state", "done")
    assert "rebuilt from DuckDB's fills" in done["detail"], done
    assert remediation_counter(live_stack, "resync_state", "done") > before
