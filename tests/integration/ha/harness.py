"""The HA fault suite's harness: replica processes behind their own proxies, a steady publisher,
and the Jepsen-style final read.

Each replica is a real ``tradeguard coordinator`` process (one whose environment sets
``TRADEGUARD_CRASH_AT`` runs through the test-only engine_crash_hook.py). It reaches Redis and
PostgreSQL only through proxies of its own (tcp_proxy.py), so a test can cut one replica off one
server while the others keep their paths. The test reads a replica's state the way an operator
would: ``/coordinator/status``, ``/coordinator/metrics`` (JSON) and ``/metrics``.

The final read (Jepsen's method): stop publishing, wait (bounded) until the cluster has caught
up, then read the ledger's actions, the broker book's fills and attempts, the result stream and
the dead-letter stream, and compare them with what the publisher was told was accepted.
"""

from __future__ import annotations

import json
import os
import queue
import random
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import httpx
from engine_crash_hook import CRASH_ENV
from prometheus_client.parser import text_string_to_metric_families
from tcp_proxy import TcpProxy

from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.bus.results import RESULT_FIELD
from tradeguard.bus.signal_stream import PublishError, SignalStream
from tradeguard.bus.signals import Signal
from tradeguard.engine.paper import BookFill, SQLiteBook, reference_price
from tradeguard.fencing import position_after
from tradeguard.ha.ledger import Ledger, open_ledger
from tradeguard.process import ManagedProcess, free_port, wait_until
from tradeguard.process.services import RedisServer

KEYS = Keys()
# Runs `tradeguard` with the engine crash point TRADEGUARD_CRASH_AT names armed (test-only).
CRASH_HOOK = Path(__file__).resolve().parents[1] / "engine_crash_hook.py"
GROUP = "engine"  # the engine's consumer group on the signal stream (settings default)


@dataclass(frozen=True)
class Timing:
    """The coordinator's lease timing, passed on the command line, and the engine's send margin
    and broker in-flight time that go with it (environment)."""

    ttl: float
    renew_interval: float
    renew_deadline: float
    send_margin: float = 1.0
    max_in_flight: float = 5.0

    def env(self) -> dict[str, str]:
        return {
            "TRADEGUARD_BROKER_SEND_MARGIN_SECONDS": str(self.send_margin),
            "TRADEGUARD_BROKER_MAX_IN_FLIGHT_SECONDS": str(self.max_in_flight),
        }

    @property
    def failover_bound(self) -> float:
        """A dead leader's lease expires at most ``ttl`` after its last renewal, which came at
        most when it died; a follower notices on its next tick, at most one interval later."""
        return self.ttl + self.renew_interval

    def args(self) -> list[str]:
        return [
            *("--ttl", str(self.ttl)),
            *("--renew-interval", str(self.renew_interval)),
            *("--renew-deadline", str(self.renew_deadline)),
        ]


DEFAULTS = Timing(ttl=5.0, renew_interval=1.0, renew_deadline=3.0)  # the shipped defaults
# Lowered timing, ONLY for tests about mechanics (who may write, what gets rejected), never for
# the ones that measure failover time against the defaults.
# The broker's in-flight time follows: a new leader looks up an earlier term's open orders 1 s
# after it took over (the paper broker raises it to what its knobs need, never lowers it).
FAST = Timing(ttl=2.0, renew_interval=0.25, renew_deadline=1.0, send_margin=0.5, max_in_flight=1.0)


def via(url: str, port: int) -> str:
    """``url`` with its port replaced (a PostgreSQL URL pointed at a proxy)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}:{port}"))


class Spawner:
    """Runs process starts on one thread that lives as long as the test process.

    ManagedProcess asks Linux to SIGTERM a child when its parent dies (PR_SET_PDEATHSIG), and
    for Linux the parent is the *thread* that forked it: a replica restarted from a short-lived
    thread would be stopped as soon as that thread ended. Restarts that must not block the
    caller (the soak's nemesis) go through here instead.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], object], Future[object]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], object]) -> Future[object]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="spawner", daemon=True)
                self._thread.start()
        future: Future[object] = Future()
        self._jobs.put((job, future))
        return future

    def _run(self) -> None:
        while True:  # never returns: its children must not see it end
            job, future = self._jobs.get()
            try:
                future.set_result(job())
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)


SPAWNER = Spawner()


class Replica:
    """One coordinator process, its proxies and its HTTP endpoints."""

    def __init__(
        self,
        replica_id: str,
        workdir: Path,
        redis_port: int,
        ledger_url: str,
        book: Path,
        timing: Timing,
        broker_latency: float,
        env: dict[str, str] | None = None,
        broker_knobs: dict[str, float] | None = None,
        persist: bool = False,
    ) -> None:
        """``persist`` runs the replica's DuckDB store (``duckdb_path``); by default it runs
        with ``--no-persist``, as the suite's tests about execution need no store."""
        self.id = replica_id
        # `tradeguard coordinator` names the file after the replica, next to TRADEGUARD_DUCKDB_PATH.
        self.duckdb_path: Path | None = workdir / replica_id / f"{replica_id}.duckdb"
        store_env = {"TRADEGUARD_DUCKDB_PATH": str(workdir / replica_id / "tradeguard.duckdb")}
        if not persist:
            self.duckdb_path, store_env = None, {}
        self.port = free_port()
        self.redis_proxy = TcpProxy(redis_port, name=f"{replica_id}-redis").start()
        self.db_proxy: TcpProxy | None = None
        url = ledger_url
        if ledger_url.startswith("postgresql://"):
            pg_port = urlsplit(ledger_url).port or 5432
            self.db_proxy = TcpProxy(pg_port, name=f"{replica_id}-db").start()
            url = via(ledger_url, self.db_proxy.port)
        full_env = {
            **os.environ,
            "TRADEGUARD_RECLAIM_IDLE_SECONDS": "1",
            **store_env,
            **timing.env(),
            **(env or {}),
        }
        # A crash point is test-only code: only a replica that asks for one runs through the
        # launcher that arms it; every other one runs the entry point as deployed.
        entry = (str(CRASH_HOOK),) if CRASH_ENV in full_env else ("-m", "tradeguard.cli")
        argv = [
            sys.executable,
            *entry,
            "coordinator",
            *("--replica-id", replica_id),
            *("--ledger-url", url),
            *("--redis-url", f"redis://127.0.0.1:{self.redis_proxy.port}/0"),
            *("--metrics-port", str(self.port)),
            *("--broker-book", str(book)),
            *("--broker-latency", str(broker_latency)),
            *(() if persist else ("--no-persist",)),
            *timing.args(),
            *(a for k, v in (broker_knobs or {}).items() for a in ("--broker-knob", f"{k}={v}")),
        ]
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = ManagedProcess(
            replica_id,
            argv,
            workdir / replica_id,
            env=full_env,
            health=self._healthy,
        )
        self._http = httpx.Client(timeout=0.5)

    # ---- process ------------------------------------------------------------------------
    def _healthy(self) -> bool:
        return self._http.get(f"{self.base}/healthz").is_success

    def start(self) -> Self:
        self.proc.start()
        return self

    def kill(self) -> None:
        self.proc.kill()

    def pause(self) -> None:
        self.proc.pause()

    def resume(self) -> None:
        self.proc.resume()

    def stop(self, timeout: float = 10.0) -> None:
        self.proc.stop(timeout)

    @property
    def running(self) -> bool:
        return self.proc.running

    def heal(self) -> None:
        """Every proxy of this replica back to ``pass``."""
        for proxy in self.proxies:
            proxy.pass_through()

    @property
    def proxies(self) -> list[TcpProxy]:
        return [p for p in (self.redis_proxy, self.db_proxy) if p is not None]

    def close(self) -> None:
        self.heal()
        self.proc.stop(5)
        for proxy in self.proxies:
            proxy.stop()
        self._http.close()

    # ---- what it says about itself --------------------------------------------------------
    def _json(self, path: str) -> dict[str, Any] | None:
        if not self.proc.running or self.proc.paused:
            return None
        try:
            reply = self._http.get(self.base + path)
        except httpx.HTTPError:
            return None
        if not reply.is_success:
            return None
        data: dict[str, Any] = reply.json()
        return data

    def status(self) -> dict[str, Any] | None:
        """``/coordinator/status``, or None when the process is down, paused or not answering."""
        return self._json("/coordinator/status")

    def figures(self) -> dict[str, Any] | None:
        """``/coordinator/metrics``: seed 004's get_metrics() dictionary."""
        return self._json("/coordinator/metrics")

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """``/metrics`` as {(sample name, labels): value}; empty when not answering."""
        if not self.proc.running or self.proc.paused:
            return {}
        try:
            text = self._http.get(self.base + "/metrics").text
        except httpx.HTTPError:
            return {}
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = float(s.value)
        return samples

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics().get((name, frozenset(labels.items())))

    def leads(self) -> bool:
        """Leader by its own account, and allowed to execute right now."""
        st = self.status()
        return st is not None and st["role"] == "leader" and bool(st["may_execute"])

    def role(self) -> str | None:
        st = self.status()
        return None if st is None else str(st["role"])

    def __repr__(self) -> str:
        return f"<Replica {self.id} {self.proc!r}>"


class Cluster:
    """N replicas sharing one Redis (each through its proxy), one ledger and one broker book."""

    def __init__(
        self,
        workdir: Path,
        redis: RedisServer,
        ledger_url: str,
        size: int = 3,
        timing: Timing = DEFAULTS,
        broker_latency: float = 0.002,
        env: dict[str, dict[str, str]] | None = None,
        broker_knobs: dict[str, float] | None = None,
        persist: bool = False,
    ) -> None:
        """``broker_knobs`` go to every replica's paper broker (strict unless ``forgiving``);
        ``persist`` gives each replica its DuckDB store, a file of its own under ``workdir``."""
        self.workdir = workdir
        self.redis = redis
        self.ledger_url = ledger_url
        self.timing = timing
        self.book_path = workdir / "book.sqlite"
        SQLiteBook(self.book_path)  # create the tables before any replica races for them
        self.replicas: dict[str, Replica] = {}
        for i in range(1, size + 1):
            rid = f"r{i}"
            self.replicas[rid] = Replica(
                rid,
                workdir,
                redis.port,
                ledger_url,
                self.book_path,
                timing,
                broker_latency,
                (env or {}).get(rid),
                broker_knobs,
                persist,
            )
        self.ledger: Ledger = open_ledger(ledger_url, timeout=5.0)  # the test's own, direct path
        self.redis_client = make_client(redis.url, socket_timeout=2.0)
        self.results_seen: Counter[str] = Counter()  # results read before Redis lost them

    def __getitem__(self, replica_id: str) -> Replica:
        return self.replicas[replica_id]

    def __iter__(self) -> Iterator[Replica]:
        return iter(self.replicas.values())

    def start(self, *ids: str) -> Self:
        for rid in ids or tuple(self.replicas):
            self.replicas[rid].start()
        return self

    def close(self) -> None:
        # In parallel: each graceful stop takes up to a second.
        closers = [threading.Thread(target=r.close) for r in self.replicas.values()]
        for thread in closers:
            thread.start()
        for thread in closers:
            thread.join(30)
        self.ledger.close()
        self.redis_client.close()

    # ---- leadership -----------------------------------------------------------------------
    def leaders(self, among: Iterable[Replica] | None = None) -> list[Replica]:
        return [r for r in (among or self.replicas.values()) if r.leads()]

    def wait_leader(
        self, timeout: float, among: Iterable[Replica] | None = None, interval: float = 0.02
    ) -> Replica:
        """The one replica that leads, once exactly one does (among ``among``, if given)."""
        pool = list(among or self.replicas.values())
        found: list[Replica] = []

        def one() -> bool:
            found[:] = self.leaders(pool)
            return len(found) == 1

        wait_until(one, timeout, f"one leader among {[r.id for r in pool]}", interval)
        return found[0]

    def epoch(self) -> int:
        return self.ledger.read().epoch

    def holder(self) -> str | None:
        record = self.ledger.read()
        return None if record.expired else record.holder

    # ---- reads of what happened -------------------------------------------------------------
    def _book(self) -> sqlite3.Connection:
        return sqlite3.connect(self.book_path, timeout=30)

    def fills(self) -> dict[str, float]:
        """Signal id -> when the broker first executed it (of the fills executed by now: the
        book holds an order's fill from the send on, dated when the venue executes it)."""
        out: dict[str, float] = {}
        for fill in SQLiteBook(self.book_path).all_fills(time.time()):
            out.setdefault(fill.client_order_id, fill.executed_at)
        return out

    def book_fills(self) -> list[BookFill]:
        """Every execution at the broker, in order (a strict broker fills every send)."""
        return SQLiteBook(self.book_path).all_fills()

    def attempts(self) -> dict[str, list[float]]:
        """Signal id -> when each order for it reached the broker."""
        out: dict[str, list[float]] = {}
        with self._book() as conn:
            for cid, ts in conn.execute("SELECT client_order_id, ts FROM attempts ORDER BY ts"):
                out.setdefault(cid, []).append(float(ts))
        return out

    def results(self) -> Counter[str]:
        """Signal id -> result entries on the result stream (plus those read earlier)."""
        entries = self.redis_client.xrange(KEYS.results)
        seen = Counter(json.loads(f[RESULT_FIELD])["signal_id"] for _id, f in entries)
        return seen + self.results_seen

    def remember_results(self) -> None:
        """Keep what the result stream holds now: call it just before Redis loses its data."""
        entries = self.redis_client.xrange(KEYS.results)
        self.results_seen += Counter(json.loads(f[RESULT_FIELD])["signal_id"] for _id, f in entries)

    def dead_letters(self) -> dict[str, str]:
        entries = self.redis_client.xrange(KEYS.signals_dead)
        return {f[b"signal_id"].decode(): f[b"reason"].decode() for _id, f in entries}

    def pending(self) -> int:
        try:
            return int(self.redis_client.xpending(KEYS.signals, GROUP)["pending"])
        except Exception:  # no group yet (nothing consumed since Redis started empty)
            return 0

    def done(self) -> set[str]:
        return {sid for sid, (state, _s, _e) in self.ledger.actions().items() if state == "done"}


class Publisher:
    """A strategy publishing at a steady rate straight into Redis (no proxy in its path).

    ``accepted`` holds the ids Redis acknowledged; ``indeterminate`` those whose publish failed
    in a way that may or may not have reached Redis (Jepsen's "info" operations): they may be
    executed, but nobody was promised they would be.
    """

    def __init__(self, redis_url: str, rate: float = 20.0, prefix: str = "s", seed: int = 7):
        self.stream = SignalStream(make_client(redis_url, socket_timeout=0.5, retries=0), KEYS)
        self.rate = rate
        self.prefix = prefix
        self.accepted: list[str] = []
        self.indeterminate: set[str] = set()
        self.errors = 0
        self._rng = random.Random(seed)
        self._n = 0
        self._lock = threading.Lock()  # held around each publish, so pause() means "idle"
        self._stop = threading.Event()
        self._go = threading.Event()
        self._go.set()
        self._thread: threading.Thread | None = None

    def make(self, signal_id: str | None = None, created_at: float | None = None) -> Signal:
        self._n += 1
        symbol = self._rng.choice(("EURUSD", "GBPUSD", "XAUUSD"))
        return Signal(
            account=self._rng.choice(("acct-1", "acct-2")),
            symbol=symbol,
            action=self._rng.choice(("buy", "sell")),
            volume=round(self._rng.uniform(0.01, 2.0), 2),
            price=round(reference_price(symbol), 5),
            signal_id=signal_id or f"{self.prefix}-{self._n:06d}",
            created_at=time.time() if created_at is None else created_at,
            strategy="ha-suite",
        )

    def publish(self, signal_id: str | None = None, created_at: float | None = None) -> str | None:
        """Publish one signal now (created now, or at ``created_at``); return its id if Redis
        accepted it."""
        with self._lock:
            signal = self.make(signal_id, created_at)
            try:
                self.stream.publish(signal)
            except PublishError:
                self.errors += 1
                self.indeterminate.add(signal.signal_id)
                return None
            self.accepted.append(signal.signal_id)
            return signal.signal_id

    def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            if not self._go.is_set():
                self._go.wait(0.1)
                next_at = time.monotonic()
                continue
            self.publish()
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -1.0:  # fell behind (Redis down): do not burst
                next_at = time.monotonic()

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        """Stop publishing; returns once no publish is in flight."""
        self._go.clear()
        with self._lock:
            pass

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> None:
        self._stop.set()
        self._go.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def wait_executed(self, cluster: Cluster, n: int, timeout: float) -> None:
        """Until at least ``n`` accepted signals have a fill at the broker."""
        wait_until(
            lambda: len(set(self.accepted) & set(cluster.fills())) >= n,
            timeout,
            f"{n} signals executed",
            interval=0.1,
        )

    def wait_caught_up(self, cluster: Cluster, timeout: float) -> None:
        """Until every signal accepted so far is executed and recorded as done."""
        wanted = set(self.accepted)
        wait_until(
            lambda: wanted <= set(cluster.fills()) and wanted <= cluster.done(),
            timeout,
            f"all {len(wanted)} accepted signals executed and recorded",
            interval=0.1,
        )


@dataclass
class JepsenReport:
    """The final read, per Jepsen: what was promised against what happened.

    lost
        accepted at publish, never executed by the broker.
    unexpected
        executed, recorded or reported, but never published (nor even attempted).
    duplicate
        more than one fill at the broker for one signal id: the strict broker executes every
        order it gets, so a second send is a second execution.
    resent
        (figure, not an error) more than one order for a signal and still one fill: a send
        that the broker refused or never executed (a timeout without a late fill), then a
        send after reconciliation had shown no fill could come any more.
    wrong_positions
        (account, symbol) whose ledger position differs from the sum of the broker's fills.
    unrecorded
        executed, but the ledger never marked it done or no result reached the result stream.
    result_duplicates
        (figure) signals with more than one result entry: a stale leader whose completion the
        ledger refused had already written its result. Results are at least once; the store
        keys them by signal id.
    """

    accepted: int
    indeterminate: int
    executed: int
    lost: set[str] = field(default_factory=set)
    unexpected: set[str] = field(default_factory=set)
    duplicate: set[str] = field(default_factory=set)
    resent: set[str] = field(default_factory=set)
    unrecorded: set[str] = field(default_factory=set)
    result_duplicates: set[str] = field(default_factory=set)
    dropped: dict[str, str] = field(default_factory=dict)
    wrong_positions: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"accepted {self.accepted}, indeterminate {self.indeterminate}, executed "
            f"{self.executed}; lost {len(self.lost)}, unexpected {len(self.unexpected)}, "
            f"duplicate {len(self.duplicate)}, unrecorded {len(self.unrecorded)}, wrong "
            f"positions {len(self.wrong_positions)}; resent "
            f"{len(self.resent)}, duplicate results {len(self.result_duplicates)}, dead-lettered "
            f"{len(self.dropped)}"
        )

    def assert_clean(self) -> None:
        def few(ids: Iterable[str]) -> list[str]:
            return sorted(ids)[:10]

        assert not self.lost, f"lost: {few(self.lost)} ({self.summary()}; dead {self.dropped})"
        assert not self.unexpected, f"unexpected: {few(self.unexpected)} ({self.summary()})"
        assert not self.duplicate, f"duplicate orders: {few(self.duplicate)} ({self.summary()})"
        assert not self.unrecorded, f"unrecorded: {few(self.unrecorded)} ({self.summary()})"
        assert not self.wrong_positions, (
            f"ledger vs broker positions: {self.wrong_positions} ({self.summary()})"
        )


def position_mismatches(
    ledger: Ledger,
    fills: Iterable[BookFill],
    opening: dict[tuple[str, str], float] | None = None,
) -> dict[tuple[str, str], tuple[float, float]]:
    """(account, symbol) -> (ledger volume, broker volume) wherever they differ: the ledger's
    positions must be exactly what the broker's fills add up to, from the ``opening``
    positions a test put in the ledger itself."""
    broker: dict[tuple[str, str], float] = dict(opening or {})
    for f in fills:
        key = (f.account, f.symbol)
        broker[key] = position_after(broker.get(key, 0.0), f.side, f.volume)
    booked = {(str(r[0]), str(r[1])): float(r[2]) for r in ledger.positions()}
    return {
        key: (booked.get(key, 0.0), broker.get(key, 0.0))
        for key in booked.keys() | broker.keys()
        if abs(booked.get(key, 0.0) - broker.get(key, 0.0)) > 1e-6
    }


def jepsen_check(
    cluster: Cluster,
    publisher: Publisher,
    timeout: float = 60.0,
    opening: dict[tuple[str, str], float] | None = None,
) -> JepsenReport:
    """Stop publishing, let the cluster catch up, then read everything and compare.

    The wait ends when every accepted signal is executed and recorded, or after ``timeout``
    seconds in which nothing moved (no new fill, no new completion, no change in pending).
    """
    publisher.stop()
    accepted = set(publisher.accepted)

    def caught_up() -> bool:
        # Dead-lettered signals will never execute: waiting longer would not change them.
        wanted = accepted - set(cluster.dead_letters())
        return (
            wanted <= set(cluster.fills()) and wanted <= cluster.done() and cluster.pending() == 0
        )

    def progress() -> tuple[int, int, int]:
        return len(cluster.fills()), len(cluster.done()), cluster.pending()

    # Bounded by progress, not by the clock alone: on a loaded machine catching up may take
    # long, and that is not a fault; ``timeout`` seconds without any progress is.
    last, last_change, cap = progress(), time.monotonic(), time.monotonic() + 10 * timeout
    while not caught_up() and time.monotonic() < cap:
        time.sleep(0.25)
        now = progress()
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > timeout:
            break  # stuck: the report says what is missing
    book = cluster.book_fills()
    fills = cluster.fills()
    fill_counts = Counter(f.client_order_id for f in book)
    attempts = cluster.attempts()
    actions = cluster.ledger.actions()
    results = cluster.results()
    dead = cluster.dead_letters()
    executed = set(fills)
    done = {sid for sid, (state, _status, _epoch) in actions.items() if state == "done"}
    promised_or_tried = accepted | publisher.indeterminate
    duplicate = {sid for sid, n in fill_counts.items() if n > 1}
    lost = accepted - executed
    return JepsenReport(
        accepted=len(accepted),
        indeterminate=len(publisher.indeterminate),
        executed=len(executed),
        lost=lost,
        unexpected=(executed | set(actions) | set(results) | set(attempts)) - promised_or_tried,
        duplicate=duplicate,
        resent={sid for sid, stamps in attempts.items() if len(stamps) > 1} - duplicate,
        unrecorded=(executed - done) | (executed - set(results)),
        result_duplicates={sid for sid, n in results.items() if n > 1},
        dropped={sid: dead[sid] for sid in lost if sid in dead},
        wrong_positions=position_mismatches(cluster.ledger, book, opening),
    )
