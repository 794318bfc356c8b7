"""Instance faults on a running local stack: crash the leader's demo terminal until a given
time, ask whether an instance runs, and take the crash away.

Each engine replica of the stack supervises one demo terminal, ``terminal-<replica>``
(:mod:`tradeguard.instances.demo_terminal`), which crashes at once, at every start, while its
crash-until file holds a future unix time. :func:`crash_instance` writes that file for the
leader's terminal and kills the running process: every recovery its supervisor tries then
fails, and it gives up (``stopped``, InstanceRecoveryFailed) until a fresh restart after the
crash time succeeds, the responder's ``restart_instance`` or a person's.

Timing: how long the crash must last
------------------------------------
The supervisor ticks once a second. After the kill its next tick finds the process gone
(``failed``, at most 1 s after the kill); it restarts it after a backoff ``b`` (attempt 1),
then ``2b`` and ``4b`` (attempts 2 and 3), each restarted terminal crashing at once and the
next tick finding it gone; after ``8b`` more the fourth attempt is over the limit of 3 and it
stops the instance for a human. The 5 s stable window plays no part: a terminal that crashes
at start is never up that long. With each wait rounded up to whole ticks, counted from that
first ``failed`` tick:

==================  ==============================  =============================
stack profile       last restart (attempt 3)        ``stopped``
==================  ==============================  =============================
fast (``b`` 0.25 s) 5 s: 1 + 1 + 1 + 1 + 1          8 s: 5 + 1 + 2
default (``b`` 1 s) 9 s: 1 + 1 + 2 + 1 + 4          18 s: 9 + 1 + 8
==================  ==============================  =============================

The crash must still hold at the last restart (else that one runs and the instance recovers
by itself, without InstanceRecoveryFailed) and be over when the responder restarts it after
``stopped`` (else that restart crashes too, and the sequence begins again). Two paths:

1. Usually the responder first restarts the instance for **InstanceFailed** (state
   ``failed``, no ``for``, action ``restart_instance``) a few seconds after the first
   failure, while the supervisor is still recovering it. That restart counts as one of the
   supervisor's attempts (:meth:`InstanceSupervisor.restart`), so it shortens the table
   rather than starting it again: the instance is stopped at most ~8 s (fast) or ~18 s
   (default) after the kill whatever the responder does meanwhile. Once it is stopped,
   InstanceFailed resolves and InstanceRecoveryFailed fires; the responder restarts the
   stopped instance, with a fresh set of attempts, when its cool-down (per action and
   target: 15 s in the fast profile, 300 s by default) allows, whichever of the two alerts
   asks first (the scenario runner counts either).
2. When no restart comes for InstanceFailed (``restart_instance`` still cooling down after an
   earlier fault, rate-limited, or the alert missed), the table runs from the kill as above.

:func:`crash_until_stopped` therefore makes the crash last exactly until ``stopped`` (then
the cause passes), however slow the host; :data:`CRASH_SECONDS` is the fixed length
:func:`crash_instance` uses when asked for none: 13 s in the fast profile and 17 s by
default. A fixed crash that turns out too short shows as an instance that recovered without
InstanceRecoveryFailed, one too long as a restart that crashed and a second round.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.config import Layer
from tradeguard.instances.demo_terminal import pids_watching, write_crash_until
from tradeguard.instances.restart import restart_by_hand
from tradeguard.stack.stack import Stack

# How long crash_instance crashes the terminal by default, per stack profile (see above).
CRASH_SECONDS = {"fast": 13.0, "default": 17.0}
INSTANCE_STATE_METRIC = "tradeguard_instance_state"


def crash_seconds(stack: Stack) -> float:
    """The default crash length for ``stack``'s profile."""
    return CRASH_SECONDS.get(stack.layout.profile, CRASH_SECONDS["default"])


def crash_instance(stack: Stack, seconds: float | None = None) -> str:
    """Crash the leader's demo terminal for ``seconds`` (default: :func:`crash_seconds`) and
    kill its running process; the id of the instance.

    The crash-until file goes first, so the supervisor's first restart after the kill crashes
    already; then every process watching that file is killed (SIGKILL, as a crash).
    ChaosError when no replica leads; ValueError for a crash of no positive length."""
    # Imported here, not above: the scenarios module may import this one to build scenarios.
    from tradeguard.chaos.scenarios import leader_of

    if seconds is None:
        seconds = crash_seconds(stack)
    if not seconds > 0:  # also refuses NaN
        raise ValueError(f"a crash must last a positive number of seconds, got {seconds!r}")
    layout = stack.layout
    replica = leader_of(stack)
    crash_file = layout.instance_crash_file(replica)
    write_crash_until(crash_file, time.time() + seconds)
    for pid in pids_watching(crash_file):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # exited by itself meanwhile (it watches the file too)
    return layout.instance_of(replica)


CRASH_CAP_SECONDS = 120.0  # the longest a crash-until-stopped lasts, whatever happens


def crash_until_stopped(stack: Stack) -> str:
    """Crash the leader's demo terminal until its supervisor has given up on it (``stopped``),
    then let the cause pass: the crash lasts as long as the recoveries take, however slow the
    host, instead of a fixed time tuned to them. A daemon thread watches the engine's /metrics
    and takes the crash away once the instance is stopped (at the latest after
    ``CRASH_CAP_SECONDS``); the id of the instance."""
    instance = crash_instance(stack, CRASH_CAP_SECONDS)
    replica = stack.layout.replica_of(instance)
    assert replica is not None

    def pass_when_stopped() -> None:
        deadline = time.monotonic() + CRASH_CAP_SECONDS
        while time.monotonic() < deadline and instance_state(stack, instance) != "stopped":
            time.sleep(0.25)
        stack.layout.instance_crash_file(replica).unlink(missing_ok=True)

    threading.Thread(target=pass_when_stopped, name="crash-until-stopped", daemon=True).start()
    return instance


def clear_instance_crash(stack: Stack) -> None:
    """Take the crash away (the undo), and do what a person does once the cause is fixed:
    remove every replica's crash-until file, so the next start of any demo terminal runs,
    then restart each instance its supervisor stopped (``tradeguard instance restart``). After
    the responder's restart there is none left to restart; with remediation off, this is what
    brings the instance back."""
    layout = stack.layout
    for replica in layout.engine_ports:
        layout.instance_crash_file(replica).unlink(missing_ok=True)
    for replica in layout.engine_ports:
        instance = layout.instance_of(replica)
        if instance_state(stack, instance) == "stopped":
            client = make_client(layout.redis_url(Layer.SIGNAL_STREAM))
            restart_by_hand(client, Keys(), instance)


def instance_state(stack: Stack, instance: str) -> str | None:
    """The state ``instance`` is in, as its engine's /metrics says it (the
    ``tradeguard_instance_state`` series at 1); None when no replica of the stack supervises
    it, its engine does not answer, or no state is set."""
    replica = stack.layout.replica_of(instance)
    if replica is None:
        return None
    try:
        reply = httpx.get(stack.layout.engine_metrics_url(replica), timeout=2)
        reply.raise_for_status()
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(reply.text):
        if family.name != INSTANCE_STATE_METRIC:
            continue
        for sample in family.samples:
            if sample.labels.get("instance") == instance and sample.value == 1:
                return sample.labels.get("state")
    return None


def instance_running(stack: Stack, instance: str) -> bool:
    """Whether ``instance`` is ``running`` by its engine's /metrics (not ``starting`` any more:
    up for the supervisor's stable window)."""
    return instance_state(stack, instance) == "running"
