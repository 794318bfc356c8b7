"""Redis clients per layer, with timeouts and reconnect backoff.

Each layer gets its own client (its own pool) even when all four share one server, so a slow
stream read never queues behind a state write and each layer's connection errors are counted
apart.
"""

from __future__ import annotations

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ExecAbortError,
    MasterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from tradeguard.config import Layer, Settings

# Redis answered but refused our credentials (WRONGPASS / NOAUTH / NOPERM).
AUTH_ERRORS: tuple[type[Exception], ...] = (AuthenticationError, AuthorizationError)

# The errors that mean "Redis is unreachable right now"; callers count and back off on these.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionResetError,
    BrokenPipeError,
)


# Error replies that say something about the server's state, not about the command: a replica
# after a failover (READONLY), memory full (OOM), persistence failing (MISCONF), loading,
# a busy script, a lost script cache. Back off and retry; never end a thread on them.
TRANSIENT_REPLIES = (
    "READONLY",
    "OOM",
    "MISCONF",
    "LOADING",
    "BUSY",
    "NOSCRIPT",
    "MASTERDOWN",
    "NOREPLICAS",
    "TRYAGAIN",
    "CLUSTERDOWN",
)


# redis-py turns some of those codes into classes and strips the code from the message.
_TRANSIENT_CLASSES: tuple[type[Exception], ...] = (
    ReadOnlyError,
    OutOfMemoryError,
    NoScriptError,
    TryAgainError,
    ClusterDownError,
    MasterDownError,
    ExecAbortError,  # a MULTI discarded because a queued command was refused (READONLY, OOM)
)


def is_transient_reply(exc: BaseException) -> bool:
    """Whether a Redis error reply is about the server's state (retry later)."""
    if isinstance(exc, _TRANSIENT_CLASSES):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(TRANSIENT_REPLIES)


def make_client(url: str, socket_timeout: float = 2.0, retries: int = 1) -> Redis:
    """A client that retries once on a dropped connection and fails fast when Redis is down.

    Longer waits are the caller's decision (the engine backs off in its loop, a publisher
    reports the error): hiding a minute of retries inside a call would hide the outage.
    """
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=0,
        decode_responses=False,
    )


def layer_clients(settings: Settings) -> dict[Layer, Redis]:
    """One client per layer, sharing nothing, from the settings' per-layer URLs."""
    return {layer: make_client(settings.layer_url(layer)) for layer in Layer}


def as_text(value: bytes | str | None) -> str:
    """A Redis reply field as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)
