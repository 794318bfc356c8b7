"""Every remediation action by the name alert rules give in their ``action`` annotation.

One entry per action says what it does, which engine runs it, what undoes it when the alert
resolves, and whether it is on by default, with the reason: the defaults are chosen for real
money, so an action that can delay or drop a signal, or cost a failover, is off until the
operator turns it on (``TRADEGUARD_RESPONDER_REMEDIATION_ENABLE``). The names are
``metrics.vocabulary.REMEDIATION_ACTIONS`` (what ``tradeguard rules check`` accepts); a test
keeps the two, and the engines' handlers, in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    """Which engine a command goes to."""

    ANY = "any"  # every engine may run it; the first that can answers (shared state)
    EACH = "each"  # a fault of one engine process: the engine named by the alert's replica
    LEADER = "leader"  # the leader only (it alone writes the shared trade state)
    NOBODY = "nobody"  # needs a human: never issued, the notification says so


@dataclass(frozen=True)
class ActionSpec:
    name: str
    does: str  # what the engine does, as the audit and the notification say it
    scope: Scope
    on_by_default: bool
    why: str  # why it is on or off by default
    undo: str | None = None  # run when the alert resolves (a reversible action)

    @property
    def automatic(self) -> bool:
        return self.scope is not Scope.NOBODY


_ACTIONS = (
    ActionSpec(
        "restart_instance",
        "restarts the failed terminal instance through its engine's supervisor",
        Scope.ANY,
        True,
        "a failed instance serves nothing; its supervisor restarts it as on a crash",
    ),
    ActionSpec(
        "stop_instance",
        "stops the instance that keeps failing to recover",
        Scope.ANY,
        False,
        "takes capacity away; an operator decides whether to run without it",
    ),
    ActionSpec(
        "reconnect_redis",
        "drops and re-opens the engine's Redis connections",
        Scope.EACH,
        True,
        "idempotent; a stale connection pool is the usual cause and nothing is lost",
    ),
    ActionSpec(
        "reconnect_broker",
        "disconnects and reconnects the engine's broker session",
        Scope.EACH,
        True,
        "the fence and the broker lookup make an order in flight safe across a reconnect",
    ),
    ActionSpec(
        "throttle_intake",
        "pauses the intake of new signals on every engine (signals wait in the stream)",
        Scope.ANY,
        False,
        "signals that wait past their TTL expire unexecuted: a missed signal costs money",
        undo="resume_intake",
    ),
    ActionSpec(
        "stop_duckdb_writes",
        "stops DuckDB writes; results wait in the result stream until writes resume",
        Scope.EACH,
        True,
        "nothing is lost (results stay in the stream) and a full disk cannot corrupt the file",
        undo="resume_duckdb_writes",
    ),
    ActionSpec(
        "resync_state",
        "rebuilds the trade state of accounts Redis lost from their fills in DuckDB",
        Scope.LEADER,
        True,
        "only lost accounts are written, between two signals, from every fill DuckDB holds; "
        "an account it lacks fills for is left alone",
    ),
    ActionSpec(
        "retry_result_sync",
        "re-reads the results the store has not written yet and retries them now",
        Scope.EACH,
        True,
        "a retry of writes that are idempotent by signal id",
    ),
    ActionSpec(
        "demote_leader",
        "the leader steps down gracefully (drains its order in flight, releases its lease)",
        Scope.LEADER,
        False,
        "a failover pauses execution for a lease period; only for a fault local to the leader",
    ),
    ActionSpec(
        "restart_redis",
        "none: restarting a Redis loses what it has not persisted",
        Scope.NOBODY,
        False,
        "an operator must choose between losing data and waiting",
    ),
)

# The undo actions, run by the engines but never named by a rule.
UNDO_ACTIONS = ("resume_intake", "resume_duckdb_writes")
REGISTRY: dict[str, ActionSpec] = {a.name: a for a in _ACTIONS}
# What the engines must be able to run: every automatic action and every undo.
ENGINE_ACTIONS = tuple(sorted({a.name for a in _ACTIONS if a.automatic} | set(UNDO_ACTIONS)))


class UnknownAction(KeyError):
    """An ``action`` annotation naming no registered action."""


def action_spec(name: str) -> ActionSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownAction(name) from None


def on_by_default() -> list[str]:
    return [a.name for a in _ACTIONS if a.on_by_default]
