"""The responder's settings: ``TRADEGUARD_RESPONDER_*`` environment variables or arguments.

Separate from :class:`tradeguard.config.Settings` because the responder is its own process with
its own secrets, and because nothing else needs them. Paths to secrets are settings; the token
itself may come from ``TRADEGUARD_RESPONDER_TOKEN`` for containers that inject it that way. The
history URL may hold a password: it may come from a file instead
(``TRADEGUARD_RESPONDER_HISTORY_URL_FILE``, see :mod:`tradeguard.settings_files`), or leave the
password to libpq (``PGPASSWORD``, ``PGPASSFILE`` or ``~/.pgpass``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tradeguard.config import (
    DEFAULT_KEY_PREFIX,
    MEMORY_BUDGET_BYTES,
    check_redis_url,
    with_password,
)
from tradeguard.errors import ConfigError
from tradeguard.net import LOOPBACK
from tradeguard.remediation.guard import GuardPolicy
from tradeguard.responder.auth import Authenticator, build_authenticator
from tradeguard.responder.history import check_history_url
from tradeguard.responder.pagerduty import EVENTS_URL as PAGERDUTY_EVENTS_URL
from tradeguard.responder.roster import Roster, load_roster
from tradeguard.responder.throttle import DEFAULT_LIMITS, WINDOW_SECONDS
from tradeguard.responder.watchdog import DEFAULT_TIMEOUT_SECONDS
from tradeguard.settings_files import Source, environment, resolve_sources, without_pairs

DEFAULT_DEADLINE_SECONDS = 24 * 3600.0
# A quarter of history: the 90-day report's window, and enough to compare one month with the
# next, while the store stays bounded on a host that runs for years.
DEFAULT_RETENTION_DAYS = 90

DEFAULT_PORT = 9466
DEFAULT_MAX_BODY = 1024 * 1024


class ResponderSettings(BaseSettings):
    """Every knob of the responder, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="TRADEGUARD_RESPONDER_", extra="forbid", hide_input_in_errors=True
    )
    file_backed: ClassVar[tuple[str, ...]] = ("history_url", "redis_url", "redis_password")

    host: str = LOOPBACK
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)  # 0: any free port
    token: SecretStr | None = None
    token_file: Path | None = None
    basic_user: str | None = None
    basic_password_file: Path | None = None
    insecure: bool = False
    history_url: str = "sqlite:///run/responder/history.sqlite3"
    history_url_file: Path | None = None  # a file holding history_url (it may hold a password)
    jsonl_path: Path | None = None
    apprise_urls_file: Path | None = None  # one apprise URL a line (they hold tokens: a file)
    pagerduty_routing_key_file: Path | None = None  # pages criticals via the Events API v2
    pagerduty_url: str = PAGERDUTY_EVENTS_URL
    console: bool = True  # print notifications on the terminal (a channel, not the web console)
    # The web console (tradeguard.responder.console): how long a login lasts, whether its
    # cookie is sent over HTTPS only (set it behind a TLS proxy), and where the runbooks'
    # Markdown is (default:
    # the source tree's docs/runbooks).
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    console_secure_cookie: bool = False
    runbooks_dir: Path | None = None
    # The console's address as its readers reach it (a proxy's, say): each notification's
    # runbook link "docs/runbooks/<Alert>.md" goes out as "<this>/runbooks/<Alert>", which
    # opens from Slack or PagerDuty. Unset: links go out as the rules give them.
    runbook_base_url: str | None = None
    # The console's HA and trade-path pages read Prometheus' query API here.
    prometheus_url: str | None = None
    # Who is on call when (tradeguard.responder.roster): the report's fatigue index attributes
    # each alert to the operator on call; without it, shifts are 8 hours and nobody is named.
    roster_file: Path | None = None
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY, ge=1024, le=64 * 1024 * 1024)
    memory_budget_bytes: int = Field(default=MEMORY_BUDGET_BYTES, ge=0)  # 0: no budget
    # Notifications a minute per category (tradeguard.responder.throttle); {} turns it off.
    throttle_per_minute: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_LIMITS))
    throttle_window_seconds: float = Field(default=WINDOW_SECONDS, gt=0)
    # The dead man's switch: AlertPathBroken when no Watchdog arrived for this long; 0: off.
    watchdog_timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, ge=0)
    # An undeliverable notification is retried (with backoff) this long, then given up.
    delivery_deadline_seconds: float = Field(default=DEFAULT_DEADLINE_SECONDS, gt=0)
    # Names this responder's outbox claims; default host:port (see responder.runtime).
    sender_id: str | None = Field(default=None, min_length=1, max_length=200)
    # History older than this many days is deleted (hourly; a still-firing alert and undelivered
    # notifications are kept whatever their age); 0 keeps everything forever.
    retention_days: int = Field(default=DEFAULT_RETENTION_DAYS, ge=0, le=36500)

    # Remediation (tradeguard.responder.remediation): commands go to the engines through the
    # signal layer's Redis; without a URL the responder only notifies. Which actions run by
    # default, and why, is the registry's (tradeguard.remediation.registry); the lists change it.
    redis_url: str | None = None
    redis_url_file: Path | None = None
    redis_password: SecretStr | None = Field(default=None, min_length=1)
    redis_password_file: Path | None = None
    key_prefix: str = Field(default=DEFAULT_KEY_PREFIX, min_length=1, max_length=32)
    remediation_enable: list[str] = Field(default_factory=list)
    remediation_disable: list[str] = Field(default_factory=list)
    remediation_dry_run: bool = False
    remediation_budget: int = Field(default=3, ge=1, le=100)
    remediation_cooldown_seconds: float = Field(default=300.0, gt=0)
    remediation_rate_limit: int = Field(default=6, ge=1)
    remediation_rate_window_seconds: float = Field(default=600.0, gt=0)
    remediation_max_alert_age_seconds: float = Field(default=1800.0, gt=0)
    remediation_repeat_limit: int = Field(default=6, ge=1)
    remediation_repeat_window_seconds: float = Field(default=3600.0, gt=0)
    remediation_verify_seconds: float = Field(default=300.0, gt=0)
    remediation_command_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("throttle_per_minute")
    @classmethod
    def _positive_limits(cls, value: dict[str, int]) -> dict[str, int]:
        bad = sorted(k for k, v in value.items() if v < 1)
        if bad:
            raise ValueError(f"limits must be at least 1 (use {{}} for no throttling): {bad}")
        return value

    @field_validator("runbook_base_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError(f"an http(s):// address without query or fragment, not {value!r}")
        return value

    _check_history = field_validator("history_url")(check_history_url)
    _check_redis = field_validator("redis_url")(check_redis_url)

    def remediation_policy(self) -> GuardPolicy:
        """The guard rails from these settings (ConfigError on an unknown action name)."""
        return GuardPolicy.from_settings(
            self.remediation_enable,
            self.remediation_disable,
            budget=self.remediation_budget,
            cooldown_seconds=self.remediation_cooldown_seconds,
            rate_limit=self.remediation_rate_limit,
            rate_window_seconds=self.remediation_rate_window_seconds,
            max_alert_age_seconds=self.remediation_max_alert_age_seconds,
            repeat_limit=self.remediation_repeat_limit,
            repeat_window_seconds=self.remediation_repeat_window_seconds,
            verify_seconds=self.remediation_verify_seconds,
            pending_timeout_seconds=2 * self.remediation_command_timeout_seconds,
            dry_run=self.remediation_dry_run,
        )

    def commands_redis_url(self) -> str | None:
        """The Redis URL of the command stream, with ``redis_password`` in it when it gives
        none of its own; None when remediation has no Redis (the responder only notifies)."""
        if self.redis_url is None:
            return None
        password = self.redis_password.get_secret_value() if self.redis_password else None
        return with_password(self.redis_url, password)

    def roster(self) -> Roster:
        """The on-call roster from ``roster_file`` (ConfigError naming what is wrong)."""
        return load_roster(self.roster_file)

    def authenticator(self) -> Authenticator:
        """The configured credentials, loaded from their files (AuthConfigError if none)."""
        return build_authenticator(
            token=self.token.get_secret_value() if self.token else None,
            token_file=self.token_file,
            basic_user=self.basic_user,
            basic_password_file=self.basic_password_file,
            insecure=self.insecure,
        )


def load_responder_settings(**overrides: Any) -> ResponderSettings:
    """Settings from the environment and ``overrides`` (None values ignored), as one ConfigError.

    Explicit overrides win over the environment.
    """
    values = {k: v for k, v in overrides.items() if v is not None}
    names = ResponderSettings.file_backed
    sources = [Source(values), environment("TRADEGUARD_RESPONDER_", names)]
    values = without_pairs(values, names) | resolve_sources(names, sources)
    try:
        settings = ResponderSettings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise ConfigError(f"invalid responder settings: {problems}") from None
    settings.roster()  # a roster with a mistake stops the start, not the first report
    return settings
