"""The remediation registry and the vocabulary rules are checked against stay one list."""

from __future__ import annotations

import pytest

from tradeguard.metrics.vocabulary import REMEDIATION_ACTIONS
from tradeguard.remediation.registry import (
    REGISTRY,
    UNDO_ACTIONS,
    Scope,
    UnknownAction,
    action_spec,
    on_by_default,
)


def test_every_action_a_rule_may_name_is_registered() -> None:
    assert set(REGISTRY) == set(REMEDIATION_ACTIONS) - {"none"}


def test_undo_actions_are_run_by_engines_but_never_named_by_a_rule() -> None:
    undone = {spec.undo for spec in REGISTRY.values() if spec.undo is not None}
    assert undone == set(UNDO_ACTIONS)
    assert not undone & set(REMEDIATION_ACTIONS)


def test_defaults_are_safe_for_real_money() -> None:
    """What can delay or drop a signal, cost a failover, remove capacity or lose data is off
    until an operator turns it on; what needs a human is never issued."""
    assert set(on_by_default()) == {
        "restart_instance",
        "reconnect_redis",
        "reconnect_broker",
        "stop_duckdb_writes",
        "resync_state",
        "retry_result_sync",
    }
    assert not action_spec("restart_redis").automatic
    assert action_spec("demote_leader").scope is Scope.LEADER
    for spec in REGISTRY.values():
        assert spec.does and spec.why


def test_an_unknown_action_is_a_named_error() -> None:
    with pytest.raises(UnknownAction):
        action_spec("reboot_the_datacenter")
