"""The named errors behind the CLI's one-line messages: configuration mistakes are ConfigError
(not ValueError), and a Redis password never reaches a message."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.exceptions import AuthenticationError
from rich.console import Console

from tradeguard.bus.connection import RedisAuthError
from tradeguard.chaos.tour import run_tour
from tradeguard.errors import ConfigError
from tradeguard.ha.decide import HAConfig
from tradeguard.redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cr%40t@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (
            "rediss://alice:pw@redis.example:6380/2?ssl=1",
            "rediss://alice:***@redis.example:6380/2?ssl=1",
        ),
        ("redis://:pw@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("unix://:pw@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("redis://:pw@host:notaport/0", "<unparsable URL>"),
        (
            "postgresql://u@db:5432/x?sslmode=require&password=pw",
            "postgresql://u@db:5432/x?sslmode=require&password=***",
        ),
        ("postgresql://u:pw@db/x", "postgresql://u:***@db/x"),
    ],
)
def test_redact_url_masks_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_auth_error_message_names_the_url_not_the_password() -> None:
    exc = RedisAuthError(
        "redis://:hunter2@127.0.0.1:7000/0",
        AuthenticationError("invalid username-password pair or user is disabled."),
        ["signal_stream"],
    )
    assert "hunter2" not in str(exc)
    assert str(exc).startswith(
        "Redis refused the password for redis://:***@127.0.0.1:7000/0 (layer signal_stream)"
    )


def test_unknown_scenarios_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown scenarios"):
        run_tour(Console(), tmp_path / "run", ["nope"], 1.0, 1.0)
    assert not (tmp_path / "run").exists()


def test_impossible_ha_timing_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--renew-interval"):
        HAConfig("r1", ttl=1.0, renew_interval=2.0)


def test_an_unknown_ledger_or_history_scheme_is_named_without_its_password() -> None:
    from tradeguard.errors import ConfigError
    from tradeguard.ha.ledger import open_ledger
    from tradeguard.responder.history import open_history

    for opener in (open_ledger, open_history):
        with pytest.raises(ConfigError) as caught:
            opener("mysql://trader:hunter2@db.example/ledger")
        assert "hunter2" not in str(caught.value)
        assert "mysql://trader:***@db.example/ledger" in str(caught.value)
