"""HA failover time with the shipped timing (lease TTL 5 s, renew every 1 s, deadline 3 s).

Three ``tradeguard coordinator`` replicas share one Redis, one ledger (SQLite by default,
``--ledger postgresql`` for a throwaway PostgreSQL) and one broker book, under a steady 20
signals/s. The benchmark SIGKILLs the leader ``--kills`` times (restarting it as a follower
after each failover) and SIGTERMs it ``--switchovers`` times, and prints:

- kill -> new leader: from the SIGKILL to a surviving replica's ``/coordinator/status`` showing
  ``role=leader`` with ``may_execute`` (polled every 10 ms);
- kill -> first fenced action: from the SIGKILL to the first ledger action written under the
  new epoch (the new leader's first accepted fenced write, on the database's clock);
- graceful switchover: from the SIGTERM to a successor's status showing it leads.

The bound for a crash is TTL + renew interval = 6 s: the dead leader's lease runs out at most one
TTL after its last renewal, and a follower notices at its next tick. With 30 samples p99 is the
largest but one. Reference points with their projects' defaults: Patroni (ttl 30 s, loop_wait
10 s) fails over in about 30-40 s; client-go leader election (LeaseDuration 15 s, RenewDeadline
10 s, RetryPeriod 2 s) in about 15-17 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.bus.signal_stream import SignalStream
from tradeguard.engine.generator import GeneratorConfig, SignalGenerator
from tradeguard.process import ManagedProcess, free_port, wait_until
from tradeguard.process.services import PostgresServer, RedisServer

TTL, RENEW, DEADLINE = 5.0, 1.0, 3.0  # the shipped defaults, passed explicitly
BOUND = TTL + RENEW


def quantile(samples: list[float], q: float) -> float:
    data = sorted(samples)
    return data[min(len(data) - 1, int(q * len(data)))]


class Replica:
    def __init__(self, rid: str, workdir: Path, redis_url: str, ledger_url: str, book: Path):
        self.id = rid
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(timeout=0.5)
        argv = [
            sys.executable,
            *("-m", "tradeguard.cli", "coordinator", "--replica-id", rid),
            *("--ledger-url", ledger_url, "--redis-url", redis_url),
            *("--metrics-port", str(self.port), "--broker-book", str(book), "--no-persist"),
            *("--ttl", str(TTL), "--renew-interval", str(RENEW)),
            *("--renew-deadline", str(DEADLINE)),
        ]
        self.proc = ManagedProcess(
            rid,
            argv,
            workdir / rid,
            env={**os.environ, "TRADEGUARD_RECLAIM_IDLE_SECONDS": "1"},
            health=lambda: self.http.get(f"{self.base}/healthz").is_success,
        )

    def status(self) -> dict[str, Any] | None:
        if not self.proc.running:
            return None
        try:
            data: dict[str, Any] = self.http.get(f"{self.base}/coordinator/status").json()
            return data
        except (httpx.HTTPError, ValueError):
            return None

    def leads(self) -> bool:
        st = self.status()
        return st is not None and st["role"] == "leader" and bool(st["may_execute"])


class FirstAction:
    """The first ledger action written under a given epoch, on the database's clock."""

    def __init__(self, ledger_url: str) -> None:
        self.url = ledger_url

    def since(self, epoch: int, after: float) -> float | None:
        # Intents created by the new leader carry its epoch and their creation time; intents it
        # took over from the old leader carry its epoch and the time it last touched them.
        sql = (
            "SELECT MIN(CASE WHEN created_at >= {p} THEN created_at ELSE updated_at END) "
            "FROM actions WHERE epoch = {p}"
        )
        if self.url.startswith("sqlite:///"):
            with sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=10) as conn:
                row = conn.execute(sql.format(p="?"), (after, epoch)).fetchone()
        else:
            import psycopg

            with psycopg.connect(self.url) as conn:
                row = conn.execute(sql.format(p="%s"), (after, epoch)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def wait_first(self, epoch: int, after: float, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        while (first := self.since(epoch, after)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no fenced action under epoch {epoch} within {timeout}s")
            time.sleep(0.02)
        return first

    def epoch(self) -> int:
        sql = "SELECT epoch FROM leadership WHERE id = 1"
        if self.url.startswith("sqlite:///"):
            with sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=10) as conn:
                return int(conn.execute(sql).fetchone()[0])
        import psycopg

        with psycopg.connect(self.url) as conn:
            row = conn.execute(sql).fetchone()
            assert row is not None
            return int(row[0])


def _pg_answers(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, connect_timeout=1) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def the_leader(replicas: list[Replica], timeout: float = 30.0) -> Replica:
    found: list[Replica] = []

    def one() -> bool:
        found[:] = [r for r in replicas if r.leads()]
        return len(found) == 1

    wait_until(one, timeout, "exactly one leader", interval=0.01)
    return found[0]


def summary(name: str, samples: list[float], bound: float | None = None) -> None:
    line = (
        f"  {name:<30} n={len(samples):<3} p50 {quantile(samples, 0.5):5.2f}s  "
        f"p99 {quantile(samples, 0.99):5.2f}s  max {max(samples):5.2f}s"
    )
    if bound is not None:
        within = sum(1 for s in samples if s <= bound)
        line += f"  ({within}/{len(samples)} within {bound:.0f}s)"
    print(line)


def run(kills: int, switchovers: int, ledger: str, workdir: Path) -> dict[str, float]:
    redis = RedisServer(workdir / "redis", durable=True).start()
    pg: PostgresServer | None = None
    replicas: list[Replica] = []
    generator: SignalGenerator | None = None
    try:
        if ledger == "postgresql":
            pg = PostgresServer(workdir / "pg").start()
            ledger_url = pg.url
            wait_until(lambda: _pg_answers(ledger_url), 30, "PostgreSQL to accept connections")
        else:
            ledger_url = f"sqlite:///{workdir / 'ledger.sqlite'}"
        book = workdir / "book.sqlite"
        replicas = [Replica(f"r{i}", workdir, redis.url, ledger_url, book) for i in (1, 2, 3)]
        for r in replicas:
            r.proc.start()
        ledger_reads = FirstAction(ledger_url)
        generator = SignalGenerator(
            SignalStream(make_client(redis.url, socket_timeout=0.5), Keys()),
            GeneratorConfig(rate=20.0, seed=3),
        )
        generator.start()

        to_leader: list[float] = []
        to_action: list[float] = []
        for i in range(kills):
            leader = the_leader(replicas)
            epoch = ledger_reads.epoch()
            others = [r for r in replicas if r is not leader]
            killed_wall, killed = time.time(), time.monotonic()
            leader.proc.kill()
            successor = the_leader(others, BOUND + 10)
            to_leader.append(time.monotonic() - killed)
            to_action.append(ledger_reads.wait_first(epoch + 1, killed_wall) - killed_wall)
            print(
                f"  kill {i + 1:>2}/{kills}: {leader.id} -> {successor.id} leads after "
                f"{to_leader[-1]:.2f}s, first fenced action after {to_action[-1]:.2f}s",
                flush=True,
            )
            leader.proc.start()  # back as a follower for the next round

        handovers: list[float] = []
        for i in range(switchovers):
            leader = the_leader(replicas)
            others = [r for r in replicas if r is not leader]
            asked = time.monotonic()
            stopper = threading.Thread(target=leader.proc.stop)
            stopper.start()  # SIGTERM; the leader releases its lease before exiting
            successor = the_leader(others, BOUND + 10)
            handovers.append(time.monotonic() - asked)
            stopper.join()
            print(
                f"  switchover {i + 1:>2}/{switchovers}: {leader.id} -> {successor.id} after "
                f"{handovers[-1]:.2f}s",
                flush=True,
            )
            leader.proc.start()
        generator.stop()

        print(
            f"\nfailover, {ledger} ledger, TTL {TTL:.0f}s / renew {RENEW:.0f}s / deadline "
            f"{DEADLINE:.0f}s, bound TTL + renew interval = {BOUND:.0f}s:"
        )
        out: dict[str, float] = {}
        if to_leader:
            summary("SIGKILL -> new leader (status)", to_leader, BOUND)
            summary("SIGKILL -> first fenced action", to_action, BOUND)
            out.update(
                failover_p50=quantile(to_leader, 0.5),
                failover_p99=quantile(to_leader, 0.99),
                first_action_p50=quantile(to_action, 0.5),
            )
        if handovers:
            summary("SIGTERM -> successor leads", handovers, RENEW)
            out.update(switchover_p50=quantile(handovers, 0.5))
        print(
            "  reference (their defaults): Patroni ttl 30 s -> about 30-40 s; "
            "client-go lease 15 s -> about 15-17 s"
        )
        return out
    finally:
        if generator is not None:
            generator.stop()
        for r in replicas:
            r.proc.stop(5)
        redis.stop()
        if pg is not None:
            pg.stop()
            shutil.rmtree(pg.workdir, ignore_errors=True)


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=30, help="SIGKILLs of the leader")
    parser.add_argument("--switchovers", type=int, default=10, help="SIGTERMs of the leader")
    parser.add_argument("--ledger", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args([]) if __name__ != "__main__" else parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tradeguard-failover-") as tmp:
        return run(args.kills, args.switchovers, args.ledger, Path(tmp))


if __name__ == "__main__":
    main()
