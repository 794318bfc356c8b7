"""A person's restart of a supervised instance, through the same command stream remediation
uses: the engine that supervises the instance restarts it (with a fresh set of recovery
attempts) and answers, whether or not remediation is turned off.

Why not signal the process directly: only its engine's supervisor knows the instance's state,
its recovery count and its log; a restart behind its back would be undone, or counted as a
crash. The same path also means a person's restart shows in the engines' logs as one command
among the responder's.
"""

from __future__ import annotations

import getpass

from redis import Redis

from tradeguard.bus.commands import Command, CommandBus
from tradeguard.bus.keys import Keys
from tradeguard.errors import TradeguardError

ACTION = "restart_instance"


class InstanceRestartError(TradeguardError):
    """No engine restarted the instance (none supervises it, none answered, or it failed)."""


def restart_by_hand(redis: Redis, keys: Keys, instance: str, timeout: float = 15.0) -> str:
    """Ask the engine that supervises ``instance`` to restart it, and wait up to ``timeout``
    seconds for its answer; the engine's detail when done, InstanceRestartError otherwise."""
    if not instance.strip():
        raise InstanceRestartError("name the instance to restart")
    if not timeout > 0:  # also refuses NaN
        raise InstanceRestartError(f"the timeout must be a positive number, got {timeout!r}")
    command = Command(
        ACTION,
        params={"instance": instance},
        occurrence=f"by hand: {_who()}",
        timeout=timeout,
    )
    final, heard = CommandBus(redis, keys).ask(command)
    if final is None:
        replicas = sorted({a.replica for a in heard})
        if replicas:
            raise InstanceRestartError(
                f"no engine supervises {instance} (answered: {', '.join(replicas)}); "
                "check the instance id against tradeguard_instance_state"
            )
        raise InstanceRestartError(
            f"no engine answered within {timeout:g}s: are the engines running? "
            "(tradeguard ha status)"
        )
    where = f"{final.replica}: {final.detail}" if final.detail else final.replica
    if final.answer != "done":
        raise InstanceRestartError(f"{instance} not restarted ({final.answer}) by {where}")
    return where


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "unknown"
