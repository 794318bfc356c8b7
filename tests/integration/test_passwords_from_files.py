"""Passwords from files against real servers that require them, never from a command line.

A PostgreSQL cluster of its own whose TCP connections need a password (scram-sha-256; the shared
fixtures trust loopback) and a redis-server with ``requirepass``. A ledger or history URL with no
password connects through libpq's password file (PGPASSFILE); a whole URL comes from a
``*_FILE``; ``tradeguard ha status`` reaches both with nothing secret in its argv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from responder_harness import responder_argv

from tradeguard.ha.ledger import open_ledger
from tradeguard.net import LOOPBACK
from tradeguard.process.managed import wait_until
from tradeguard.process.services import PostgresServer, RedisServer
from tradeguard.responder.history import HistoryError, open_history
from tradeguard.responder.settings import load_responder_settings

PG_PASSWORD = "pg-Secret-7f3a"


class LockedPostgres:
    """A throwaway cluster whose loopback TCP connections need the password (the Unix socket,
    which only the harness uses, stays trusted)."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.port = server.port

    @property
    def socket_url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.server.workdir}&port={self.port}"

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        auth = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{auth}@{LOOPBACK}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.socket_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return name


@pytest.fixture(scope="module")
def locked_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockedPostgres]:
    server = PostgresServer(tmp_path_factory.mktemp("pg-locked")).start()
    try:
        wait_until(lambda: _answers(server.url), 30, "PostgreSQL to accept connections")
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f"ALTER USER postgres PASSWORD '{PG_PASSWORD}'".encode())
            hba = server.datadir / "pg_hba.conf"
            hba.write_text(
                "local all all trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
                "host all all ::1/128 scram-sha-256\n"
            )
            conn.execute("SELECT pg_reload_conf()")
        locked = LockedPostgres(server)
        # The reload is asynchronous: wait until loopback TCP really asks for the password.
        wait_until(lambda: not _answers(server.url), 10, "PostgreSQL to require a password")
        yield locked
    finally:
        server.stop()
        if server.workdir.name.startswith("tradeguard-pg-"):  # root: a private temp dir
            shutil.rmtree(server.workdir, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


@pytest.fixture
def passfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No PGPASSWORD; PGPASSFILE names an empty 0600 password file the test fills."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    path = tmp_path / "pgpass"
    path.touch(mode=0o600)
    monkeypatch.setenv("PGPASSFILE", str(path))
    return path


def allow(passfile: Path, pg: LockedPostgres) -> None:
    """libpq's format: host:port:database:user:password (it ignores a file others may read)."""
    passfile.write_text(f"{LOOPBACK}:{pg.port}:*:postgres:{PG_PASSWORD}\n")
    passfile.chmod(0o600)


def test_the_cluster_refuses_a_url_without_its_password(
    locked_postgres: LockedPostgres, passfile: Path
) -> None:
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(locked_postgres.url(), connect_timeout=2).close()


def test_a_ledger_url_without_password_connects_through_the_passfile(
    locked_postgres: LockedPostgres, passfile: Path
) -> None:
    url = locked_postgres.url(locked_postgres.create_database("ledger_passfile"))
    allow(passfile, locked_postgres)
    ledger = open_ledger(url, timeout=5.0)
    try:
        ledger.setup()
        assert ledger.read().epoch == 0
    finally:
        ledger.close()


def test_a_history_url_without_password_connects_through_the_passfile(
    locked_postgres: LockedPostgres, passfile: Path
) -> None:
    url = locked_postgres.url(locked_postgres.create_database("history_passfile"))
    with pytest.raises(HistoryError) as refused:
        open_history(url)
    assert "password" in str(refused.value)
    allow(passfile, locked_postgres)
    history = open_history(url)
    history.close()


def test_the_history_url_with_its_password_comes_from_a_file(
    locked_postgres: LockedPostgres,
    passfile: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = locked_postgres.create_database("history_url_file")
    url_file = tmp_path / "history-url"
    url_file.write_text(locked_postgres.url(database, PG_PASSWORD) + "\n")
    monkeypatch.setenv("TRADEGUARD_RESPONDER_HISTORY_URL_FILE", str(url_file))
    history = open_history(load_responder_settings().history_url)
    history.close()


def ha_status(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRADEGUARD_", "PG"))}
    return subprocess.run(
        [sys.executable, "-m", "tradeguard.cli", "ha", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**clean, **env},
    )


def test_ha_status_takes_every_password_from_files(
    locked_postgres: LockedPostgres,
    locked_redis: RedisServer,
    passfile: Path,
    tmp_path: Path,
) -> None:
    """The ledger URL (password and all) and the Redis password each from a file, by
    environment: nothing secret on the command line, and both servers answer."""
    database = locked_postgres.create_database("ledger_url_file")
    allow(passfile, locked_postgres)
    ledger = open_ledger(locked_postgres.url(database), timeout=5.0)
    ledger.setup()
    ledger.close()
    passfile.write_text("")  # from here on only the files below hold the passwords

    ledger_file = tmp_path / "ledger-url"
    ledger_file.write_text(locked_postgres.url(database, PG_PASSWORD) + "\n")
    redis_password = tmp_path / "redis-password"
    assert locked_redis.password is not None
    redis_password.write_text(locked_redis.password + "\n")
    env = {
        "TRADEGUARD_LEDGER_URL_FILE": str(ledger_file),
        "TRADEGUARD_REDIS_URL": f"redis://{LOOPBACK}:{locked_redis.port}/0",
        "TRADEGUARD_REDIS_PASSWORD_FILE": str(redis_password),
        "PGPASSFILE": str(passfile),
    }
    out = ha_status(env)
    assert out.returncode == 0, out.stderr
    assert "epoch 0" in out.stdout
    assert "Redis unreachable" not in out.stdout

    # A ledger URL without password by TRADEGUARD_LEDGER_URL, the password in libpq's file.
    allow(passfile, locked_postgres)
    env.pop("TRADEGUARD_LEDGER_URL_FILE")
    env["TRADEGUARD_LEDGER_URL"] = locked_postgres.url(database)
    out = ha_status(env)
    assert out.returncode == 0, out.stderr
    assert "epoch 0" in out.stdout

    # Without the password anywhere: one clear error line, no traceback.
    passfile.write_text("")
    out = ha_status(env)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "password" in out.stderr


def test_two_ledger_urls_from_one_source_are_refused(tmp_path: Path) -> None:
    ledger_file = tmp_path / "ledger-url"
    ledger_file.write_text(f"postgresql://postgres:{PG_PASSWORD}@{LOOPBACK}:1/l\n")
    out = ha_status(
        {"TRADEGUARD_LEDGER_URL_FILE": str(ledger_file)},
        "--ledger-url-file",
        str(ledger_file),
        "--ledger-url",
        f"sqlite:///{tmp_path / 'l.sqlite'}",
    )
    assert out.returncode == 2
    assert "--ledger-url and --ledger-url-file are both given" in out.stderr
    assert PG_PASSWORD not in out.stderr + out.stdout


def test_the_responder_takes_its_history_url_from_a_file_on_the_command_line(
    locked_postgres: LockedPostgres, tmp_path: Path
) -> None:
    """``tradeguard responder --history-url-file``: the URL with its password read from the
    file, nothing secret in the process's argv, the history reachable (its /healthz says so)."""
    import httpx

    from tradeguard.process.ports import free_port

    database = locked_postgres.create_database("history_url_cli")
    url_file = tmp_path / "history-url"
    url_file.write_text(locked_postgres.url(database, PG_PASSWORD) + "\n")
    port = free_port()
    argv = responder_argv(port, tmp_path, history=["--history-url-file", str(url_file)])
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRADEGUARD_", "PG"))}
    log = tmp_path / "responder.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=clean)
    try:

        def healthy() -> bool:
            return httpx.get(f"http://{LOOPBACK}:{port}/healthz", timeout=1).status_code == 200

        wait_until(lambda: proc.poll() is not None or healthy(), 30, "the responder to start")
        assert proc.poll() is None, log.read_text()
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert PG_PASSWORD not in cmdline
        socket_url = locked_postgres.socket_url.replace("/postgres?", f"/{database}?")
        with psycopg.connect(socket_url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
        assert tables is not None and tables[0] > 0, "the history went somewhere else"
    finally:
        proc.terminate()
        proc.wait(15)
