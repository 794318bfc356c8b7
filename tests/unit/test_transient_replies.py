"""Which Redis error replies mean "the server's state, retry later" rather than "this entry"."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    ExecAbortError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)

from tradeguard.bus.connection import is_transient_reply


@pytest.mark.parametrize(
    "exc",
    [
        # redis-py maps these codes to classes and strips the code from the message
        ReadOnlyError("You can't write against a read only replica."),
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        NoScriptError("No matching script."),
        ExecAbortError("Transaction discarded because of previous errors."),
        # these come as plain ResponseError with the code in the message
        ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's unable"),
        ResponseError("BUSY Redis is busy running a script."),
        ResponseError("NOREPLICAS Not enough good replicas to write."),
    ],
)
def test_server_state_replies_are_transient(exc: Exception) -> None:
    assert is_transient_reply(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ResponseError("ERR value is not a valid float"),
        ValueError("not a Redis reply"),
    ],
)
def test_replies_about_the_command_are_not(exc: Exception) -> None:
    assert not is_transient_reply(exc)
