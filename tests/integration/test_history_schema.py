"""The history's schema in a real SQLite file: the indexes the write path can afford, used by
the queries they are for, and an older history brought up to date when it is opened."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tradeguard.responder.history.base import OUTBOX, TABLE
from tradeguard.responder.history.outbox_sql import OPEN_ONLY
from tradeguard.responder.history.schema import RETIRED_INDEXES
from tradeguard.responder.history.sqlite import SQLiteHistory


def plan(path: Path, sql: str) -> str:
    with sqlite3.connect(path) as conn:
        return " | ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))


def indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    return {r[0] for r in rows}


def test_outbox_lookups_use_the_small_partial_indexes(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    SQLiteHistory(path).close()
    held = plan(path, f"SELECT channel FROM {OUTBOX} WHERE state = 'held' AND {OPEN_ONLY}")
    assert f"INDEX {OUTBOX}_open" in held, held
    counts = plan(path, f"SELECT state, count(*) FROM {OUTBOX} WHERE {OPEN_ONLY} GROUP BY state")
    assert f"INDEX {OUTBOX}_open" in counts, counts
    queue = plan(
        path,
        f"SELECT 1 FROM {OUTBOX} p WHERE p.channel = 'c' AND p.fingerprint = 'f' "
        "AND p.id < 9 AND p.state = 'pending'",
    )
    assert f"INDEX {OUTBOX}_queue" in queue, queue
    # The intake's lookup of stored occurrences goes through the unique key.
    known = plan(
        path,
        f"SELECT fingerprint, starts_at, status FROM {TABLE} "
        "WHERE fingerprint IN ('a', 'b') AND starts_at IN ('x')",
    )
    assert "INDEX" in known and "SCAN" not in known, known


def test_an_older_history_loses_the_indexes_that_were_replaced(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    SQLiteHistory(path).close()
    with sqlite3.connect(path) as conn:  # as an earlier version left it
        conn.execute(f"CREATE INDEX {TABLE}_status ON {TABLE} (status, fingerprint)")
        conn.execute(f"CREATE INDEX {OUTBOX}_due ON {OUTBOX} (state, next_attempt_at)")
        conn.execute(f"CREATE INDEX {OUTBOX}_order ON {OUTBOX} (channel, fingerprint, id)")
    assert set(RETIRED_INDEXES) <= indexes(path)
    history = SQLiteHistory(path)
    try:
        assert not set(RETIRED_INDEXES) & indexes(path)
        now = datetime.now(UTC)
        assert history.outbox_claim("me", now, now + timedelta(seconds=30), 10) == []
    finally:
        history.close()
