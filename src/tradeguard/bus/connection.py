"""Redis clients per layer, with timeouts and reconnect backoff.

Each layer gets its own client (its own pool) even when all four share one server, so a slow
stream read never queues behind a state write and each layer's connection errors are counted
apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
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
from tradeguard.errors import TradeguardError
from tradeguard.redact import redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")

# Redis answered but refused our credentials (WRONGPASS / NOAUTH / NOPERM, or an AUTH with a
# user name a pre-ACL server does not take). Retrying cannot help: the URL has to change.
AUTH_ERRORS: tuple[type[Exception], ...] = (
    AuthenticationError,
    AuthorizationError,
    AuthenticationWrongNumberOfArgsError,
)

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


class RedisAuthError(TradeguardError):
    """Redis refused the credentials in a URL: a setting to fix, not an outage to wait out.

    The message names the URL with its password masked, and the layers using it when known.
    """

    def __init__(self, url: str, reply: BaseException, layers: Sequence[str] = ()) -> None:
        self.url = redact_url(url)
        self.layers = tuple(layers)
        self.reply = str(reply).strip().rstrip(".") or type(reply).__name__
        where = ""
        if self.layers:
            where = f" ({'layer' if len(self.layers) == 1 else 'layers'} {', '.join(self.layers)})"
        if self.url == url:  # nothing was masked: the URL has no password
            what = f"Redis refused {self.url}{where}, which gives no password"
            fix = "put the password in the Redis URL"
        else:
            what = f"Redis refused the password for {self.url}{where}"
            fix = "fix the password in the Redis URL"
        super().__init__(f"{what} ({self.reply}); {fix}")


class _AuthFailsFast(Retry):  # type: ignore[misc]  # redis is untyped here (follow_imports)
    """redis-py's retry, except that a refused password is never retried: it is raised at once
    (AuthenticationError subclasses ConnectionError, which the retry otherwise repeats)."""

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def retryable(error: Exception) -> bool:
            if isinstance(error, AUTH_ERRORS):
                return False
            return is_retryable(error) if is_retryable is not None else True

        return cast(T, super().call_with_retry(do, fail, retryable, with_failure_count))


def make_client(url: str, socket_timeout: float = 2.0, retries: int = 1) -> Redis:
    """A client that retries once on a dropped connection and fails fast when Redis is down.

    Longer waits are the caller's decision (the engine backs off in its loop, a publisher
    reports the error): hiding a minute of retries inside a call would hide the outage. A
    refused password is not retried at all.
    """
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=_AuthFailsFast(ExponentialBackoff(cap=0.5, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=0,
        decode_responses=False,
    )


def layer_clients(settings: Settings) -> dict[Layer, Redis]:
    """One client per layer, sharing nothing, from the settings' per-layer URLs."""
    return {layer: make_client(settings.layer_url(layer)) for layer in Layer}


def check_credentials(client: Redis, url: str, layers: Sequence[str] = ()) -> None:
    """Raise RedisAuthError if Redis refuses ``url``'s credentials; anything else passes.

    Called once at start-up: a wrong password is then one clear error instead of a loop that
    retries it as an outage forever. An unreachable Redis is not this check's business (the
    callers ride outages out), so connection errors and timeouts are let through.
    """
    try:
        client.ping()
    except AUTH_ERRORS as exc:
        raise RedisAuthError(url, exc, layers) from None
    except CONNECTION_ERRORS as exc:
        log.debug("credential check of %s skipped: Redis unreachable (%s)", redact_url(url), exc)


def as_text(value: bytes | str | None) -> str:
    """A Redis reply field as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)
