"""The local stack's demo terminal instance, and the chaos helpers that crash it, against a real
replica: a coordinator replica (engine, supervisor, /metrics, /coordinator/status) on a real
redis-server, supervising the demo terminal as the stack configures it, with a short tick.

The whole stack would take a minute to start; the chaos helpers only need what the stack gives
them (its layout: a replica's metrics port, its instance id and crash-until file), so they run
here on a layout that names this replica. Also: how a Stack configures each engine's instance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast
from urllib.parse import urlsplit

import pytest

from tradeguard.bus import InstanceRegistry, InstanceState, Keys
from tradeguard.bus.commands import ANY_ENGINE, Command, CommandAnswer, CommandBus
from tradeguard.bus.connection import make_client
from tradeguard.chaos.instance_faults import (
    clear_instance_crash,
    crash_instance,
    instance_running,
    instance_state,
)
from tradeguard.chaos.scenarios import leader_of
from tradeguard.config import InstanceSpec, Layer, Settings, load_settings
from tradeguard.engine.service import EngineOptions
from tradeguard.ha.coordinator import HAConfig
from tradeguard.instances.demo_terminal import crashing
from tradeguard.process import wait_until
from tradeguard.replica import CoordinatorService
from tradeguard.stack.layout import StackLayout
from tradeguard.stack.stack import (
    FAST_INSTANCE_RESTART_BACKOFF_SECONDS,
    Stack,
    demo_terminal_command,
)

REPLICA = "engine-1"
CRASH_SECONDS = 12.0  # two rounds of the supervisor's recoveries (~3 s each here) fit in it
TICK = 0.1  # the supervisor's interval here (1 s in the stack)
# The settings the stack gives an engine for its instance.
INSTANCE_SETTINGS = (
    "TRADEGUARD_INSTANCES",
    "TRADEGUARD_INSTANCES_DIR",
    "TRADEGUARD_INSTANCE_RESTART_BACKOFF_SECONDS",
)


# ---- how the stack configures the instances (no process started) -----------------------------
def engine_env(stack: Stack, replica: str) -> dict[str, str]:
    return stack.child(replica).env or {}


@pytest.mark.parametrize("profile", ["fast", "default"])
def test_each_engine_of_the_stack_supervises_a_demo_terminal_of_its_own(
    tmp_path: Path, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = StackLayout.allocate(tmp_path / "run", profile=profile, replicas=2)
    leftover = layout.instance_crash_file("engine-2")
    leftover.parent.mkdir(parents=True)
    leftover.write_text(f"{time.time() + 600}\n")
    stack = Stack(layout)
    assert not leftover.exists(), "a stack starts without a crash left by an earlier run"

    ids = []
    for replica in layout.engine_ports:
        env = engine_env(stack, replica)
        for name in INSTANCE_SETTINGS:
            if name in env:
                monkeypatch.setenv(name, env[name])
            else:
                monkeypatch.delenv(name, raising=False)
        settings = load_settings()  # what the engine reads from that environment
        (spec,) = settings.instances
        assert spec.id == layout.instance_of(replica)
        assert spec.command == demo_terminal_command(layout.instance_crash_file(replica))
        assert settings.instances_dir == layout.instances_dir
        backoff = env.get("TRADEGUARD_INSTANCE_RESTART_BACKOFF_SECONDS")
        if profile == "fast":
            assert backoff == str(FAST_INSTANCE_RESTART_BACKOFF_SECONDS)
            assert settings.instance_restart_backoff_seconds == 0.25
        else:
            assert backoff is None
            assert settings.instance_restart_backoff_seconds == 1.0  # the supervisor's default
        ids.append(spec.id)
    assert ids == ["terminal-engine-1", "terminal-engine-2"]

    # Only the engines supervise instances; every other child's environment is as before.
    for name, child in stack.children.items():
        if name not in layout.engine_ports:
            assert not set(INSTANCE_SETTINGS) & set(child.env or {}), name


# ---- a real replica supervising the demo terminal ---------------------------------------------
@pytest.fixture
def layout(tmp_path: Path) -> StackLayout:
    """A stack layout naming one replica; its metrics port is set once the replica listens."""
    return StackLayout(tmp_path / "stack", engine_ports={REPLICA: 0})


@pytest.fixture
def replica(
    settings: Settings, layout: StackLayout, tmp_path: Path
) -> Iterator[CoordinatorService]:
    spec = InstanceSpec(
        id=layout.instance_of(REPLICA),
        command=demo_terminal_command(layout.instance_crash_file(REPLICA)),
    )
    supervised = settings.model_copy(
        update={
            "instances": [spec],
            "instances_dir": layout.instances_dir,
            "instance_stable_seconds": 0.5,
            "instance_restart_backoff_seconds": TICK,
        }
    )
    svc = CoordinatorService(
        supervised,
        HAConfig(REPLICA, ttl=3.0, renew_interval=0.2, renew_deadline=1.5),
        f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        EngineOptions(metrics_port=0, persist=False),
    )
    assert svc.engine.supervisor is not None
    svc.engine.supervisor.interval = TICK  # set before its thread starts
    svc.start()
    try:
        port = urlsplit(svc.metrics_url).port
        assert port
        layout.engine_ports[REPLICA] = port
        assert svc.engine.commands.joined.wait(10), "the command listener did not join"
        yield svc
    finally:
        svc.stop()


def restart_instance(settings: Settings, instance: str) -> CommandAnswer:
    """``restart_instance`` as the responder issues it (to any engine); the final answer."""
    client = make_client(settings.redis_url)
    bus = CommandBus(client, Keys())
    command = Command("restart_instance", ANY_ENGINE, params={"instance": instance})
    final: list[CommandAnswer] = []

    def answered() -> bool:
        final[:] = [a for a in bus.answers(command.command_id) if a.final]
        return bool(final)

    try:
        bus.issue(command)
        wait_until(answered, 20, f"an outcome of restart_instance for {instance}")
    finally:
        client.close()
    return final[0]


def test_a_crash_outlasting_the_recoveries_stops_the_instance_until_a_restart_after_it(
    replica: CoordinatorService, layout: StackLayout, settings: Settings
) -> None:
    stack = cast(Stack, SimpleNamespace(layout=layout))  # what the helpers use of a stack
    supervisor = replica.engine.supervisor
    assert supervisor is not None
    instance = layout.instance_of(REPLICA)
    registry = InstanceRegistry(replica.engine.clients[Layer.INSTANCE_STATE], Keys())
    sample = replica.metrics.registry.get_sample_value

    def figure(name: str) -> float | None:
        return sample(name, {"instance": instance})

    wait_until(lambda: instance_running(stack, instance), 20, f"{instance} to run")
    assert sample("tradeguard_instance_socket_connections", {"instance": instance}), (
        "it holds its link"
    )
    wait_until(lambda: leader_of(stack) == REPLICA, 15, f"{REPLICA} to lead")
    first = supervisor.process(instance).pid

    # The fault: crash until T, and the running process killed.
    t0 = time.time()
    assert crash_instance(stack, CRASH_SECONDS) == instance
    until = t0 + CRASH_SECONDS
    assert crashing(layout.instance_crash_file(REPLICA))
    wait_until(lambda: instance_state(stack, instance) == "stopped", 10, f"{instance} stopped")
    assert time.time() < until, "it gave up while the crash held"
    assert supervisor.process(instance).pid != first, "the killed process was restarted"
    assert not supervisor.process(instance).running
    assert figure("tradeguard_instance_recovery_attempts") == 4  # > 3: InstanceRecoveryFailed
    assert figure("tradeguard_instance_restarts_total") == 3
    failures = [e for e in registry.events(200) if e["instance"] == instance]
    assert [e["event"] for e in failures].count("instance_failed") == 4  # the kill, 3 recoveries
    time.sleep(5 * TICK)
    assert instance_state(stack, instance) == "stopped", "the supervisor tries no more"
    assert not instance_running(stack, instance)

    # A restart while the crash holds crashes too: a second round, stopped again.
    answer = restart_instance(settings, instance)
    assert answer.answer == "done", answer  # the process started; it crashes right after
    wait_until(
        lambda: (
            figure("tradeguard_instance_restarts_total") == 7
            and instance_state(stack, instance) == "stopped"
        ),
        10,
        f"{instance} to fail its fresh attempts and stop again",
    )
    assert time.time() < until, "the second round ended while the crash held"

    # The crash passes by itself; the next restart runs.
    time.sleep(max(0.0, until - time.time()) + 0.1)
    assert not crashing(layout.instance_crash_file(REPLICA))
    assert instance_state(stack, instance) == "stopped", "nothing restarts it by itself"
    answer = restart_instance(settings, instance)
    assert answer.answer == "done", answer
    wait_until(lambda: instance_running(stack, instance), 10, f"{instance} to run again")
    assert registry.info(instance)["recovery_attempts"] == "0"
    assert figure("tradeguard_instance_recovery_attempts") == 0

    clear_instance_crash(stack)
    assert not layout.instance_crash_file(REPLICA).exists()
    clear_instance_crash(stack)  # the undo may run twice
    assert instance_running(stack, instance)
    assert instance_state(stack, "terminal-engine-9") is None  # not supervised in this stack


def test_clearing_the_crash_early_lets_the_supervisor_recover_by_itself(
    replica: CoordinatorService, layout: StackLayout
) -> None:
    """The undo, before the supervisor gives up: its next recovery attempt runs."""
    stack = cast(Stack, SimpleNamespace(layout=layout))
    instance = layout.instance_of(REPLICA)
    wait_until(lambda: instance_running(stack, instance), 20, f"{instance} to run")
    wait_until(lambda: leader_of(stack) == REPLICA, 15, f"{REPLICA} to lead")
    crash_instance(stack, 60)
    wait_until(
        lambda: instance_state(stack, instance) in ("failed", "recovering"),
        5,
        f"{instance} to fail",
    )
    clear_instance_crash(stack)
    wait_until(lambda: instance_running(stack, instance), 15, f"{instance} to recover")
    assert InstanceState.RUNNING.value == instance_state(stack, instance)


def test_crash_instance_wants_a_positive_length(layout: StackLayout) -> None:
    stack = cast(Stack, SimpleNamespace(layout=layout))
    for seconds in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            crash_instance(stack, seconds)
    assert not layout.instance_crash_file(REPLICA).exists(), "refused before any file"
