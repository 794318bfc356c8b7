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
   failure (a scrape, an evaluation and a responder tick, each up to 1 s): at ``R``, about
   2 s and seldom more than 4 s after the kill. A restart gives the supervisor a fresh set of
   attempts, so the table starts again at ``R`` (+ up to 1 s to the first tick), and the
   responder's cool-down (per action: 15 s in the fast profile, 300 s by default) holds
   every later restart until ``R`` + cool-down; it then restarts the stopped instance for
   InstanceRecoveryFailed. The crash must last past ``R`` + 6 s (fast) or ``R`` + 10 s
   (default) and end before ``R`` + cool-down: with ``R`` up to 4 s, 10-19 s in the fast
   profile. That is why the fast profile shortens the supervisor's backoff
   (``stack.FAST_INSTANCE_RESTART_BACKOFF_SECONDS``): it gives up ~8 s after ``R``, and its
   InstanceFailed has resolved at the responder (scrape, evaluation, Alertmanager's 2 s
   group interval) before ``R`` + 15 s, so the restart then is usually InstanceRecoveryFailed's
   (on a loaded host InstanceFailed may still fire there and ask first: the one restart ends
   both, and the scenario runner counts it as the healing action either way). With
   the default backoff it would give up ~19 s after ``R``, after the responder's next restart
   for InstanceFailed at ``R`` + 15 s, and InstanceRecoveryFailed could never fire while
   remediation is on.
2. When no restart comes for InstanceFailed (``restart_instance`` still cooling down after an
   earlier fault, rate-limited, or the alert missed), the sequence runs from the kill: the
   last restart is at most 6 s (fast) or 10 s (default) after it, and the responder's
   restart for InstanceRecoveryFailed comes 1-3 s after ``stopped`` (unless the cool-down
   holds it longer): 10-12 s (fast) or 19-22 s (default) after the kill. A fast-profile crash
   of :data:`CRASH_SECONDS` outlasts that first restart, which crashes too: a second round,
   healed by the next restart after the cool-down.

:data:`CRASH_SECONDS` is 13 s in the fast profile (path 1, with 3 s or more to spare at both
ends for ``R`` from 1 to 4 s) and 17 s by default (both paths: 14-19 s). A loaded host (late
ticks, a slow responder) narrows the windows; a fault that turns out too short shows as an
instance that recovered without InstanceRecoveryFailed, one too long as a restart that crashed
and a second round.
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
