"""End to end: a fault the rule's action cannot help ends in RemediationExhausted, never a loop.

The venue refuses every order on every session, new ones too. TradeExecutionFailures fires and
the responder reconnects the broker; the reconnect is done, the alert keeps firing, and after
the verify time the responder tries again, up to its budget. Then it raises RemediationExhausted
once, through its own channels, and tries nothing more; a person's undo resolves both.

Its own stack, with remediation's verify time shortened to 20 s (the fast profile's 90 s allows
for a healed TradeExecutionFailures to clear its 1 m window; here nothing heals).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tradeguard.chaos.runner import finish_resolution, run_scenario
from tradeguard.chaos.scenarios import SCENARIOS
from tradeguard.process import wait_until
from tradeguard.responder.events import parse_iso
from tradeguard.responder.remediation import EXHAUSTED_ALERT

from .conftest import LiveStack, running_stack

pytestmark = pytest.mark.e2e

VERIFY_SECONDS = 20
BUDGET = 3


@pytest.fixture(scope="module")
def impatient_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    env = {"TRADEGUARD_RESPONDER_REMEDIATION_VERIFY_SECONDS": str(VERIFY_SECONDS)}
    with running_stack(tmp_path_factory.mktemp("stack"), responder_env=env) as live:
        yield live


def reconnects(live: LiveStack, alert: str, since: float) -> list[dict[str, object]]:
    return [
        a
        for a in live.view.actions(alert)
        if a["action"] == "reconnect_broker"
        and int(str(a["attempt"])) > 0
        and a["outcome"] not in ("exhausted", "skipped", "dry_run")
        and parse_iso(str(a["decided_at"])).timestamp() >= since
    ]


def test_a_venue_that_refuses_everything_ends_in_one_exhaustion_after_the_budget(
    impatient_stack: LiveStack,
) -> None:
    live = impatient_stack
    scenario = SCENARIOS["broker-venue-down"]
    assert scenario.exhausts == "reconnect_broker"
    result = run_scenario(
        live.stack,
        scenario,
        live.view,
        fire_timeout=60,
        heal_timeout=(BUDGET + 1) * VERIFY_SECONDS + 60,
        wait_resolved=False,
    )
    assert result.caught, result.error
    assert result.gave_up_on == "reconnect_broker", result.error
    assert result.attempts == BUDGET, f"{result.attempts} attempts, the budget is {BUDGET}"
    # Every reconnect was carried out ("done"): the action ran, and did not help.
    done = reconnects(live, scenario.alert, result.injected_at)
    assert [a["outcome"] for a in done] == ["done"] * BUDGET, done

    # The fault was undone by the runner only after the exhaustion: its resolution comes, and
    # no attempt was made after the notice, nor a second notice raised.
    finish_resolution(result, live.view, 150)
    assert result.resolved_after is not None, "a person's undo resolves it"
    assert len(reconnects(live, scenario.alert, result.injected_at)) == BUDGET, "no fourth try"
    notices = [
        e
        for e in live.view.events(EXHAUSTED_ALERT)
        if e["labels"].get("for_alert") == scenario.alert
    ]
    assert [e["status"] for e in notices].count("firing") == 1, notices
    wait_until(
        lambda: any(
            e["status"] == "resolved" and e["labels"].get("for_alert") == scenario.alert
            for e in live.view.events(EXHAUSTED_ALERT)
        ),
        30,
        "RemediationExhausted to resolve with its alert",
    )
