"""An acknowledgement, as the API and the console take it: validated once, stored once.

Both the JSON API (``POST /api/alerts/ack``) and the console's form build an
:class:`AckRequest`, so a name or note the API refuses is refused in the console too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from tradeguard.responder.history.base import Ack, AlertHistory

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class AckRequest(BaseModel):
    """Someone takes charge of an alert (its newest occurrence), or marks it a false positive."""

    model_config = ConfigDict(extra="forbid")

    fingerprint: str = Field(pattern=r"^[0-9a-fA-F]{1,64}$")
    by: str = Field(min_length=1, max_length=100)
    false_positive: bool = False
    note: str = Field(default="", max_length=500)

    @field_validator("fingerprint")
    @classmethod
    def _lower(cls, value: str) -> str:
        """Fingerprints are hex and case-insensitive; the intake stores them lowercased."""
        return value.lower()

    # Stored and shown: NUL cannot go into PostgreSQL's text, and other control characters in
    # a name or a note only garble the terminals that show them (a note may span lines).
    @field_validator("by")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("note")
    @classmethod
    def _plain_note(cls, value: str) -> str:
        if CONTROL.search(value.replace("\n", "").replace("\t", "")):
            raise ValueError("must not contain control characters other than newline and tab")
        return value


async def store_ack(history: AlertHistory, ack: AckRequest) -> Ack | None:
    """Store ``ack`` now (off the event loop); the stored acknowledgement (the first one
    counts), or None when no alert with its fingerprint has fired."""
    return await run_in_threadpool(
        history.acknowledge,
        ack.fingerprint,
        ack.by,
        ack.false_positive,
        ack.note,
        datetime.now(UTC),
    )
