"""The history's tables and indexes, written once and rendered for each database.

The two backends differ only in column types (SQLite keeps timestamps as fixed-width text and
JSON as text; PostgreSQL has timestamptz and jsonb) and in how an id column is generated, so the
columns, constraints and indexes are declared here once and cannot drift apart.

Indexes are chosen for the write path as much as the read path. Every index an insert touches
is another page written (and, in SQLite, fsynced) per transaction; an index keyed by fingerprint,
which Alertmanager makes a hash, touches a different page for each event of a group commit. So:

- events keep one fingerprint-keyed index, the unique key the intake's idempotency needs (it
  also serves the "was this occurrence resolved already" lookups); the others are keyed by
  columns that grow with time (received_at, id) and touch the last page only;
- the outbox's lookup indexes are *partial*: they hold only the entries still owed (or dead,
  which the health check counts), a few at any time, however long the history grows. Queries
  that should use them name their states as literals: a planner can only use a partial index
  when the query's condition implies the index's;
- the remediation audit is a few rows an incident: its unique key (the idempotency of a
  remediation per occurrence) also serves an occurrence's lookups, and one index on decided_at
  serves the cool-down windows and retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tradeguard.responder.history.actions import ACTION_OUTCOMES, ACTION_VERDICTS
from tradeguard.responder.history.base import ACKS, ATTEMPTS, OUTBOX, REMEDIATION, TABLE

Dialect = Literal["sqlite", "postgresql"]
ColumnType = Literal["id", "text", "time", "json", "int", "ref", "bool", "real"]

_TYPES: dict[Dialect, dict[ColumnType, str]] = {
    # AUTOINCREMENT: an id is never reused after a delete, so "newest first" stays true
    # across retention.
    "sqlite": {
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "text": "TEXT",
        "time": "TEXT",
        "json": "TEXT",
        "int": "INTEGER",
        "ref": "INTEGER",
        "bool": "INTEGER",
        "real": "REAL",
    },
    "postgresql": {
        "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "text": "TEXT",
        "time": "TIMESTAMPTZ",
        "json": "JSONB",
        "int": "INTEGER",
        "ref": "BIGINT",
        "bool": "BOOLEAN",
        "real": "DOUBLE PRECISION",
    },
}

# Entries still owed to a channel, and dead ones (counted by /healthz); see the module docstring.
OUTBOX_OPEN_STATES = ("pending", "held", "dead")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{value}'" for value in values)
    return f"NOT NULL CHECK ({column} IN ({listed}))"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, ColumnType, str], ...]  # name, type, constraint
    constraints: tuple[str, ...] = ()

    def render(self, dialect: Dialect) -> str:
        types = _TYPES[dialect]
        lines = [f"{name} {types[kind]} {extra}".rstrip() for name, kind, extra in self.columns]
        lines.extend(self.constraints)
        body = ",\n    ".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {body}\n)"


TABLES = (
    Table(
        TABLE,
        (
            ("id", "id", ""),
            ("fingerprint", "text", "NOT NULL"),
            ("alertname", "text", "NOT NULL"),
            ("status", "text", "NOT NULL CHECK (status IN ('firing', 'resolved'))"),
            ("starts_at", "time", "NOT NULL"),
            ("ends_at", "time", ""),
            ("severity", "text", ""),
            ("component", "text", ""),
            ("instance", "text", ""),
            ("labels", "json", "NOT NULL"),
            ("annotations", "json", "NOT NULL"),
            ("received_at", "time", "NOT NULL"),
            ("receiver", "text", "NOT NULL"),
        ),
        ("UNIQUE (fingerprint, starts_at, status)",),
    ),
    Table(
        ACKS,
        (
            ("fingerprint", "text", "NOT NULL"),
            ("starts_at", "time", "NOT NULL"),
            ("acked_at", "time", "NOT NULL"),
            ("acked_by", "text", "NOT NULL"),
            ("false_positive", "bool", "NOT NULL"),
            ("note", "text", "NOT NULL"),
        ),
        ("PRIMARY KEY (fingerprint, starts_at)",),
    ),
    Table(
        OUTBOX,
        (
            ("id", "id", ""),
            ("channel", "text", "NOT NULL"),
            ("category", "text", "NOT NULL"),
            ("fingerprint", "text", "NOT NULL"),
            ("alertname", "text", "NOT NULL"),
            (
                "state",
                "text",
                "NOT NULL CHECK (state IN ('pending', 'held', 'sent', 'merged', 'dead'))",
            ),
            ("body", "text", "NOT NULL"),
            ("created_at", "time", "NOT NULL"),
            ("next_attempt_at", "time", "NOT NULL"),
            ("attempts", "int", "NOT NULL"),
            ("last_error", "text", ""),
            ("done_at", "time", ""),
            ("carried_by", "ref", ""),
            ("claimed_by", "text", ""),
            ("claimed_until", "time", ""),
        ),
    ),
    Table(
        ATTEMPTS,
        (
            ("id", "id", ""),
            ("outbox_id", "ref", "NOT NULL"),
            ("attempted_at", "time", "NOT NULL"),
            ("outcome", "text", "NOT NULL"),
            ("error", "text", ""),
        ),
    ),
    Table(
        REMEDIATION,
        (
            ("id", "id", ""),
            ("fingerprint", "text", "NOT NULL"),
            ("starts_at", "time", "NOT NULL"),
            ("alertname", "text", "NOT NULL"),
            ("action", "text", "NOT NULL"),
            ("target", "text", "NOT NULL"),
            ("attempt", "int", "NOT NULL CHECK (attempt >= 0)"),  # 0: a skip
            ("decided_by", "text", "NOT NULL"),
            ("decided_at", "time", "NOT NULL"),
            ("verdict", "text", _one_of("verdict", ACTION_VERDICTS)),
            ("reason", "text", "NOT NULL"),
            ("command_id", "text", ""),
            ("outcome", "text", _one_of("outcome", ACTION_OUTCOMES)),
            ("detail", "text", "NOT NULL"),
            ("finished_at", "time", ""),
            ("duration_seconds", "real", ""),
        ),
        # Two replicas (or two deliveries of one alert) claiming the same attempt: one wins.
        ("UNIQUE (fingerprint, starts_at, action, attempt)",),
    ),
)

# The open-entries index's condition. Queries that should use the index repeat it verbatim:
# SQLite uses a partial index only when the query's WHERE contains the index's condition term
# for term (state = 'held' alone does not qualify).
OPEN_ONLY = "state IN ({})".format(", ".join(f"'{state}'" for state in OUTBOX_OPEN_STATES))
INDEXES = (
    f"CREATE INDEX IF NOT EXISTS {TABLE}_alertname ON {TABLE} (alertname, id)",
    # The report's window and retention's cutoff are both on received_at.
    f"CREATE INDEX IF NOT EXISTS {TABLE}_received ON {TABLE} (received_at)",
    # The sender's claim (due entries by state) and the health check's counts.
    f"CREATE INDEX IF NOT EXISTS {OUTBOX}_open ON {OUTBOX} (state, next_attempt_at) "
    f"WHERE {OPEN_ONLY}",
    # A pending entry waits for older pending entries of its channel and alert.
    f"CREATE INDEX IF NOT EXISTS {OUTBOX}_queue ON {OUTBOX} (channel, fingerprint, id) "
    "WHERE state = 'pending'",
    # Restarted throttle windows (recent deliveries) and retention.
    f"CREATE INDEX IF NOT EXISTS {OUTBOX}_done ON {OUTBOX} (done_at)",
    f"CREATE INDEX IF NOT EXISTS {ATTEMPTS}_outbox ON {ATTEMPTS} (outbox_id)",
    # Cool-down and rate-limit windows across occurrences, and retention.
    f"CREATE INDEX IF NOT EXISTS {REMEDIATION}_decided ON {REMEDIATION} (decided_at)",
)
# Indexes of earlier versions that the ones above replace (a history created by one of them
# loses them when a newer responder opens it).
RETIRED_INDEXES = (f"{TABLE}_status", f"{OUTBOX}_due", f"{OUTBOX}_order")


def statements(dialect: Dialect) -> list[str]:
    """Every statement that creates the schema (or brings an older one up to date)."""
    return [
        *(table.render(dialect) for table in TABLES),
        *(f"DROP INDEX IF EXISTS {name}" for name in RETIRED_INDEXES),
        *INDEXES,
    ]
