"""One stack for the end-to-end module: real binaries, fast rules profile, steady workload."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.bus.signal_stream import SignalStream
from tradeguard.chaos.runner import ResponderView
from tradeguard.config import Layer
from tradeguard.engine.generator import GeneratorConfig, SignalGenerator
from tradeguard.stack.layout import StackLayout
from tradeguard.stack.render import ensure_token
from tradeguard.stack.stack import Stack


@dataclass
class LiveStack:
    stack: Stack
    view: ResponderView
    generator: SignalGenerator
    results: dict[str, object] = field(default_factory=dict)

    @property
    def layout(self) -> StackLayout:
        return self.stack.layout


@contextmanager
def running_stack(
    run_dir: Path, responder_env: Mapping[str, str] | None = None
) -> Iterator[LiveStack]:
    """A fast-profile stack of two replicas under a steady 20 signals/s, stopped after."""
    layout = StackLayout.allocate(run_dir, profile="fast", replicas=2)
    stack = Stack(layout, responder_env=responder_env).start()
    gen: SignalGenerator | None = None
    try:
        gen = SignalGenerator(
            SignalStream(
                make_client(layout.redis_url(Layer.SIGNAL_STREAM), socket_timeout=1), Keys()
            ),
            GeneratorConfig(rate=20, seed=5),
        )
        gen.start()
        yield LiveStack(stack, ResponderView(layout.responder_url, ensure_token(layout)), gen)
    finally:
        if gen is not None:
            gen.stop()
        stack.stop()


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as live:
        yield live
