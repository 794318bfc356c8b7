"""``tradeguard ha status``: who leads, with which epoch, and how each replica is doing."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from tradeguard.bus.connection import CONNECTION_ERRORS
from tradeguard.ha.ledger import Ledger
from tradeguard.ha.records import Leadership, ReplicaBeat


@dataclass
class ClusterStatus:
    leadership: Leadership
    replicas: list[ReplicaBeat]
    redis_holder: str | None
    redis_reachable: bool

    @property
    def db_leader(self) -> str | None:
        return None if self.leadership.expired else self.leadership.holder

    @property
    def split_brain(self) -> bool:
        return self.redis_reachable and self.redis_holder != self.db_leader

    @property
    def mode(self) -> str:
        return "normal" if self.redis_reachable else "db_only"


def read_status(ledger: Ledger, redis: Redis, lease_key: str) -> ClusterStatus:
    """Read the ledger (raises LedgerUnavailable) and the Redis lease (best effort)."""
    leadership = ledger.read()
    replicas = ledger.replicas()
    try:
        raw = redis.get(lease_key)
        holder = None if raw is None else raw.decode().split("|", 1)[0]
        reachable = True
    except CONNECTION_ERRORS:
        holder, reachable = None, False
    return ClusterStatus(leadership, replicas, holder, reachable)
