"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from http_sink import Sink
from responder_harness import (  # noqa: F401  (fixtures, registered by being imported here)
    _no_responder_environment,
    history_url,
    postgres,
    start_responder,
)


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A recording HTTP server on a free loopback port, stopped at the end of the test."""
    server = Sink().start()
    try:
        yield server
    finally:
        server.stop()
