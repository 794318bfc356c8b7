"""The Alertmanager webhook payload (format version 4), validated before anything is stored.

Everything the responder does later (history, notifications, remediation) trusts these models,
so validation is strict: values keep their JSON types (a label value must be a string, not a
number), timestamps must carry a time zone, the format version must be "4", and the payload must
be internally consistent (a "resolved" group holds no firing alert). Unknown keys are ignored
rather than refused: Alertmanager has added keys to version 4 over time (``truncatedAlerts``)
and Grafana's compatible sender adds its own, and refusing them would drop real alerts.

One ``parse_payload`` turns raw bytes into a :class:`WebhookPayload` or raises a
:class:`PayloadError` whose message names every problem by its path in the document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from tradeguard.errors import TradeguardError

SUPPORTED_VERSION = "4"
AlertStatus = Literal["firing", "resolved"]

# Go's zero time.Time: how Alertmanager writes "no end time" for an alert still firing.
_GO_ZERO_YEAR = 1


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
        if not labels.get("alertname"):
            raise ValueError("every alert needs a non-empty 'alertname' label")
        return labels

    @field_validator("ends_at")
    @classmethod
    def _zero_is_none(cls, value: datetime | None) -> datetime | None:
        """Go's zero time means "not ended"; keep it as None rather than year 1."""
        if value is not None and value.year == _GO_ZERO_YEAR:
            return None
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
