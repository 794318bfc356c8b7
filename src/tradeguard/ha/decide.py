"""What the HA loop does next: one pure function of what a tick saw.

Each tick reads the world once into a :class:`Snapshot` (the ledger, the Redis lease, our own
engine, the clock), :func:`decide` turns it into a :class:`Decision`, and the coordinator carries
the decision out. Nothing here talks to a database or to Redis, nor reads a clock: every case
is a unit test away, the way Patroni's ``ha.py`` is.

How the tick reads (so the reads cost what they did before the loop was split in two):

* a leader whose term is alive (last ledger renewal younger than ``renew_deadline``) and whose
  engine is able **renews** the ledger lease; the renew is its read. While the ledger did not
  refuse the renew, it also renews the Redis key, and reads the key's holder only when that
  renew fails;
* anyone else (a follower, or a leader about to leave) **reads** the leadership row and the
  Redis key's holder.

The decision has three parts: the :class:`Action` on leadership, the :class:`KeyAction` on the
Redis key, and the :class:`Mode` (which stores answered), with the value of the split-brain
gauge. The ledger is the authority throughout; the Redis lease is only a failure detector.

A replica that stepped down on request (``Coordinator.step_down``: the ``demote_leader``
remediation, a switchover) **holds off**: until ``hold_until`` it does not acquire a free lease,
so another eligible replica takes it; a demotion that the demoted replica wins straight back
(it is often the best or only candidate) would move nothing. The hold-off ends early once
another replica leads; if none has taken over by ``hold_until``, it may lead again
(availability first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from tradeguard.bus.keys import Keys
from tradeguard.errors import ConfigError
from tradeguard.ha.records import Leadership


class Role(StrEnum):
    FOLLOWER = "follower"
    LEADER = "leader"


class Mode(StrEnum):
    NORMAL = "normal"  # ledger and Redis both answer
    DB_ONLY = "db_only"  # Redis unreachable: the ledger alone decides
    NO_DB = "no_db"  # ledger unreachable: nobody may lead


@dataclass
class HAConfig:
    replica_id: str
    ttl: float = 5.0
    renew_interval: float = 1.0
    renew_deadline: float = 3.0
    lease_key: str = Keys().leader
    # Seconds a replica that stepped down on request leaves a free lease to the others
    # before it may take it again; None: two TTLs (time for a follower's next tick and more).
    hold_off: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.renew_interval < self.renew_deadline < self.ttl:
            raise ConfigError(
                "HA timing needs 0 < renew interval < renew deadline < TTL "
                "(--renew-interval, --renew-deadline, --ttl), got "
                f"{self.renew_interval} / {self.renew_deadline} / {self.ttl}"
            )
        if self.hold_off is not None and not self.hold_off >= 0:
            raise ConfigError(f"the step-down hold-off must be >= 0 seconds, got {self.hold_off}")

    @property
    def hold_off_seconds(self) -> float:
        """How long a requested step-down keeps this replica from acquiring."""
        return 2 * self.ttl if self.hold_off is None else self.hold_off


def term_alive(last_db_ok: float, now: float, config: HAConfig) -> bool:
    """A leader's term is alive while its last ledger renewal (``last_db_ok``, taken before the
    renew call) is younger than the renew deadline, which is below the lease's TTL: past it, a
    successor may exist by the time our next order arrives."""
    return now - last_db_ok < config.renew_deadline


def renews(role: Role, able: bool, last_db_ok: float, now: float, config: HAConfig) -> bool:
    """Whether this tick renews (and thereby reads) the leases, or only reads them."""
    return role is Role.LEADER and able and term_alive(last_db_ok, now, config)


@dataclass(frozen=True)
class Snapshot:
    """What one tick saw, read once before deciding.

    Ledger: a renewing leader has ``renewed`` (the renew's answer), anyone else ``row`` (the
    leadership row); ``ledger_error`` says the ledger did not answer. Redis: ``redis_holder``
    is the replica the key names (ours when ``redis_renewed``); ``redis_error`` says Redis did
    not answer.
    """

    replica: str
    role: Role
    now: float  # boot clock, read before the ledger call
    last_db_ok: float  # boot clock before the last tick whose ledger calls all succeeded
    epoch: int = 0  # ours while leading; the last seen otherwise
    token: str = ""  # this term's token (ledger row and Redis key value)
    eligible: bool = True  # start-up recovery succeeded
    able: bool = True  # the engine behind us can work
    hold_until: float = float("-inf")  # boot clock: no acquiring before (a requested step-down)
    row: Leadership | None = None
    renewed: bool | None = None
    ledger_error: str | None = None
    redis_holder: str | None = None
    redis_renewed: bool | None = None
    redis_error: str | None = None

    @property
    def ledger_ok(self) -> bool:
        return self.ledger_error is None

    @property
    def redis_ok(self) -> bool:
        return self.redis_error is None

    @property
    def ledger_leader(self) -> str | None:
        """Whom the leadership row names while its lease runs (None: nobody, or not read)."""
        if self.row is None or self.row.expired:
            return None
        return self.row.holder

    def lease_ours(self) -> bool | None:
        """Whether the ledger lease is still ours: True/False, or None when the ledger did not
        say (no answer)."""
        if self.renewed is not None:
            return self.renewed
        if self.row is None:
            return None
        row = self.row
        return (
            not row.expired
            and row.epoch == self.epoch
            and row.holder == self.replica
            and row.token == self.token
        )


class Action(StrEnum):
    """What happens to leadership."""

    ACQUIRE = "acquire"  # follower; the lease expired; eligible and able: try to take it
    LEAD = "lead"  # leader; the renew succeeded: keep leading
    FOLLOW = "follow"  # someone holds a running lease: wait
    NO_LEADER = "no_leader"  # the lease expired but we may not take it (not eligible or able)
    HOLD_OFF = "hold_off"  # the lease expired; we stepped down on request: leave it to others
    DEMOTE_DEADLINE = "demote_deadline"  # frozen or cut off past the deadline: release nothing
    DEMOTE_LOST = "demote_lost"  # the ledger says the lease is no longer ours: release nothing
    STEP_DOWN_ENGINE = "step_down_engine"  # engine dead: release the lease now, no drain
    NO_DB = "no_db"  # ledger unreachable: a leader holds until the deadline, nobody acquires


class KeyAction(StrEnum):
    """What happens to the Redis key."""

    KEEP = "keep"  # nothing to do: ours and renewed, someone else's, or Redis did not answer
    RECLAIM = "reclaim"  # split-brain: the ledger names us, Redis does not; take it back
    DROP = "drop"  # we hold the key without the ledger's blessing: give it up


@dataclass(frozen=True)
class Decision:
    action: Action
    key: KeyAction = KeyAction.KEEP
    mode: Mode = Mode.NORMAL
    split_brain: bool | None = None  # the gauge's new value; None leaves it as it is
    why: str = field(default="", compare=False)

    def __str__(self) -> str:
        text = self.action.value
        if self.key is KeyAction.RECLAIM:
            text += " + reclaim the Redis key (split-brain)"
        elif self.key is KeyAction.DROP:
            text += " + drop our Redis key"
        if self.mode is not Mode.NORMAL:
            text += f" [{self.mode.value}]"
        return text


def decide(s: Snapshot, config: HAConfig) -> Decision:
    """The next step for the replica that took snapshot ``s``; pure."""
    mode = _mode(s)
    if s.role is Role.LEADER:
        return _as_leader(s, config, mode)
    return _as_follower(s, mode)


def _mode(s: Snapshot) -> Mode:
    if not s.ledger_ok:
        return Mode.NO_DB
    return Mode.NORMAL if s.redis_ok else Mode.DB_ONLY


def _as_leader(s: Snapshot, config: HAConfig, mode: Mode) -> Decision:
    if not term_alive(s.last_db_ok, s.now, config):
        # Frozen or cut off: whatever the ledger says now, the term is over; a successor may
        # already hold the next epoch. The Redis key goes with the demotion.
        age = s.now - s.last_db_ok
        why = f"last ledger renewal {age:.2f}s ago, deadline {config.renew_deadline:g}s"
        return Decision(Action.DEMOTE_DEADLINE, mode=mode, split_brain=False, why=why)
    ours = s.lease_ours()
    if ours is False:
        why = f"the ledger lease is no longer ours (epoch {s.epoch})"
        return Decision(Action.DEMOTE_LOST, mode=mode, split_brain=False, why=why)
    if not s.able:
        # Leading without a working engine would leave every signal pending: hand over now.
        return Decision(
            Action.STEP_DOWN_ENGINE, mode=mode, split_brain=False, why="the engine cannot work"
        )
    if ours is None:
        action = Action.NO_DB
        left = config.renew_deadline - (s.now - s.last_db_ok)
        why = f"ledger unavailable ({s.ledger_error}); leading {left:.2f}s more at most"
    else:
        action, why = Action.LEAD, f"ledger lease renewed (epoch {s.epoch})"
    if not s.redis_ok:
        return Decision(action, mode=mode, why=f"{why}; Redis unavailable ({s.redis_error})")
    if s.redis_renewed:
        return Decision(action, mode=mode, split_brain=False, why=why)
    # The ledger says we lead, Redis disagrees (another holder, or the key vanished because
    # Redis restarted empty): the ledger wins.
    why = f"{why}; Redis names {s.redis_holder}, taking the key back"
    return Decision(action, KeyAction.RECLAIM, mode, split_brain=True, why=why)


def _as_follower(s: Snapshot, mode: Mode) -> Decision:
    if s.row is None or not s.ledger_ok:
        action, why = Action.NO_DB, f"ledger unavailable ({s.ledger_error}); nobody may lead"
    elif s.row.expired:
        if s.eligible and s.able and s.now < s.hold_until:
            left = s.hold_until - s.now
            action = Action.HOLD_OFF
            why = (
                f"the lease of epoch {s.row.epoch} expired; we stepped down on request, "
                f"leaving it to another replica for {left:.2f}s more"
            )
        elif s.eligible and s.able:
            action, why = Action.ACQUIRE, f"the lease of epoch {s.row.epoch} expired"
        else:
            reason = "start-up recovery failed" if not s.eligible else "the engine cannot work"
            action, why = Action.NO_LEADER, f"the lease expired; we may not lead: {reason}"
    else:
        action = Action.FOLLOW
        why = f"{s.row.holder} leads with epoch {s.row.epoch}"
    if not s.redis_ok:
        return Decision(action, mode=mode, why=f"{why}; Redis unavailable ({s.redis_error})")
    if action is Action.ACQUIRE:
        # Taking the lead claims the key; the gauge follows whether that works.
        return Decision(action, mode=mode, why=why)
    key = KeyAction.DROP if s.redis_holder == s.replica else KeyAction.KEEP
    if key is KeyAction.DROP:
        why += "; dropping the Redis key we hold without the ledger"
    # A follower cannot fix a mismatch, only show it: the ledger's leader takes its key back.
    mismatch = s.ledger_ok and s.redis_holder is not None and s.redis_holder != s.ledger_leader
    return Decision(action, key, mode, split_brain=mismatch, why=why)


def hold_until_after(s: Snapshot) -> float:
    """The hold-off after this tick: over once another replica leads (the step-down moved
    leadership, which is all it was for); otherwise unchanged, to run out by itself."""
    other = s.ledger_leader
    if s.role is Role.FOLLOWER and other is not None and other != s.replica:
        return float("-inf")
    return s.hold_until
