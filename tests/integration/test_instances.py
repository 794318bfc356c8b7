"""The instance supervisor with real child processes and a real redis-server.

The instances are small Python programs standing in for terminals: one holds a socket to a
"broker" (a listening socket of the test) and reports its queue and broker latency into its RIS
hash, one crashes right after it starts.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from tradeguard.bus import InstanceRegistry, InstanceState, Keys
from tradeguard.bus.connection import make_client
from tradeguard.config import InstanceSpec
from tradeguard.instances import InstanceSupervisor
from tradeguard.metrics.catalog import Metrics
from tradeguard.process import wait_until
from tradeguard.process.services import RedisServer

S = InstanceState
STABLE = 0.5  # seconds up before a (re)started instance counts as running

TERMINAL = """
import os, socket, time, redis
broker = socket.create_connection(("127.0.0.1", int(os.environ["BROKER_PORT"])))
r = redis.Redis.from_url(os.environ["REDIS_URL"])
r.hset(os.environ["RIS_KEY"], mapping={"queue_length": 7, "network_latency_seconds": 0.02})
time.sleep(600)
"""
CRASHER = "import sys, time; time.sleep(0.1); sys.exit(3)"


@pytest.fixture
def client(redis_server: RedisServer) -> Redis:
    return make_client(redis_server.url)


@pytest.fixture
def broker() -> Iterator[int]:
    """A listening socket the terminal connects to, accepting in the background."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in held:
        conn.close()


Supervise = Callable[..., InstanceSupervisor]


@pytest.fixture
def supervise(
    client: Redis, redis_server: RedisServer, metrics: Metrics, broker: int, tmp_path: Path
) -> Iterator[Supervise]:
    """Start a supervisor over the given specs in a thread; stopped at the end of the test."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(*specs: InstanceSpec) -> InstanceSupervisor:
        supervisor = InstanceSupervisor(
            specs,
            InstanceRegistry(client, Keys(), metrics),
            tmp_path / "instances",
            metrics,
            stable_seconds=STABLE,
            interval=0.05,
            restart_backoff=0.05,
        )
        stop = threading.Event()
        thread = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
        thread.start()
        running.append((stop, thread))
        return supervisor

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(15)


def terminal(
    redis_server: RedisServer, broker: int, instance: str = "mt5-1", **extra: int
) -> InstanceSpec:
    env = {
        "BROKER_PORT": str(broker),
        "REDIS_URL": redis_server.url,
        "RIS_KEY": Keys().instance(instance),
    }
    return InstanceSpec(id=instance, command=[sys.executable, "-c", TERMINAL], env=env, **extra)


def figure(metrics: Metrics, name: str, instance: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"instance": instance, **labels})


def state_is(registry: InstanceRegistry, instance: str, state: InstanceState) -> Callable[[], bool]:
    return lambda: registry.state(instance) is state


def events(registry: InstanceRegistry, instance: str) -> list[str]:
    return [e["event"] for e in registry.events(200) if e["instance"] == instance]


def test_a_healthy_instance_runs_and_its_figures_are_exported(
    supervise: Supervise, redis_server: RedisServer, broker: int, client: Redis, metrics: Metrics
) -> None:
    registry = InstanceRegistry(client, Keys())
    supervise(terminal(redis_server, broker))
    wait_until(state_is(registry, "mt5-1", S.RUNNING), 15, "mt5-1 to run")
    wait_until(
        lambda: figure(metrics, "tradeguard_instance_queue_length", "mt5-1") == 7,
        5,
        "the instance's own queue report in the metrics",
    )
    assert figure(metrics, "tradeguard_instance_state", "mt5-1", state="running") == 1
    assert figure(metrics, "tradeguard_instance_state", "mt5-1", state="starting") == 0
    assert figure(metrics, "tradeguard_instance_network_latency_seconds", "mt5-1") == 0.02
    assert (figure(metrics, "tradeguard_instance_socket_connections", "mt5-1") or 0) >= 1
    assert 0 < (figure(metrics, "tradeguard_instance_memory_ratio", "mt5-1") or 0) < 0.8
    assert figure(metrics, "tradeguard_instance_recovery_attempts", "mt5-1") == 0
    assert events(registry, "mt5-1") == ["instance_started"]


def test_a_killed_instance_is_restarted_and_recovers(
    supervise: Supervise, redis_server: RedisServer, broker: int, client: Redis, metrics: Metrics
) -> None:
    registry = InstanceRegistry(client, Keys())
    supervisor = supervise(terminal(redis_server, broker))
    wait_until(state_is(registry, "mt5-1", S.RUNNING), 15, "mt5-1 to run")
    first_pid = supervisor.process("mt5-1").pid
    supervisor.process("mt5-1").kill()
    wait_until(lambda: "instance_recovered" in events(registry, "mt5-1"), 15, "mt5-1 to recover")
    assert supervisor.process("mt5-1").pid != first_pid
    assert events(registry, "mt5-1") == [
        "instance_started",
        "instance_failed",
        "instance_recovered",
    ]
    assert figure(metrics, "tradeguard_instance_restarts_total", "mt5-1") == 1
    assert registry.info("mt5-1")["recovery_attempts"] == "0"  # healthy again: reset


def test_a_crash_looping_instance_is_stopped_after_three_recovery_attempts(
    supervise: Supervise, client: Redis, metrics: Metrics
) -> None:
    registry = InstanceRegistry(client, Keys())
    spec = InstanceSpec(id="flaky", command=[sys.executable, "-c", CRASHER])
    supervise(spec)
    wait_until(
        lambda: "instance_stopped" in events(registry, "flaky"), 30, "the supervisor to give up"
    )
    assert registry.state("flaky") is S.STOPPED
    assert events(registry, "flaky") == ["instance_failed"] * 4 + ["instance_stopped"]
    # 4 > 3: what InstanceRecoveryFailed alerts on; three restarts were tried.
    assert figure(metrics, "tradeguard_instance_recovery_attempts", "flaky") == 4
    assert figure(metrics, "tradeguard_instance_restarts_total", "flaky") == 3
    assert registry.info("flaky")["exit_code"] == "3"


def test_restarts_from_outside_during_a_crash_loop_count_as_its_recovery_attempts(
    supervise: Supervise, client: Redis, metrics: Metrics
) -> None:
    """The responder restarts an instance for InstanceFailed while its supervisor is still
    recovering it: each such restart is one of the attempts, so the limit still ends the loop
    (were it a fresh start, every restart would hand the loop a new set, for ever). Once the
    supervisor has given up, a restart starts it afresh."""
    registry = InstanceRegistry(client, Keys())
    spec = InstanceSpec(id="flaky", command=[sys.executable, "-c", CRASHER])
    supervisor = supervise(spec)
    from_outside = 0
    restarted_pid: int | None = None
    deadline = time.monotonic() + 30
    while registry.info("flaky").get("reason") != "recovery attempts exhausted":
        assert time.monotonic() < deadline, (
            f"still not stopped after {from_outside} restarts from outside: the limit never held"
        )
        pid = supervisor.process("flaky").pid
        if registry.state("flaky") in (S.FAILED, S.RECOVERING) and pid != restarted_pid:
            supervisor.restart("flaky", "restart from outside")
            restarted_pid = supervisor.process("flaky").pid  # each process restarted once
            from_outside += 1
        time.sleep(0.005)  # polling the state: no event says when the next crash comes
    assert from_outside >= 1, events(registry, "flaky")
    assert supervisor.gave_up("flaky") and registry.state("flaky") is S.STOPPED
    assert figure(metrics, "tradeguard_instance_recovery_attempts", "flaky") == 4
    assert figure(metrics, "tradeguard_instance_restarts_total", "flaky") == 3

    supervisor.restart("flaky", "a person, once the cause is fixed")
    assert not supervisor.gave_up("flaky")


def test_an_instance_over_its_memory_budget_is_degraded(
    supervise: Supervise, redis_server: RedisServer, broker: int, client: Redis
) -> None:
    registry = InstanceRegistry(client, Keys())
    supervise(terminal(redis_server, broker, memory_budget_bytes=1_000_000))  # 1 MB
    wait_until(state_is(registry, "mt5-1", S.DEGRADED), 15, "mt5-1 to be degraded")
    assert events(registry, "mt5-1") == ["instance_started", "instance_degraded"]


def test_a_state_left_by_an_earlier_supervisor_starts_over_without_an_attempt(
    supervise: Supervise, redis_server: RedisServer, broker: int, client: Redis
) -> None:
    registry = InstanceRegistry(client, Keys())
    registry.transition("mt5-1", S.STARTING)
    registry.transition("mt5-1", S.RUNNING)  # then that supervisor (and its children) died
    supervise(terminal(redis_server, broker))
    wait_until(
        lambda: (
            events(registry, "mt5-1")[-1:] == ["instance_started"]
            and len(events(registry, "mt5-1")) > 1
        ),
        15,
        "mt5-1 to be started again",
    )
    assert events(registry, "mt5-1") == ["instance_started", "instance_stopped", "instance_started"]
    assert registry.info("mt5-1")["recovery_attempts"] == "0"


def test_stopping_the_supervisor_stops_its_instances(
    redis_server: RedisServer, broker: int, client: Redis, metrics: Metrics, tmp_path: Path
) -> None:
    registry = InstanceRegistry(client, Keys(), metrics)
    supervisor = InstanceSupervisor(
        [terminal(redis_server, broker)],
        registry,
        tmp_path,
        metrics,
        stable_seconds=STABLE,
        interval=0.05,
    )
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    thread.start()
    wait_until(state_is(registry, "mt5-1", S.RUNNING), 15, "mt5-1 to run")
    process = supervisor.process("mt5-1")
    stop.set()
    thread.join(15)
    assert not thread.is_alive() and not process.running
    assert registry.state("mt5-1") is S.STOPPED


def test_a_command_that_cannot_start_is_retried_then_stopped_and_supervision_goes_on(
    supervise: Supervise,
    redis_server: RedisServer,
    broker: int,
    client: Redis,
    tmp_path: Path,
) -> None:
    registry = InstanceRegistry(client, Keys())
    script = tmp_path / "terminal.sh"
    script.write_text("#!/bin/sh\nsleep 600\n")  # not executable: Popen raises PermissionError
    broken = InstanceSpec(id="broken", command=[str(script)])
    supervise(broken, terminal(redis_server, broker))
    wait_until(
        lambda: "instance_stopped" in events(registry, "broken"), 30, "the supervisor to give up"
    )
    wait_until(state_is(registry, "mt5-1", S.RUNNING), 15, "the other instance to run")
    assert registry.info("broken")["exit_code"] == "-1"
