"""The SQL ledger: the authority on who leads, and the fence every leader-only action passes.

One ``leadership`` row holds (epoch, holder, token, lease_until) on the database's own clock.
Taking the lead is a compare-and-swap that bumps the epoch and succeeds only if the caller saw
the current epoch and the old lease expired (or is its own). Every leader-only side effect
runs in one transaction that locks that row (PostgreSQL ``FOR SHARE``, SQLite ``BEGIN
IMMEDIATE``), aborts when the epoch is no longer the caller's, and records the action under
``UNIQUE(signal_id)``: a replica that was paused through a failover finds its writes refused
(Kleppmann's fencing token, with the database as the storage that checks it).

SQLite is the embedded default and is only valid for replicas on one host (one file);
PostgreSQL serves replicas on several hosts.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tradeguard.errors import ConfigError, TradeguardError
from tradeguard.fencing import FenceLost, Fill, Intent, Ticket, position_after
from tradeguard.ha.records import Leadership, Position, ReplicaBeat
from tradeguard.redact import redact_url


class LedgerUnavailable(TradeguardError):
    """The ledger database cannot be reached or did not answer in time."""


class LedgerStatementError(TradeguardError):
    """The ledger answered and refused a statement: a constraint broken, SQL it cannot run
    (a missing table or column, a syntax error, a grant missing), a value of the wrong type.

    A bug or a schema that is not the one this version expects, not an outage: the same
    statement would fail again, so callers must not take it for "the database is down, retry
    later" (LedgerUnavailable, which a fenced write turns into a lost term).
    """


# SQLite primary result codes that blame the statement, not the database: SQLITE_ERROR (SQL
# error, missing table or column), SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH,
# SQLITE_RANGE. The rest (BUSY, LOCKED, IOERR, FULL, CANTOPEN, CORRUPT, ...) keep meaning
# that the ledger cannot be used right now.
_SQLITE_STATEMENT_CODES = frozenset({1, 18, 19, 20, 25})


SCHEMA = [
    """CREATE TABLE IF NOT EXISTS leadership (
        id INTEGER PRIMARY KEY, epoch BIGINT NOT NULL, holder TEXT, token TEXT,
        lease_until DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS actions (
        signal_id TEXT PRIMARY KEY, epoch BIGINT NOT NULL, holder TEXT NOT NULL,
        state TEXT NOT NULL, status TEXT, created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL, result TEXT, signal TEXT)""",
    """CREATE TABLE IF NOT EXISTS heartbeats (
        replica TEXT PRIMARY KEY, beat_at DOUBLE PRECISION NOT NULL, is_leader INTEGER NOT NULL,
        epoch BIGINT NOT NULL, mode TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS positions (
        account TEXT NOT NULL, symbol TEXT NOT NULL, volume DOUBLE PRECISION,
        avg_price DOUBLE PRECISION, leverage DOUBLE PRECISION, risk DOUBLE PRECISION,
        margin DOUBLE PRECISION, updated_at DOUBLE PRECISION, PRIMARY KEY (account, symbol))""",
]

RISK_FACTOR = 0.01  # risk = |volume| * price * RISK_FACTOR; margin = |volume| * price / leverage


def expected_risk_margin(volume: float, price: float, leverage: float) -> tuple[float, float]:
    notional = abs(volume) * price
    return notional * RISK_FACTOR, notional / leverage


class Ledger(ABC):
    """Dialect-independent ledger operations over a DB-API connection per thread."""

    placeholder = "?"

    def __init__(self) -> None:
        self._local = threading.local()

    # ---- dialect hooks --------------------------------------------------------------------
    @abstractmethod
    def _connect(self) -> Any: ...

    @abstractmethod
    def _now_sql(self) -> str:
        """SQL expression for the database's clock in unix seconds."""

    @abstractmethod
    @contextmanager
    def _write_tx(self, lock_leadership: bool) -> Iterator[Any]:
        """A write transaction; with ``lock_leadership`` the leadership row is share-locked."""

    @abstractmethod
    def _errors(self) -> tuple[type[Exception], ...]:
        """Exceptions meaning the database is unreachable or failed."""

    @abstractmethod
    def _is_statement_error(self, exc: Exception) -> bool:
        """Whether one of ``_errors()`` blames the statement (LedgerStatementError)."""

    # ---- plumbing -------------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect()
            except self._errors() as exc:
                raise LedgerUnavailable(f"ledger unreachable: {exc}") from exc
            self._local.conn = conn
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection may fail again; it is gone anyway
                pass

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Translate database failures into LedgerUnavailable (an outage: retry later) or
        LedgerStatementError (a refused statement: a bug), and reset the connection."""
        try:
            yield
        except FenceLost:
            raise
        except self._errors() as exc:
            self._drop_conn()
            if self._is_statement_error(exc):
                first = (str(exc).strip().splitlines() or [""])[0]  # not PostgreSQL's caret
                what = f"ledger refused a statement ({type(exc).__name__}: {first})"
                if "no such table" in str(exc) or type(exc).__name__ == "UndefinedTable":
                    why = "the ledger lacks its tables: has a replica (`coordinator`) set it up?"
                else:
                    why = "a bug or a ledger schema this version does not expect, not an outage"
                raise LedgerStatementError(f"{what}; {why}") from exc
            raise LedgerUnavailable(f"ledger error: {exc}") from exc

    def _sql(self, text: str) -> str:
        return text.replace("?", self.placeholder).replace("NOW()", self._now_sql())

    def _exec(self, cur: Any, text: str, params: tuple[Any, ...] = ()) -> Any:
        cur.execute(self._sql(text), params)
        return cur

    def setup(self) -> None:
        """Create the tables and the leadership row (epoch 0, nobody) if missing."""
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            for statement in SCHEMA:
                cur.execute(statement)
            self._exec(
                cur,
                "INSERT INTO leadership (id, epoch, holder, token, lease_until) "
                "VALUES (1, 0, NULL, NULL, 0) ON CONFLICT (id) DO NOTHING",
            )
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Ledgers created before signals and results were kept in the ledger lack them."""
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            columns = self._exec(cur, "SELECT * FROM actions WHERE 1 = 0").description
            have = {c[0] for c in columns}
            for name in ("result", "signal"):
                if name not in have:
                    self._exec(cur, f"ALTER TABLE actions ADD COLUMN {name} TEXT")

    # ---- leadership ----------------------------------------------------------------------
    def read(self) -> Leadership:
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            row = self._exec(
                cur, "SELECT epoch, holder, token, lease_until, NOW() FROM leadership WHERE id = 1"
            ).fetchone()
        if row is None:
            raise LedgerUnavailable("ledger has no leadership row; run setup()")
        return Leadership(int(row[0]), row[1], row[2], float(row[3]), float(row[4]))

    def try_acquire(self, replica: str, token: str, seen_epoch: int, ttl: float) -> int | None:
        """Take the lead with a new epoch; return it, or None if someone else holds it.

        Succeeds only if ``seen_epoch`` is still current and the lease expired or is ours:
        exactly one row changes, or none.
        """
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            changed = self._exec(
                cur,
                "UPDATE leadership SET epoch = epoch + 1, holder = ?, token = ?, "
                "lease_until = NOW() + ? WHERE id = 1 AND epoch = ? "
                "AND (lease_until <= NOW() OR holder = ?)",
                (replica, token, ttl, seen_epoch, replica),
            ).rowcount
        return seen_epoch + 1 if changed == 1 else None

    def renew(self, replica: str, token: str, epoch: int, ttl: float) -> bool:
        """Extend our lease; False when the epoch or token is no longer ours."""
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            changed = self._exec(
                cur,
                "UPDATE leadership SET lease_until = NOW() + ? "
                "WHERE id = 1 AND epoch = ? AND holder = ? AND token = ?",
                (ttl, epoch, replica, token),
            ).rowcount
        return bool(changed == 1)

    def release(self, replica: str, token: str, epoch: int) -> bool:
        """End our lease now (graceful switchover); the epoch stays for the next taker."""
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            changed = self._exec(
                cur,
                "UPDATE leadership SET lease_until = NOW() "
                "WHERE id = 1 AND epoch = ? AND holder = ? AND token = ?",
                (epoch, replica, token),
            ).rowcount
        return bool(changed == 1)

    def heartbeat(self, replica: str, is_leader: bool, epoch: int, mode: str) -> None:
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            self._exec(
                cur,
                "INSERT INTO heartbeats (replica, beat_at, is_leader, epoch, mode) "
                "VALUES (?, NOW(), ?, ?, ?) ON CONFLICT (replica) DO UPDATE SET "
                "beat_at = excluded.beat_at, is_leader = excluded.is_leader, "
                "epoch = excluded.epoch, mode = excluded.mode",
                (replica, 1 if is_leader else 0, epoch, mode),
            )

    def replicas(self) -> list[ReplicaBeat]:
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            rows = self._exec(
                cur,
                "SELECT replica, NOW() - beat_at, is_leader, epoch, mode "
                "FROM heartbeats ORDER BY replica",
            ).fetchall()
        return [ReplicaBeat(r[0], float(r[1]), bool(r[2]), int(r[3]), r[4]) for r in rows]

    # ---- fenced actions --------------------------------------------------------------------
    def _check_epoch(self, cur: Any, replica: str, epoch: int) -> None:
        row = self._exec(
            cur, "SELECT epoch, holder, lease_until > NOW() FROM leadership WHERE id = 1"
        ).fetchone()
        if row is None or int(row[0]) != epoch or row[1] != replica or not row[2]:
            current = None if row is None else int(row[0])
            raise FenceLost(
                f"epoch {epoch} of {replica} is not current (ledger: {current}, "
                f"holder {None if row is None else row[1]}, lease valid "
                f"{None if row is None else bool(row[2])})"
            )

    def begin_action(
        self, signal_id: str, replica: str, epoch: int, signal: bytes | None = None
    ) -> Ticket:
        """Record the intent to execute ``signal_id`` under our epoch (FenceLost if stale).

        ``signal`` (the signal's JSON) is kept with the intent, so a later leader can settle
        the intent from the ledger alone if the stream entry is gone. An open intent of an
        earlier term is taken over (its epoch becomes ours), so only we can close it from now
        on; a done one comes back with the result recorded for it.
        """
        with self._guard(), self._write_tx(lock_leadership=True) as cur:
            self._check_epoch(cur, replica, epoch)
            inserted = self._exec(
                cur,
                "INSERT INTO actions (signal_id, epoch, holder, state, status, created_at, "
                "updated_at, signal) VALUES (?, ?, ?, 'intent', NULL, NOW(), NOW(), ?) "
                "ON CONFLICT (signal_id) DO NOTHING",
                (signal_id, epoch, replica, None if signal is None else signal.decode()),
            ).rowcount
            if inserted == 1:
                return Ticket(signal_id, Intent.NEW, epoch)
            row = self._exec(
                cur, "SELECT state, result FROM actions WHERE signal_id = ?", (signal_id,)
            ).fetchone()
            if row is not None and row[0] == "done":
                recorded = row[1].encode() if isinstance(row[1], str) else row[1]
                return Ticket(signal_id, Intent.DONE, epoch, recorded)
            self._exec(
                cur,
                "UPDATE actions SET epoch = ?, holder = ?, updated_at = NOW() WHERE signal_id = ?",
                (epoch, replica, signal_id),
            )
            return Ticket(signal_id, Intent.OPEN, epoch)

    def mark_unknown(self, signal_id: str, replica: str, epoch: int) -> None:
        """The order was sent and its outcome is unknown: an explicit state an operator sees."""
        with self._guard(), self._write_tx(lock_leadership=True) as cur:
            self._check_epoch(cur, replica, epoch)
            self._exec(
                cur,
                "UPDATE actions SET state = 'unknown', updated_at = NOW() "
                "WHERE signal_id = ? AND state <> 'done'",
                (signal_id,),
            )

    def complete_action(
        self,
        signal_id: str,
        replica: str,
        epoch: int,
        status: str,
        recorded: bytes | None = None,
        fill: Fill | None = None,
        leverage: float = 1.0,
    ) -> bool:
        """Mark ``signal_id`` done and apply its fill to the position, in one fenced write.

        Idempotent: an action already done is left as it is and its fill is not applied again
        (False). ``recorded`` is the result to re-emit should the caller crash after this.
        """
        with self._guard(), self._write_tx(lock_leadership=True) as cur:
            self._check_epoch(cur, replica, epoch)
            changed = self._exec(
                cur,
                "UPDATE actions SET state = 'done', status = ?, result = ?, updated_at = NOW() "
                "WHERE signal_id = ? AND state <> 'done'",
                (status, None if recorded is None else recorded.decode(), signal_id),
            ).rowcount
            if changed != 1:
                return False
            if fill is not None:
                self._apply_fill(cur, fill, leverage)
            return True

    def open_intents(self) -> list[tuple[str, bytes | None]]:
        """(signal id, signal JSON) of every action not yet done, oldest first."""
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            rows = self._exec(
                cur,
                "SELECT signal_id, signal FROM actions WHERE state <> 'done' ORDER BY created_at",
            ).fetchall()
        return [(r[0], None if r[1] is None else str(r[1]).encode()) for r in rows]

    def open_actions(self) -> dict[str, tuple[str, int]]:
        """Signal id -> (state, epoch) of every action not yet done (intent or unknown)."""
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            rows = self._exec(
                cur, "SELECT signal_id, state, epoch FROM actions WHERE state <> 'done'"
            ).fetchall()
        return {r[0]: (r[1], int(r[2])) for r in rows}

    def _apply_fill(self, cur: Any, fill: Fill, leverage: float) -> None:
        account, symbol = fill.account, fill.symbol
        row = self._exec(
            cur,
            "SELECT volume, avg_price FROM positions WHERE account = ? AND symbol = ?",
            (account, symbol),
        ).fetchone()
        old_volume, old_price = (float(row[0]), float(row[1])) if row else (0.0, 0.0)
        volume = position_after(old_volume, fill.action, fill.volume)
        if abs(volume) < 1e-12:
            self._exec(
                cur, "DELETE FROM positions WHERE account = ? AND symbol = ?", (account, symbol)
            )
            return
        signed_volume = volume - old_volume
        price = fill.price
        same_side = old_volume == 0 or (old_volume > 0) == (signed_volume > 0)
        avg = (
            (
                (abs(old_volume) * old_price + abs(signed_volume) * price)
                / (abs(old_volume) + abs(signed_volume))
            )
            if same_side
            else old_price
        )
        if (old_volume > 0) != (volume > 0) and old_volume != 0:
            avg = price  # the position flipped side: the remainder opened at this price
        risk, margin = expected_risk_margin(volume, avg, leverage)
        self._exec(
            cur,
            "INSERT INTO positions (account, symbol, volume, avg_price, leverage, risk, margin, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, NOW()) ON CONFLICT (account, symbol) DO "
            "UPDATE SET volume = excluded.volume, avg_price = excluded.avg_price, "
            "leverage = excluded.leverage, risk = excluded.risk, margin = excluded.margin, "
            "updated_at = excluded.updated_at",
            (account, symbol, volume, avg, leverage, risk, margin),
        )

    # ---- reads for recovery, status and tests ----------------------------------------------
    def positions(self) -> list[tuple[Any, ...]]:
        """Raw position rows (account, symbol, volume, avg_price, leverage, risk, margin)."""
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            return list(
                self._exec(
                    cur,
                    "SELECT account, symbol, volume, avg_price, leverage, risk, margin "
                    "FROM positions ORDER BY account, symbol",
                ).fetchall()
            )

    def actions(self) -> dict[str, tuple[str, str | None, int]]:
        """signal id -> (state, status, epoch) for every recorded action."""
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            rows = self._exec(cur, "SELECT signal_id, state, status, epoch FROM actions")
            return {r[0]: (r[1], r[2], int(r[3])) for r in rows.fetchall()}

    def execute_raw(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run one statement (tests use it to corrupt rows on purpose)."""
        with self._guard(), self._write_tx(lock_leadership=False) as cur:
            self._exec(cur, sql, params)

    def close(self) -> None:
        self._drop_conn()


class SQLiteLedger(Ledger):
    """Ledger in one SQLite file (WAL): replicas on the same host only."""

    def __init__(self, path: Path | str, timeout: float = 2.0) -> None:
        super().__init__()
        self.path = str(path)
        self.timeout = timeout

    def _connect(self) -> Any:
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=True
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _now_sql(self) -> str:
        return "((julianday('now') - 2440587.5) * 86400.0)"

    @contextmanager
    def _write_tx(self, lock_leadership: bool) -> Iterator[Any]:
        # BEGIN IMMEDIATE takes the database write lock up front: for SQLite that is the lock
        # on the leadership row, since no other writer can change it until we commit.
        conn = self._conn()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            # SQLite rolls back by itself on some errors (disk full, I/O): a ROLLBACK then
            # fails with "no transaction is active", which would hide the error that matters.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _errors(self) -> tuple[type[Exception], ...]:
        return (sqlite3.Error,)

    def _is_statement_error(self, exc: Exception) -> bool:
        if isinstance(
            exc,
            sqlite3.IntegrityError
            | sqlite3.ProgrammingError
            | sqlite3.InterfaceError
            | sqlite3.DataError
            | sqlite3.NotSupportedError,
        ):
            return True
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF in _SQLITE_STATEMENT_CODES


class PostgresLedger(Ledger):
    """Ledger in PostgreSQL (psycopg 3), for replicas on several hosts."""

    placeholder = "%s"

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        super().__init__()
        self.url = url
        self.timeout = timeout

    def _connect(self) -> Any:
        import psycopg

        ms = int(self.timeout * 1000)
        conn = psycopg.connect(
            self.url,
            connect_timeout=max(1, math.ceil(self.timeout)),
            autocommit=False,
            # idle_in_transaction_session_timeout: a replica cut off (or frozen) between two
            # statements of a fenced write leaves its session holding the leadership row's
            # lock; without it the server keeps that lock until its TCP keepalive gives up
            # (hours), and no renewal or takeover can pass it. Our transactions never wait
            # between statements, so a silence this long means the client is gone.
            options=f"-c statement_timeout={ms} -c lock_timeout={ms} "
            f"-c idle_in_transaction_session_timeout={ms}",
            keepalives=1,
            keepalives_idle=1,
            keepalives_interval=1,
            keepalives_count=2,
            # Keepalives only probe an idle connection. A query sent into a silent partition
            # leaves unacknowledged data, which the kernel retransmits for ~15 min before it
            # gives up; tcp_user_timeout bounds that wait instead. A slow but reachable server
            # still acknowledges at once, so this never cuts off a long statement.
            tcp_user_timeout=ms,
        )
        return conn

    def _now_sql(self) -> str:
        return "EXTRACT(EPOCH FROM clock_timestamp())::double precision"

    @contextmanager
    def _write_tx(self, lock_leadership: bool) -> Iterator[Any]:
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            if lock_leadership:
                cur.execute("SELECT epoch FROM leadership WHERE id = 1 FOR SHARE")
            yield cur

    def _errors(self) -> tuple[type[Exception], ...]:
        import psycopg

        return (psycopg.Error,)

    def _is_statement_error(self, exc: Exception) -> bool:
        # Integrity (23xxx), syntax and access rules (42xxx: missing table or column,
        # permission denied), data (22xxx); not OperationalError, which covers lost
        # connections, statement and lock timeouts, and admin shutdowns.
        import psycopg

        return isinstance(
            exc,
            psycopg.IntegrityError
            | psycopg.ProgrammingError
            | psycopg.DataError
            | psycopg.NotSupportedError,
        )


def open_ledger(url: str, timeout: float = 2.0) -> Ledger:
    """``sqlite:///path/to/file`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        return SQLiteLedger(url.removeprefix("sqlite:///") or "ledger.sqlite", timeout)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresLedger(url, timeout)
    raise ConfigError(
        f"ledger URL must start with sqlite:/// or postgresql://, got {redact_url(url)!r}"
    )


def position_from_row(row: tuple[Any, ...]) -> Position:
    return Position(
        str(row[0]),
        str(row[1]),
        float(row[2]),
        float(row[3]),
        float(row[4]),
        float(row[5]),
        float(row[6]),
    )
