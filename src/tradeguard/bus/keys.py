"""The Redis key layout (DESIGN.md 3), in one place, under a configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass

from tradeguard.config import DEFAULT_KEY_PREFIX


@dataclass(frozen=True)
class Keys:
    """Key names for every layer; ``prefix`` defaults to ``tg:``."""

    prefix: str = DEFAULT_KEY_PREFIX

    def state(self, account: str) -> str:
        """RTS: one hash per account (balance, equity, positions, leverage)."""
        return f"{self.prefix}state:{account}"

    def instance(self, instance_id: str) -> str:
        """RIS: one hash per terminal/worker instance."""
        return f"{self.prefix}instance:{instance_id}"

    @property
    def instance_events(self) -> str:
        return f"{self.prefix}instance-events"

    @property
    def signals(self) -> str:
        """RTSS: the signal stream."""
        return f"{self.prefix}signals"

    @property
    def signals_dead(self) -> str:
        """RTSS: signals that were not executed, with the reason."""
        return f"{self.prefix}signals:dead"

    def signal_id(self, signal_id: str) -> str:
        """Publish-side uniqueness marker of a signal id (expires after a day)."""
        return f"{self.prefix}signal-id:{signal_id}"

    def intent(self, signal_id: str) -> str:
        """Single-replica fence: the execution state of one signal (intent, then done)."""
        return f"{self.prefix}intent:{signal_id}"

    def applied(self, signal_id: str) -> str:
        """RTS: marks a signal's fill as applied to account state, so a retry cannot apply twice."""
        return f"{self.prefix}applied:{signal_id}"

    def state_check(self) -> str:
        """RTS: the writing engine's last Redis-vs-DuckDB verdict, and its resync answers."""
        return f"{self.prefix}state-check"

    def state_control(self) -> str:
        """RTS: resync requests for the writing engine (``tradeguard state resync``)."""
        return f"{self.prefix}control:state"

    @property
    def commands(self) -> str:
        """RTSS: remediation commands from the responder to the engines (bus/commands.py)."""
        return f"{self.prefix}commands"

    @property
    def remediation_switch(self) -> str:
        """RTSS: actions an operator turned off at run time (bus/commands.py)."""
        return f"{self.prefix}control:remediation"

    def command_answers(self, command_id: str) -> str:
        """RTSS: the engines' answers to one command, a list that expires after a day."""
        return f"{self.prefix}command:{command_id}:answers"

    @property
    def leader(self) -> str:
        """RIS: the leader lease of the engine replicas (the ledger's epoch decides; this key
        is the fast path)."""
        return f"{self.prefix}leader"

    @property
    def results(self) -> str:
        """RTRS: the result stream, trimmed to about 10,000 entries."""
        return f"{self.prefix}results"
