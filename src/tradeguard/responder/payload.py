"""The Alertmanager webhook payload (format version 4), validated before anything is stored.

Everything the responder does later (history, notifications, remediation) trusts these models,
so validation is strict: values keep their JSON types (a label value must be a string, not a
number), timestamps must carry a time zone and lie in a sane range (see ``EARLIEST``), the format
version must be "4", and the payload must be internally consistent (a "resolved" group holds no
firing alert, a resolved alert does not end before it started). Unknown keys are ignored
rather than refused: Alertmanager has added keys to version 4 over time (``truncatedAlerts``)
and Grafana's compatible sender adds its own, and refusing them would drop real alerts.

Text that no history backend can store is made storable rather than refused: PostgreSQL's text
and jsonb cannot hold NUL, and a lone UTF-16 surrogate cannot be encoded for SQLite or
PostgreSQL, so both become U+FFFD in the labels, annotations and receiver (what Go's JSON
encoder, Alertmanager's, does with invalid text). Refusing would lose the alert: Alertmanager
does not retry a 4xx; and storing it raw would fail the whole group commit it shares with other
deliveries. Only the ``alertname`` is capped (``MAX_ALERTNAME``): it is an index key.

One ``parse_payload`` turns raw bytes into a :class:`WebhookPayload` or raises a
:class:`PayloadError` whose message names every problem by its path in the document.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from tradeguard.errors import TradeguardError

SUPPORTED_VERSION = "4"
AlertStatus = Literal["firing", "resolved"]

# Go's zero time.Time: how Alertmanager writes "no end time" for an alert still firing.
_GO_ZERO_YEAR = 1

# Every startsAt and (non-zero) endsAt must lie in [EARLIEST, LATEST). Alertmanager stamps them
# from Prometheus' evaluation clock, so a time outside this range is a broken clock or a forged
# request, never a real alert. The range also keeps every stored instant storable and readable
# by both backends: four-digit years, so SQLite's fixed-width text (events.iso) still sorts as
# time; far from Python's year 1 and 9999 limits, where converting "0001-01-01T00:00:00+01:00"
# or "9999-12-31T23:59:59-01:00" to UTC overflows; and well inside PostgreSQL's timestamptz.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# An alert name is a rule's identifier; longer is a broken or hostile sender, and PostgreSQL
# cannot index a key of more than ~2.7 kB (the history indexes alertname).
MAX_ALERTNAME = 200
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD (see the module docstring)."""
    if text.isascii() and "\x00" not in text:  # the common case, without a regex pass
        return text
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub("\ufffd", text)


def _storable_map(values: dict[str, str]) -> dict[str, str]:
    if all(storable(k) is k and storable(v) is v for k, v in values.items()):
        return values
    return {storable(k): storable(v) for k, v in values.items()}


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(
            f"time must lie from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} (UTC); "
            "Alertmanager sends times from a running clock"
        )
    return value


class PayloadError(TradeguardError):
    """A webhook body the responder cannot accept; the message says why, for the sender."""


class PayloadJSONError(PayloadError):
    """The body is not JSON at all (HTTP 400)."""


class PayloadValidationError(PayloadError):
    """The body is JSON but not a valid version-4 payload (HTTP 422).

    ``problems`` lists one ``path: message`` string per violation, in document order.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid Alertmanager webhook payload: " + "; ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Alert(_Strict):
    """One alert of the group, as Alertmanager last saw it."""

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(alias="endsAt")
    generator_url: str = Field(alias="generatorURL")
    # Alertmanager's label-set hash (16 hex digits); with startsAt and status it is the
    # history's idempotency key, so it must be present and plain.
    fingerprint: str = Field(pattern=r"^[0-9a-fA-F]{1,64}$")

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        name = labels.get("alertname")
        if not name:
            raise ValueError("every alert needs a non-empty 'alertname' label")
        if len(name) > MAX_ALERTNAME:
            raise ValueError(f"the 'alertname' label is longer than {MAX_ALERTNAME} characters")
        return _storable_map(labels)

    @field_validator("annotations")
    @classmethod
    def _storable_annotations(cls, annotations: dict[str, str]) -> dict[str, str]:
        return _storable_map(annotations)

    @field_validator("starts_at")
    @classmethod
    def _start_in_range(cls, value: datetime) -> datetime:
        """Go's zero time is no start: every alert has one."""
        if value.year == _GO_ZERO_YEAR:
            raise ValueError("startsAt is Go's zero time (year 1): every alert has a start")
        return _in_range(value)

    @field_validator("ends_at")
    @classmethod
    def _end_in_range(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        """Go's zero time means "not ended" (None rather than year 1); any other end lies in
        range and, for a resolved alert, not before its start."""
        if value is None or value.year == _GO_ZERO_YEAR:
            return None
        _in_range(value)
        # Fields validate in order: status and starts_at are in info.data if they were valid.
        start = info.data.get("starts_at")
        if info.data.get("status") == "resolved" and start is not None and value < start:
            raise ValueError("a resolved alert cannot end before it started (endsAt < startsAt)")
        return value

    @model_validator(mode="after")
    def _resolved_has_end(self) -> Alert:
        if self.status == "resolved" and self.ends_at is None:
            raise ValueError("a resolved alert needs endsAt (the time it resolved)")
        return self

    @property
    def alertname(self) -> str:
        return self.labels["alertname"]


class WebhookPayload(_Strict):
    """One webhook delivery: a group of alerts sharing the route's grouping labels."""

    version: str
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    status: AlertStatus
    receiver: str = Field(min_length=1)
    group_labels: dict[str, str] = Field(alias="groupLabels")
    common_labels: dict[str, str] = Field(alias="commonLabels")
    common_annotations: dict[str, str] = Field(alias="commonAnnotations")
    external_url: str = Field(alias="externalURL")
    alerts: list[Alert] = Field(min_length=1)

    @field_validator("receiver")
    @classmethod
    def _storable_receiver(cls, value: str) -> str:
        return storable(value)

    @field_validator("version")
    @classmethod
    def _supported_version(cls, value: str) -> str:
        if value != SUPPORTED_VERSION:
            shown = value if len(value) <= 16 else value[:16] + "…"  # never echo a long input
            raise ValueError(
                f"unsupported payload version {shown!r}; this responder accepts version "
                f"{SUPPORTED_VERSION!r}, the format Alertmanager's webhook_config sends"
            )
        return value

    @model_validator(mode="after")
    def _status_matches_alerts(self) -> WebhookPayload:
        # Alertmanager marks a group "firing" exactly when one of its alerts is firing.
        any_firing = any(a.status == "firing" for a in self.alerts)
        if (self.status == "firing") != any_firing:
            raise ValueError(
                f"group status {self.status!r} contradicts its alerts "
                f"({'some' if any_firing else 'none'} firing)"
            )
        return self


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "payload"


def _describe(error: ErrorDetails) -> str:
    """``path: message`` without echoing the input (it may be large, or a secret)."""
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    elif message == "Field required":
        message = "field required"
    return f"{_path(tuple(error['loc']))}: {message}"


def parse_payload(raw: bytes) -> WebhookPayload:
    """Decode and validate one webhook body.

    Raises :class:`PayloadJSONError` when ``raw`` is not JSON and
    :class:`PayloadValidationError` when it is JSON but not an acceptable version-4 payload.
    """
    try:
        return WebhookPayload.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        for error in errors:
            if error["type"] == "json_invalid":
                detail = str(error.get("ctx", {}).get("error", error["msg"]))
                raise PayloadJSONError(f"body is not valid JSON: {detail}") from None
        raise PayloadValidationError([_describe(e) for e in errors]) from None
