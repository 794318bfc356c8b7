"""The command stream against a real Redis: what the responder issues, an engine reads and
answers; a malformed entry does not stop the reader; an engine joining later does not see
older commands."""

from __future__ import annotations

import time

from tradeguard.bus.commands import ANY_ENGINE, Command, CommandAnswer, CommandBus, CommandError
from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.process.services import RedisServer


def test_a_command_goes_out_and_its_answers_come_back(redis_server: RedisServer) -> None:
    bus = CommandBus(make_client(redis_server.url), Keys())
    start = bus.last_id()
    command = Command("restart_instance", ANY_ENGINE, {"instance": "mt5-1"}, "abc@2024", timeout=5)
    bus.issue(command)
    [(entry_id, read)] = bus.read(start, block_ms=100)
    assert read == command and read.addressed_to("engine-a")
    assert not Command("reconnect_redis", "engine-b").addressed_to("engine-a")
    bus.answer(read.command_id, CommandAnswer("engine-a", "acknowledged"))
    bus.answer(read.command_id, CommandAnswer("engine-a", "done", "restarted", 0.25))
    answers = bus.answers(command.command_id)
    assert [(a.answer, a.final) for a in answers] == [("acknowledged", False), ("done", True)]
    assert answers[1].detail == "restarted" and answers[1].duration_seconds == 0.25
    assert bus.read(entry_id, block_ms=10) == []
    assert bus.redis.ttl(Keys().command_answers(command.command_id)) > 0


def test_a_malformed_entry_is_returned_as_its_error_and_the_reader_moves_on(
    redis_server: RedisServer,
) -> None:
    bus = CommandBus(make_client(redis_server.url), Keys())
    start = bus.last_id()
    bus.redis.xadd(Keys().commands, {"id": "x1", "action": "reconnect_redis", "params": "[1]"})
    good = Command("reconnect_redis")
    bus.issue(good)
    read = [item for _id, item in bus.read(start, block_ms=100)]
    assert isinstance(read[0], CommandError) and "x1" in str(read[0])
    assert read[1] == good


def test_a_reader_joining_later_starts_after_the_newest_command(redis_server: RedisServer) -> None:
    bus = CommandBus(make_client(redis_server.url), Keys())
    bus.issue(Command("reconnect_redis"))
    joined = bus.last_id()
    assert bus.read(joined, block_ms=10) == []
    old = Command("reconnect_broker", issued_at=time.time() - 60, timeout=30)
    assert old.expired()
