"""free_port picks ports the kernel never assigns by itself, and never the same one twice."""

from __future__ import annotations

import socket

import pytest

from tradeguard.process import ports
from tradeguard.process.ports import LOWEST, _ephemeral_start, free_port


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(LOWEST <= p < _ephemeral_start() for p in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # still free


def test_a_port_in_use_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        in_use = taken.getsockname()[1]
        picks = iter([in_use, in_use, LOWEST + 7])

        class Scripted:
            def randint(self, low: int, high: int) -> int:
                return next(picks)

        monkeypatch.setattr(ports, "_ephemeral_start", lambda: 65_000)  # in_use now eligible
        monkeypatch.setattr(ports, "_random", Scripted())
        monkeypatch.setattr(ports, "_issued", set())
        assert free_port() == LOWEST + 7
