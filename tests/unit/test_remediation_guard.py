"""The remediation guard rails: ``decide`` on hand-made histories, with the clock an explicit
``now`` (no sleeps). Each rail is shown both to block and to let through."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard.errors import ConfigError
from tradeguard.remediation.guard import (
    DECISION_OUTCOMES,
    ISSUED_OUTCOMES,
    Attempt,
    Conditions,
    GuardPolicy,
    Request,
    Verdict,
    VerdictKind,
    decide,
)
from tradeguard.remediation.registry import REGISTRY, on_by_default

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # when the occurrence started
NOW = T0 + timedelta(minutes=20)
OK = Conditions(alert_path_broken=False, split_brain=False, leader_known=True)
POLICY = GuardPolicy()
REQ = Request("restart_instance", "engine-a", "fp1", T0)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def tried(
    outcome: str,
    seconds_ago: float,
    *,
    action: str = REQ.action,
    target: str = REQ.target,
    fingerprint: str = REQ.fingerprint,
    starts_at: datetime = T0,
) -> Attempt:
    return Attempt(fingerprint, starts_at, action, target, ago(seconds_ago), outcome)


def ask(
    history: Sequence[Attempt] = (),
    *,
    request: Request = REQ,
    conditions: Conditions = OK,
    policy: GuardPolicy = POLICY,
    now: datetime = NOW,
) -> Verdict:
    return decide(request, history, conditions, policy, now)


def test_a_clean_request_runs_as_attempt_one() -> None:
    v = ask()
    assert (v.kind, v.attempt) == (VerdictKind.RUN, 1)
    assert "restart_instance on engine-a" in v.reason


# ---- budget ----------------------------------------------------------------------------------
def test_budget_two_failures_run_a_third_attempt() -> None:
    v = ask([tried("failed", 1200), tried("timed_out", 900)])
    assert (v.kind, v.attempt) == (VerdictKind.RUN, 3)


def test_budget_three_failures_are_exhausted_with_what_was_tried() -> None:
    v = ask([tried("failed", 1200), tried("refused", 900), tried("timed_out", 600)])
    assert (v.kind, v.attempt) == (VerdictKind.EXHAUSTED, 4)
    assert "failed, refused, timed_out" in v.reason


def test_budget_is_per_occurrence_a_new_firing_starts_afresh() -> None:
    old = T0 - timedelta(hours=1)
    history = [tried("failed", s, starts_at=old) for s in (3000, 2500, 2000)]
    assert ask(history).kind is VerdictKind.RUN


def test_exhausted_comes_before_unsafe_conditions_and_staleness() -> None:
    history = [tried("failed", s) for s in (1200, 900, 600)]
    bad = Conditions(alert_path_broken=True, split_brain=True, leader_known=False)
    assert ask(history, conditions=bad).kind is VerdictKind.EXHAUSTED
    assert ask(history, now=T0 + timedelta(hours=2)).kind is VerdictKind.EXHAUSTED


# ---- cool-down -------------------------------------------------------------------------------
def test_cooldown_within_waits_and_says_how_long_is_left() -> None:
    v = ask([tried("failed", 42)])
    assert v.kind is VerdictKind.WAIT
    assert v.reason == "cool-down: restart_instance on engine-a ran 42 s ago (300 s, 258 s left)"


def test_cooldown_after_runs() -> None:
    assert ask([tried("failed", 301)]).kind is VerdictKind.RUN


def test_cooldown_is_per_action_and_target() -> None:
    history = [tried("done", 10, fingerprint="other")]
    assert ask(history).kind is VerdictKind.WAIT  # same action and target, another occurrence
    assert ask(history, request=replace(REQ, target="engine-b")).kind is VerdictKind.RUN
    assert ask(history, request=replace(REQ, action="reconnect_redis")).kind is VerdictKind.RUN


def test_a_command_in_flight_on_the_target_holds_even_a_short_cooldown() -> None:
    history = [tried("pending", 20, fingerprint="other")]
    v = ask(history, policy=GuardPolicy(cooldown_seconds=5))
    assert v.kind is VerdictKind.WAIT
    assert "in flight" in v.reason


# ---- rate limit ------------------------------------------------------------------------------
def storm(n: int, first_ago: float = 500.0) -> list[Attempt]:
    """``n`` attempts of different actions on different targets, 10 s apart."""
    actions = ("reconnect_redis", "reconnect_broker", "resync_state")
    return [
        tried("done", first_ago - 10 * i, action=actions[i % 3], target=f"t{i}", fingerprint="x")
        for i in range(n)
    ]


def test_rate_limit_across_actions_and_targets_waits() -> None:
    v = ask(storm(6))
    assert v.kind is VerdictKind.WAIT
    assert v.reason.startswith("rate limit: 6 actions in the last 600 s (limit 6)")
    assert v.reason.endswith("next in 100 s")  # the oldest leaves the window 100 s from now


def test_rate_limit_below_the_limit_or_outside_the_window_runs() -> None:
    assert ask(storm(5)).kind is VerdictKind.RUN
    assert ask(storm(6, first_ago=700)).kind is VerdictKind.RUN  # the two oldest left the window


# ---- stale alert -----------------------------------------------------------------------------
def test_stale_alert_is_skipped() -> None:
    v = ask(now=T0 + timedelta(seconds=1801))
    assert v.kind is VerdictKind.SKIP
    assert v.reason.startswith("stale alert")


def test_an_alert_at_the_age_limit_still_runs() -> None:
    assert ask(now=T0 + timedelta(seconds=1800)).kind is VerdictKind.RUN


# ---- safety conditions -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("conditions", "words"),
    [
        (replace(OK, alert_path_broken=True), "alert path is broken"),
        (replace(OK, split_brain=True), "split-brain"),
        (replace(OK, leader_known=False), "no leader"),
    ],
)
def test_unsafe_conditions_wait(conditions: Conditions, words: str) -> None:
    v = ask(conditions=conditions)
    assert v.kind is VerdictKind.WAIT
    assert words in v.reason


def test_every_unsafe_condition_is_named() -> None:
    bad = Conditions(alert_path_broken=True, split_brain=True, leader_known=False)
    assert ask(conditions=bad).reason == (
        "unsafe now: the alert path is broken (dead man's switch), split-brain, no leader"
    )


# ---- dry run ---------------------------------------------------------------------------------
def test_dry_run_records_what_it_would_do() -> None:
    v = ask(policy=GuardPolicy(dry_run=True))
    assert (v.kind, v.attempt) == (VerdictKind.DRY_RUN, 1)
    assert "would run restart_instance on engine-a" in v.reason


def test_dry_run_once_per_occurrence() -> None:
    v = ask([tried("dry_run", 60)], policy=GuardPolicy(dry_run=True))
    assert v.kind is VerdictKind.SKIP


def test_dry_runs_consume_neither_budget_nor_cooldown_nor_rate() -> None:
    history = [tried("dry_run", s) for s in (30, 20, 10, 5, 4, 3, 2)]
    v = ask(history)
    assert (v.kind, v.attempt) == (VerdictKind.RUN, 1)


def test_dry_run_is_still_subject_to_the_rails() -> None:
    assert ask([tried("failed", 10)], policy=GuardPolicy(dry_run=True)).kind is VerdictKind.WAIT


# ---- off switch, scope, unknown --------------------------------------------------------------
def test_the_default_enabled_set_is_the_registrys_on_by_default() -> None:
    assert GuardPolicy().enabled == frozenset(on_by_default())
    assert GuardPolicy.from_settings().enabled == frozenset(on_by_default())


def test_an_action_switched_off_is_skipped() -> None:
    policy = GuardPolicy.from_settings(disable=["restart_instance"])
    v = ask(policy=policy)
    assert v.kind is VerdictKind.SKIP
    assert "off" in v.reason


def test_an_action_off_by_default_is_skipped_until_enabled() -> None:
    request = replace(REQ, action="throttle_intake", target="*")
    assert ask(request=request).kind is VerdictKind.SKIP
    enabled = GuardPolicy.from_settings(enable=["throttle_intake"])
    assert ask(request=request, policy=enabled).kind is VerdictKind.RUN


def test_an_action_for_a_human_is_skipped_and_cannot_be_enabled() -> None:
    v = ask(request=replace(REQ, action="restart_redis"))
    assert v.kind is VerdictKind.SKIP
    assert "needs a human" in v.reason
    with pytest.raises(ConfigError, match="restart_redis"):
        GuardPolicy.from_settings(enable=["restart_redis"])


def test_an_unknown_action_is_skipped() -> None:
    v = ask(request=replace(REQ, action="reboot_the_world"))
    assert v.kind is VerdictKind.SKIP
    assert "unknown action" in v.reason


@pytest.mark.parametrize("setting", ["enable", "disable"])
def test_settings_naming_an_unknown_action_are_refused(setting: str) -> None:
    with pytest.raises(ConfigError, match=f"responder_remediation_{setting}.*nope"):
        GuardPolicy.from_settings(**{setting: ["nope"]})


def test_settings_naming_an_action_both_on_and_off_are_refused() -> None:
    with pytest.raises(ConfigError, match="both"):
        GuardPolicy.from_settings(enable=["stop_instance"], disable=["stop_instance"])


@pytest.mark.parametrize(
    "bad",
    [
        {"budget": 0},
        {"rate_limit": -1},
        {"budget": 1.5},
        {"cooldown_seconds": 0},
        {"rate_window_seconds": -5.0},
        {"max_alert_age_seconds": float("nan")},
        {"pending_timeout_seconds": 0.0},
    ],
)
def test_policy_numbers_must_be_positive(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        GuardPolicy.from_settings(**bad)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Request("restart_instance", "a", "fp", datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        ask(now=datetime(2024, 5, 1))


# ---- done, pending ---------------------------------------------------------------------------
CONTAIN = Request("stop_duckdb_writes", "engine-a", "fp1", T0)


def test_a_done_containing_action_is_skipped_even_once_the_cooldown_is_over() -> None:
    """Stopped writes hold the fault until the alert resolves: nothing more to do."""
    done = [tried("failed", 1000, action=CONTAIN.action), tried("done", 700, action=CONTAIN.action)]
    v = ask(done, request=CONTAIN)
    assert v.kind is VerdictKind.SKIP
    assert "done already" in v.reason


def test_a_done_healing_action_waits_for_its_alert_to_resolve() -> None:
    v = ask([tried("done", POLICY.verify_seconds - 1)])
    assert v.kind is VerdictKind.WAIT
    assert "verifying" in v.reason and "1 s more" in v.reason


def test_a_done_healing_action_whose_alert_still_fires_runs_again() -> None:
    v = ask([tried("done", POLICY.verify_seconds + 1)])
    assert (v.kind, v.attempt) == (VerdictKind.RUN, 2)


def test_a_fault_the_action_cannot_help_ends_exhausted_after_the_budget() -> None:
    """Done three times, verified each time, and the alert still fires: one exhaustion, with
    what was tried, never a fourth attempt."""
    gap = POLICY.verify_seconds + 1
    history = [tried("done", 3 * gap), tried("done", 2 * gap), tried("done", gap)]
    v = ask(history)
    assert v.kind is VerdictKind.EXHAUSTED
    assert "done, done, done" in v.reason and "the alert still fires" in v.reason
    # The third attempt is still being verified: not exhausted before it had its chance.
    assert ask([*history[:2], tried("done", 10)]).kind is VerdictKind.WAIT


def test_a_pending_attempt_of_the_occurrence_waits_even_as_the_last_of_the_budget() -> None:
    v = ask([tried("failed", 1100), tried("failed", 700), tried("pending", 60)])
    assert v.kind is VerdictKind.WAIT
    assert "in flight" in v.reason


def test_a_stale_pending_attempt_counts_as_timed_out() -> None:
    # Past pending_timeout (120 s): no longer blocks, counts against the budget.
    v = ask([tried("failed", 1100), tried("pending", 700)])
    assert (v.kind, v.attempt) == (VerdictKind.RUN, 3)
    v = ask([tried("failed", 1100), tried("failed", 900), tried("pending", 700)])
    assert v.kind is VerdictKind.EXHAUSTED
    assert "failed, failed, timed_out" in v.reason


# ---- which audit rows count ------------------------------------------------------------------
def test_recorded_decisions_are_not_attempts() -> None:
    # A skip (attempt 0), a dry run and an exhaustion notice changed nothing on any engine.
    history = [tried("skipped", 10), tried("dry_run", 9), tried("exhausted", 8, fingerprint="o")]
    v = ask(history * 3)
    assert (v.kind, v.attempt) == (VerdictKind.RUN, 1)


def test_an_outcome_the_guard_does_not_know_counts_on_the_safe_side() -> None:
    v = ask([tried("not_applicable", 1000), tried("mystery", 900), tried("failed", 600)])
    assert v.kind is VerdictKind.EXHAUSTED


# ---- property: the budget and the cool-down always hold --------------------------------------
ACTIONS = ("restart_instance", "reconnect_redis", "throttle_intake")
TARGETS = ("engine-a", "engine-b")
FINGERPRINTS = ("fp1", "fp2")
STARTS = (T0, T0 + timedelta(minutes=5))

attempts = st.builds(
    Attempt,
    fingerprint=st.sampled_from(FINGERPRINTS),
    starts_at=st.sampled_from(STARTS),
    action=st.sampled_from(ACTIONS),
    target=st.sampled_from(TARGETS),
    at=st.integers(min_value=0, max_value=7200).map(lambda s: NOW - timedelta(seconds=s)),
    outcome=st.sampled_from(sorted(ISSUED_OUTCOMES | DECISION_OUTCOMES)),
)
requests = st.builds(
    Request,
    action=st.sampled_from(ACTIONS),
    target=st.sampled_from(TARGETS),
    fingerprint=st.sampled_from(FINGERPRINTS),
    starts_at=st.sampled_from(STARTS),
)
# Mostly safe conditions, so that RUN is common enough for the property to bite.
conditions = st.one_of(
    st.just(OK), st.builds(Conditions, st.booleans(), st.booleans(), st.booleans())
)
policies = st.builds(
    GuardPolicy,
    budget=st.integers(1, 4),
    cooldown_seconds=st.sampled_from([1.0, 60.0, 300.0, 900.0]),
    rate_limit=st.integers(1, 8),
    dry_run=st.booleans(),
    enabled=st.just(frozenset(a for a in ACTIONS if REGISTRY[a].automatic)),
)


@settings(max_examples=300, deadline=None)
@given(
    request=requests,
    history=st.lists(attempts, max_size=8),
    conditions=conditions,
    policy=policies,
)
def test_never_runs_past_the_budget_or_within_the_cooldown(
    request: Request,
    history: list[Attempt],
    conditions: Conditions,
    policy: GuardPolicy,
) -> None:
    v = decide(request, history, conditions, policy, NOW)
    if v.kind not in (VerdictKind.RUN, VerdictKind.DRY_RUN):
        return
    assert (v.kind is VerdictKind.DRY_RUN) == policy.dry_run
    assert conditions == OK
    real = [a for a in history if a.outcome not in DECISION_OUTCOMES]
    mine = [a for a in real if request.same_occurrence(a)]
    assert len(mine) < policy.budget
    assert v.attempt == len(mine) + 1
    # A containing action done holds until the alert resolves; a healing one runs again only
    # once its verify time has passed with the alert still firing.
    healing = REGISTRY[request.action].undo is None
    assert all(
        a.outcome != "done" or (healing and (NOW - a.at).total_seconds() >= policy.verify_seconds)
        for a in mine
    )
    here = [a for a in real if (a.action, a.target) == (request.action, request.target)]
    assert all((NOW - a.at).total_seconds() >= policy.cooldown_seconds for a in here)
    window = [a for a in real if (NOW - a.at).total_seconds() < policy.rate_window_seconds]
    assert len(window) < policy.rate_limit


def test_a_fault_that_keeps_coming_back_ends_in_exhausted_then_skipped() -> None:
    """Each occurrence is healed ("done") and the fault returns: a new occurrence, a new
    budget. Across occurrences the repeat limit ends it once, then later ones are skipped."""
    policy = GuardPolicy(repeat_limit=3, repeat_window_seconds=3600.0, cooldown_seconds=1.0)
    ok = Conditions(alert_path_broken=False, split_brain=False, leader_known=True)
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    past = [
        Attempt(
            f"fp{i}",
            now - timedelta(minutes=40 - i),
            "restart_instance",
            "*",
            now - timedelta(minutes=39 - 10 * i),
            "done",
        )
        for i in range(3)
    ]
    fresh = Request("restart_instance", "*", "fp9", now - timedelta(seconds=5))
    verdict = decide(fresh, past, ok, policy, now)
    assert verdict.kind is VerdictKind.EXHAUSTED and "keeps coming back" in verdict.reason
    gave_up = Attempt("fp9", fresh.starts_at, "restart_instance", "*", now, "exhausted")
    later = Request("restart_instance", "*", "fp10", now)
    assert decide(later, [*past, gave_up], ok, policy, now).kind is VerdictKind.SKIP
    elsewhere = Request("restart_instance", "engine-2", "fp11", now)
    assert decide(elsewhere, past, ok, policy, now).kind is VerdictKind.RUN
    two_hours = now + timedelta(hours=2)
    assert decide(fresh, past, ok, policy, two_hours).kind is not VerdictKind.EXHAUSTED
