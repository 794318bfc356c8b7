from tradeguard.bus.instance_state import ALLOWED, InstanceEvent, InstanceState, event_for

S = InstanceState


def test_every_state_is_reachable_and_has_an_exit() -> None:
    reachable = set().union(*ALLOWED.values())
    assert reachable == set(InstanceState)
    assert all(ALLOWED[s] for s in InstanceState)


def test_failed_cannot_jump_back_to_running_without_recovery() -> None:
    assert S.RUNNING not in ALLOWED[S.FAILED]
    assert S.FAILED not in ALLOWED[S.STOPPED]


def test_events_announced_by_transitions() -> None:
    assert event_for(S.STARTING, S.RUNNING) is InstanceEvent.STARTED
    assert event_for(S.RECOVERING, S.RUNNING) is InstanceEvent.RECOVERED
    assert event_for(S.DEGRADED, S.RUNNING) is InstanceEvent.RECOVERED
    assert event_for(S.RUNNING, S.FAILED) is InstanceEvent.FAILED
    assert event_for(S.RUNNING, S.DEGRADED) is InstanceEvent.DEGRADED
    assert event_for(S.RUNNING, S.STOPPED) is InstanceEvent.STOPPED
    assert event_for(S.FAILED, S.RECOVERING) is None
