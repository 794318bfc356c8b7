"""One settings object for every tradeguard process.

Values come, in order of precedence, from keyword arguments, ``TRADEGUARD_*`` environment
variables, an optional TOML file (``TRADEGUARD_CONFIG`` or ``--config``) and the defaults below.
Each Redis layer (RTS, RIS, RTSS, RTRS) may live on its own server: its URL falls back to the
shared ``redis_url`` so a one-machine set-up needs a single setting.

Every setting that may hold a password (the Redis URLs, ``redis_password``) may instead be read
from a file, ``<name>_file`` (``TRADEGUARD_REDIS_URL_FILE``, ...; see
:mod:`tradeguard.settings_files`), so that no password needs a command line or the environment.
``redis_password`` serves every Redis whose URL carries no password of its own: one secret for
a deployment whose layers live on several servers.
"""

from __future__ import annotations

import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tradeguard.errors import ConfigError
from tradeguard.net import LOOPBACK
from tradeguard.redact import redact_url
from tradeguard.settings_files import Source, environment, resolve_sources, without_pairs

# Every Redis key tradeguard writes starts with this (bus/keys.py builds the names).
DEFAULT_KEY_PREFIX = "tg:"


class Layer(StrEnum):
    """The four Redis layers of the seeds; their values are the ``layer`` metric label."""

    TRADE_STATE = "trade_state"  # RTS
    INSTANCE_STATE = "instance_state"  # RIS
    SIGNAL_STREAM = "signal_stream"  # RTSS
    RESULT_STREAM = "result_stream"  # RTRS


def check_redis_url(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            f"must start with redis://, rediss:// or unix://, got {redact_url(value)!r}"
        )
    return value


def with_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` in it, unless it has one of its own (or no password is given)."""
    if not password:
        return url
    parts = urlsplit(url)
    if parts.password is not None or any(
        k == "password" for k, _ in parse_qsl(parts.query, keep_blank_values=True)
    ):
        return url
    user, at, host = parts.netloc.rpartition("@")
    netloc = f"{user if at else ''}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


MEMORY_BUDGET_BYTES = 1 << 30  # 1 GiB: a tradeguard process's default memory budget


class InstanceSpec(BaseModel):
    """One supervised terminal/worker instance (``[[instances]]`` in the TOML settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    command: list[str] = Field(min_length=1)
    memory_budget_bytes: int = Field(default=MEMORY_BUDGET_BYTES, gt=0)
    env: dict[str, str] = Field(default_factory=dict)


class Settings(BaseSettings):
    """Every knob of tradeguard, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="TRADEGUARD_", extra="forbid", hide_input_in_errors=True
    )
    # Settings that may hold a password, each with a ``<name>_file`` companion.
    file_backed: ClassVar[tuple[str, ...]] = (
        "redis_url",
        "trade_state_redis_url",
        "instance_state_redis_url",
        "signal_stream_redis_url",
        "result_stream_redis_url",
        "redis_password",
    )

    redis_url: str = f"redis://{LOOPBACK}:6379/0"
    redis_url_file: Path | None = None
    trade_state_redis_url: str | None = None
    trade_state_redis_url_file: Path | None = None
    instance_state_redis_url: str | None = None
    instance_state_redis_url_file: Path | None = None
    signal_stream_redis_url: str | None = None
    signal_stream_redis_url_file: Path | None = None
    result_stream_redis_url: str | None = None
    result_stream_redis_url_file: Path | None = None
    # The password of every Redis whose URL gives none (a URL's own password wins).
    redis_password: SecretStr | None = Field(default=None, min_length=1)
    redis_password_file: Path | None = None
    key_prefix: str = Field(default=DEFAULT_KEY_PREFIX, min_length=1, max_length=32)

    signal_ttl_seconds: float = Field(default=30.0, gt=0)
    signal_max_bytes: int = Field(default=4096, ge=256)
    results_maxlen: int = Field(default=10_000, ge=100)
    reclaim_idle_seconds: float = Field(default=10.0, gt=0)
    consumer_group: str = Field(default="engine", min_length=1)
    # The broker's maximum in-flight time: an order whose fill the broker does not show this
    # long after it was sent will never fill. Orders with an unknown outcome (a timeout, a
    # connection lost mid-order) are looked up only after it, never resent before.
    broker_max_in_flight_seconds: float = Field(default=5.0, ge=0)
    # An order leaves only while the leader's term holds at least this much longer: above the
    # broker's worst-case latency, so it arrives before any successor can exist.
    broker_send_margin_seconds: float = Field(default=1.0, ge=0)
    # Deliveries of a signal entry that keeps failing before it is dead-lettered as poison.
    poison_deliveries: int = Field(default=3, ge=1)

    duckdb_path: Path = Path("run/tradeguard.duckdb")
    # Terminal/worker instances this engine supervises (tradeguard.instances), their restart
    # policy and where their working directories and logs go.
    instances: list[InstanceSpec] = Field(default_factory=list)
    instance_max_recovery_attempts: int = Field(default=3, ge=0)
    instance_stable_seconds: float = Field(default=5.0, ge=0)
    instance_restart_backoff_seconds: float = Field(default=1.0, ge=0)
    instances_dir: Path = Path("run/instances")
    # How often the writing replica compares Redis trade state with DuckDB's copy.
    state_check_interval_seconds: float = Field(default=10.0, gt=0)
    metrics_host: str = LOOPBACK
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    # Resident memory this process may use; BackendMemoryHigh fires at 80 % of it (0: no budget).
    memory_budget_bytes: int = Field(default=MEMORY_BUDGET_BYTES, ge=0)
    # True when the signal filter is a selective one that normally rejects most signals (the
    # seed's): only then is a low rejection rate a problem (LowRejectionRate); False for a plain
    # risk filter, which should reject little.
    signal_filter_expects_rejections: bool = False

    _check_urls = field_validator(
        "redis_url",
        "trade_state_redis_url",
        "instance_state_redis_url",
        "signal_stream_redis_url",
        "result_stream_redis_url",
    )(check_redis_url)

    def layer_url(self, layer: Layer) -> str:
        """The Redis URL serving ``layer``: its own setting, else the shared default; with
        ``redis_password`` in it when it gives no password of its own."""
        own: str | None = getattr(self, f"{layer.value}_redis_url")
        password = self.redis_password.get_secret_value() if self.redis_password else None
        return with_password(own or self.redis_url, password)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings, turning every validation problem into one readable ConfigError.

    The TOML file is optional; its keys are the field names above (without the prefix). The
    environment wins over the file, and explicit ``overrides`` win over both; a file-backed
    setting and its ``_file`` companion count as one (see :mod:`tradeguard.settings_files`).
    """
    path = config_file or os.environ.get("TRADEGUARD_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        p = Path(path)
        try:
            file_values = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    env_keys = {
        name for name in Settings.model_fields if f"TRADEGUARD_{name.upper()}" in os.environ
    }
    names = Settings.file_backed
    merged = {k: v for k, v in without_pairs(file_values, names).items() if k not in env_keys}
    merged |= without_pairs(overrides, names)
    merged |= resolve_sources(
        names,
        [Source(overrides), environment("TRADEGUARD_", names), Source(file_values)],
    )
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
