"""The responder test harness: payload builders, a started responder with its helpers, and the
fixtures (registered by conftest.py) that start responders and PostgreSQL for the tests."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tradeguard.process import wait_until
from tradeguard.process.services import PostgresServer
from tradeguard.responder.channels import Channel
from tradeguard.responder.service import ResponderServer, ResponderSettings

TOKEN = "responder-test-token-6f1c"
FINGERPRINT = "a1b2c3d4e5f60718"
STARTS_AT = "2024-05-01T10:00:00.123456789Z"


# ---- payloads -------------------------------------------------------------------------------
RESPONDER_COMMAND = (sys.executable, "-m", "tradeguard.cli", "responder")


def responder_argv(
    port: int,
    tmp_path: Path,
    *options: str,
    command: Sequence[str] = RESPONDER_COMMAND,
    history: Sequence[str] | None = None,
) -> list[str]:
    """The command line of a responder in its own process: on ``port``, TOKEN in a file under
    ``tmp_path``, its history there (unless ``history`` gives other options), no console
    output, no dead man's switch; ``options`` added; ``command`` to run it through a launcher.
    """
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    if history is None:
        history = ["--history-url", f"sqlite:///{tmp_path / 'history.sqlite3'}"]
    return [
        *command,
        "--port",
        str(port),
        "--token-file",
        str(token_file),
        *history,
        "--no-console",
        "--watchdog-timeout",
        "0",
        *options,
    ]


def alert(status: str = "firing", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": status,
        "labels": {
            "alertname": "RedisTradeStateLatencyHigh",
            "severity": "critical",
            "component": "redis_trade_state",
            "instance": "127.0.0.1:6379",
        },
        "annotations": {
            "summary": "Trade-state Redis reads are slow.",
            "description": "p99 read latency is 12ms (threshold 5ms).",
            "runbook_url": "docs/runbooks/RedisTradeStateLatencyHigh.md",
        },
        "startsAt": STARTS_AT,
        "endsAt": "2024-05-01T10:03:30Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": FINGERPRINT,
    }
    base.update(overrides)
    return base


def payload(*alerts: dict[str, Any], receiver: str = "chat-critical") -> dict[str, Any]:
    items = list(alerts) or [alert()]
    return {
        "version": "4",
        "groupKey": '{}:{alertname="RedisTradeStateLatencyHigh"}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in items) else "resolved",
        "receiver": receiver,
        "groupLabels": {"alertname": "RedisTradeStateLatencyHigh"},
        "commonLabels": {"alertname": "RedisTradeStateLatencyHigh", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": items,
    }


def body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


# ---- services -------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_responder_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the tests alone, whatever TRADEGUARD_RESPONDER_* the shell has."""
    for name in list(os.environ):
        if name.startswith("TRADEGUARD_RESPONDER_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL for the module; each test gets its own database in it."""
    server = PostgresServer(tmp_path_factory.mktemp("pg")).start()
    try:
        # The harness's health check is "port open", which happens before PostgreSQL accepts
        # connections ("the database system is starting up"); wait for a real query.
        wait_until(lambda: _answers(server.url), 30, "PostgreSQL to accept connections")
        yield server
    finally:
        server.stop()
        if server.workdir.name.startswith("tradeguard-pg-"):  # root: a private temp dir
            shutil.rmtree(server.workdir, ignore_errors=True)


def _answers(url: str) -> bool:
    with psycopg.connect(url, connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def fresh_database(server: PostgresServer) -> str:
    name = f"responder_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return server.url.rsplit("/", 1)[0] + "/" + name


def stored_count(history_url: str) -> int:
    """Rows in alert_events, read straight from the database."""
    if history_url.startswith("sqlite:///"):
        path = history_url.removeprefix("sqlite:///")
        if not Path(path).exists():
            return 0
        with sqlite3.connect(path) as conn:
            return int(conn.execute("SELECT count(*) FROM alert_events").fetchone()[0])
    with psycopg.connect(history_url) as conn:
        row = conn.execute("SELECT count(*) FROM alert_events").fetchone()
        assert row is not None
        return int(row[0])


@dataclass
class Responder:
    server: ResponderServer
    history_url: str
    jsonl: Path

    @property
    def url(self) -> str:
        return self.server.url

    def post(
        self,
        content: bytes | Iterator[bytes],
        token: str | None = TOKEN,
        content_type: str = "application/json",
        **headers: str,
    ) -> httpx.Response:
        hdrs = {"Content-Type": content_type, **headers}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        return httpx.post(self.server.webhook_url, content=content, headers=hdrs, timeout=10)

    def get(self, path: str, token: str | None = TOKEN, **params: Any) -> httpx.Response:
        hdrs = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.url + path, headers=hdrs, params=params, timeout=10)

    def notifications(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        return [json.loads(line) for line in self.jsonl.read_text().splitlines()]

    def wait_notified(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The JSONL notifications once there are at least ``count`` (delivery is async)."""
        wait_until(
            lambda: len(self.notifications()) >= count,
            timeout,
            f"{count} notification(s) in {self.jsonl.name}",
        )
        return self.notifications()

    def outbox(self) -> dict[str, int]:
        totals: dict[str, int] = self.get("/healthz", token=None).json()["outbox"]
        return totals

    def settle(self, held: int = 0, timeout: float = 10.0) -> None:
        """Until the sender has handled everything it can now (nothing pending)."""
        wait_until(
            lambda: self.outbox() == {"pending": 0, "held": held, "dead": 0},
            timeout,
            f"the outbox to settle with {held} held",
        )

    def stored(self) -> int:
        return stored_count(self.history_url)

    def counter(self, name: str, **labels: str) -> float:
        value = self.server.metrics.registry.get_sample_value(name, labels)
        return value if value is not None else 0.0


StartResponder = Callable[..., Responder]


@pytest.fixture
def start_responder(tmp_path: Path) -> Iterator[StartResponder]:
    """Starts responders (token auth, JSONL channel) and stops them all at the end."""
    started: list[ResponderServer] = []

    def start(
        history_url: str | None = None,
        channels: list[Channel] | None = None,
        **settings: Any,
    ) -> Responder:
        url = history_url or f"sqlite:///{tmp_path / 'history.sqlite3'}"
        jsonl = tmp_path / "notifications.jsonl"
        values: dict[str, Any] = {
            "port": 0,
            "token": TOKEN,
            "history_url": url,
            "jsonl_path": jsonl,
            "console": False,
        }
        values.update(settings)
        config = ResponderSettings(**values)
        server = ResponderServer(config, channels=channels).start()
        started.append(server)
        return Responder(server, url, jsonl)

    yield start
    for server in started:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite3'}"
    return fresh_database(request.getfixturevalue("postgres"))
