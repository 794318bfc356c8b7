"""The typed responder client against a real responder: what it reads, and the one line it
gives for each way the responder cannot be used (refused token, nothing listening, no answer).

Those lines are what ``tradeguard alerts ...``, ``alerts test`` and ``status`` print, so they
are pinned here whole: a reworded reason is a user-visible change.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from responder_harness import FINGERPRINT, TOKEN, StartResponder, body, payload, responder_argv

from tradeguard.net import LOOPBACK, http_ok
from tradeguard.process import ManagedProcess, free_port
from tradeguard.responder.client import Hints, ResponderClient, ResponderUnavailable

STACK_LIKE = Hints(
    token_label="the stack's token",
    refused="restart the stack",
    unreachable="is it running?",
)


def test_reads_what_the_responder_stored(start_responder: StartResponder) -> None:
    r = start_responder()
    assert r.post(body(payload())).status_code == 200
    with ResponderClient(r.url, TOKEN) as client:
        firing = client.firing()
        assert [a["alertname"] for a in firing] == ["RedisTradeStateLatencyHigh"]
        events = client.history(alertname="RedisTradeStateLatencyHigh", limit=5)
        assert [(e["alertname"], e["status"]) for e in events] == [
            ("RedisTradeStateLatencyHigh", "firing")
        ]
        assert client.history(alertname="NoSuchAlert") == []
        health = client.healthz()
        assert health["status"] == "ok" and "outbox" in health
        r.wait_notified(1)
        r.settle()
        page = client.notifications(limit=10, states=["sent"])
        assert [n["channel"] for n in page.rows] == ["jsonl"]
        assert page.totals == {"pending": 0, "held": 0, "dead": 0}
        ack = client.acknowledge(FINGERPRINT, "ana", note="looking")
        assert ack["acked_by"] == "ana" and ack["fingerprint"] == FINGERPRINT
        assert client.report(days=1)["acknowledged"] == 1


def test_healthz_needs_no_token(start_responder: StartResponder) -> None:
    r = start_responder()
    with ResponderClient(r.url) as client:
        assert client.healthz()["status"] == "ok"


def test_a_refused_token_is_one_line_without_the_token(start_responder: StartResponder) -> None:
    r = start_responder()
    with (
        ResponderClient(r.url, "not-the-token") as client,
        pytest.raises(ResponderUnavailable) as caught,
    ):
        client.history(limit=1)
    assert str(caught.value) == (
        f"the responder at {r.url} refused the credentials (401); "
        "give --token-file or set TRADEGUARD_RESPONDER_TOKEN"
    )


def test_a_refused_token_names_its_file_and_the_callers_fix(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    r = start_responder()
    token_file = tmp_path / "responder.token"
    with (
        ResponderClient(r.url, "not-the-token", token_file=token_file, hints=STACK_LIKE) as client,
        pytest.raises(ResponderUnavailable) as caught,
    ):
        client.firing()
    message = str(caught.value)
    assert message == (
        f"the responder at {r.url} refused the stack's token (401): the token in {token_file} "
        "is not the one it was started with; restart the stack"
    )
    assert "not-the-token" not in message


def test_an_error_answer_shows_the_responders_reason(start_responder: StartResponder) -> None:
    r = start_responder()
    with ResponderClient(r.url, TOKEN) as client, pytest.raises(ResponderUnavailable) as caught:
        client.acknowledge("abc", "ana")
    assert str(caught.value) == (
        f"the responder at {r.url} answered 404: no alert with fingerprint abc has fired"
    )


def test_nothing_listening_is_unreachable_with_the_hint() -> None:
    url = f"http://{LOOPBACK}:{free_port()}"
    with (
        ResponderClient(url, TOKEN, timeout=2) as client,
        pytest.raises(ResponderUnavailable) as caught,
    ):
        client.history()
    message = str(caught.value)
    assert message.startswith(f"the responder at {url} is unreachable (")
    assert message.endswith("); is `tradeguard responder` running, and is --url right?")
    assert "\n" not in message


def test_an_unusable_url_is_the_same_error() -> None:
    with pytest.raises(ResponderUnavailable) as caught:
        ResponderClient(f"http://{LOOPBACK}:notaport")
    assert str(caught.value) == "the responder URL is not usable: Invalid port: 'notaport'"


@pytest.fixture
def responder_process(tmp_path: Path) -> Iterator[tuple[ManagedProcess, str]]:
    """A responder in its own process, so it can be frozen (SIGSTOP) like a hung one."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    argv = responder_argv(port, tmp_path)
    proc = ManagedProcess(
        "responder", argv, tmp_path, health=lambda: http_ok(f"{url}/healthz"), start_timeout=30
    )
    with proc:
        yield proc, url


def test_a_responder_that_does_not_answer_times_out_in_one_line(
    responder_process: tuple[ManagedProcess, str],
) -> None:
    proc, url = responder_process
    with ResponderClient(url, TOKEN, timeout=0.5) as client:
        assert client.history(limit=1) == []
        proc.pause()  # keeps its socket: the connection is made, no answer comes
        try:
            with pytest.raises(ResponderUnavailable) as caught:
                client.history(limit=1)
        finally:
            proc.resume()
        assert str(caught.value) == (
            f"the responder at {url} did not answer within 0.5s (ReadTimeout)"
        )
        assert client.history(limit=1) == []  # the same client works once it answers again
