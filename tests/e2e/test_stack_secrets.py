"""The local stack is locked down: Redis requires its password, and no secret is on any command
line of the host (``ps`` shows every user's argv; a secret belongs in a 0600 file or an
environment)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tradeguard.config import Layer
from tradeguard.net import LOOPBACK
from tradeguard.secret_files import read_secret

from .conftest import LiveStack


def command_lines() -> dict[int, str]:
    """Every process's argv on this host, joined with spaces."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        found[int(entry.name)] = raw.replace(b"\0", b" ").decode(errors="replace")
    return found


def test_no_secret_is_on_any_command_line(live_stack: LiveStack) -> None:
    layout = live_stack.layout
    secrets = {
        "Redis password": layout.redis_password,
        "responder token": read_secret(layout.token_file),
        "bypass sink token": read_secret(layout.bypass_sink_token_file),
    }
    assert all(secrets.values()), "the stack runs without one of its secrets"
    lines = command_lines()
    assert set(layout.pids.values()) <= set(lines), "some stack children were not found"
    leaks = [
        f"{what} in pid {pid}: {line[:120]}"
        for pid, line in lines.items()
        for what, value in secrets.items()
        if value and value in line
    ]
    assert leaks == []


@pytest.mark.parametrize("layer", list(Layer))
def test_redis_refuses_a_client_without_the_password(live_stack: LiveStack, layer: Layer) -> None:
    port = live_stack.layout.redis_ports[layer.value]
    anonymous = redis.Redis(host=LOOPBACK, port=port, socket_timeout=2)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.get("anything")
    finally:
        anonymous.close()
    with redis.Redis.from_url(live_stack.layout.redis_url(layer), socket_timeout=2) as client:
        assert client.ping()
