"""The signal generator against a real redis-server: what it reports is what Redis holds."""

from __future__ import annotations

import json
import threading

from redis import Redis

from tradeguard.bus import Keys, Signal, SignalStream
from tradeguard.bus.connection import make_client
from tradeguard.bus.signals import SIGNAL_FIELD
from tradeguard.engine.generator import GeneratorConfig, SignalGenerator
from tradeguard.process.services import RedisServer


class HeldOnceStream(SignalStream):
    """Holds the first publish until released, so it completes after the caller asked to stop."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis, Keys())
        self.entered = threading.Event()
        self.release = threading.Event()

    def publish(self, signal: Signal) -> bytes:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(10), "the test never released the held publish"
        return super().publish(signal)


def queued_ids(client: Redis) -> set[str]:
    return {
        json.loads(fields[SIGNAL_FIELD])["signal_id"]
        for _id, fields in client.xrange(Keys().signals)
    }


def test_stop_waits_for_the_publish_in_flight(redis_server: RedisServer) -> None:
    """A signal queued while stop() runs is in the report stop() returns, never only in Redis.

    An audit that read the report before the last publish finished found that signal executed
    but never published.
    """
    client = make_client(redis_server.url)
    stream = HeldOnceStream(client)
    gen = SignalGenerator(stream, GeneratorConfig(rate=0, seed=7)).start()
    assert stream.entered.wait(10), "the generator never published"
    releaser = threading.Timer(0.2, stream.release.set)  # lands while stop() is waiting
    releaser.start()
    report = gen.stop()
    releaser.join()
    queued = queued_ids(client)
    assert queued, "the held publish never reached Redis"
    assert queued == set(report.published)
    assert len(gen.report.published) == len(report.published), "published after stop() returned"


def test_start_twice_is_refused(redis_server: RedisServer) -> None:
    gen = SignalGenerator(SignalStream(make_client(redis_server.url), Keys()), GeneratorConfig())
    gen.start()
    try:
        try:
            gen.start()
        except RuntimeError as exc:
            assert "already running" in str(exc)
        else:
            raise AssertionError("a second start() was accepted")
    finally:
        gen.stop()
