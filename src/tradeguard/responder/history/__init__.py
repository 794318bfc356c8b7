"""Alert history: the protocol, its SQLite and PostgreSQL backends, and a URL-based factory.

``open_history("sqlite:///run/responder/history.sqlite3")`` (SQLAlchemy's convention: three
slashes then a relative path, four for an absolute one) or
``open_history("postgresql://user@host/db")``. The schema is created on open.
"""

from __future__ import annotations

from tradeguard.errors import ConfigError
from tradeguard.redact import redact_url
from tradeguard.responder.history.actions import (
    ACTION_OUTCOMES,
    ACTION_VERDICTS,
    ActionAttempt,
    ActionOutcome,
    ActionVerdict,
)
from tradeguard.responder.history.base import (
    MAX_HISTORY_LIMIT,
    AlertHistory,
    HistoryError,
)
from tradeguard.responder.history.sqlite import SQLiteHistory

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def check_history_url(url: str) -> str:
    """``url`` if it names a backend this module knows, else ValueError saying which do."""
    if url.startswith(SQLITE_PREFIX) and len(url) > len(SQLITE_PREFIX):
        return url
    if url.startswith(POSTGRES_PREFIXES):
        return url
    raise ValueError(
        "history URL must be sqlite:///<path> or postgresql://[user@]host[:port]/db, "
        f"got {redact_url(url)!r}"
    )


def open_history(url: str) -> AlertHistory:
    """The history backend ``url`` names, connected and with its schema in place.

    Raises :class:`ConfigError` for an unknown scheme and :class:`HistoryError` when the store
    cannot be opened.
    """
    try:
        check_history_url(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if url.startswith(SQLITE_PREFIX):
        return SQLiteHistory(url.removeprefix(SQLITE_PREFIX))
    from tradeguard.responder.history.postgres import PostgresHistory

    return PostgresHistory(url)


__all__ = [
    "ACTION_OUTCOMES",
    "ACTION_VERDICTS",
    "MAX_HISTORY_LIMIT",
    "ActionAttempt",
    "ActionOutcome",
    "ActionVerdict",
    "AlertHistory",
    "HistoryError",
    "SQLiteHistory",
    "check_history_url",
    "open_history",
]
