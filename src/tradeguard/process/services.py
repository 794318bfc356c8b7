"""Factories for the real components tradeguard runs against, each on a loopback port.

Each returns an unstarted :class:`ManagedProcess` whose health check is the component's own
readiness signal (a PING, ``/-/ready``, a scrape). Ports default to free ones.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import quote

from tradeguard.errors import ConfigError, ServiceError
from tradeguard.net import LOOPBACK, http_ok
from tradeguard.process.managed import ManagedProcess
from tradeguard.process.ports import free_port, port_open
from tradeguard.secret_files import replace_private


def require_binary(name: str) -> str:
    """Absolute path of ``name`` on PATH, or a ServiceError telling how to get it."""
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"{name} is not installed; run `make setup` (it installs it)")
    return path


@dataclass
class Endpoint:
    """Where a started component listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class RedisServer(ManagedProcess):
    """A throwaway redis-server: no persistence, its own directory, a known port."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        name: str = "redis",
        durable: bool = False,
        extra_args: list[str] | None = None,
        password: str | None = None,
    ) -> None:
        """``durable`` turns on the append-only file with fsync on every write, so a restart
        keeps every acknowledged entry (what the signal layer needs in production).
        ``password`` makes the server require it (``requirepass``, from a 0600 configuration
        file: a command line is readable by every user of the host); ``url`` then carries it."""
        self.port = port or free_port()
        self.password = password
        config: list[str] = []
        if password:
            if any(c in password for c in '"\\\r\n'):
                raise ConfigError("a Redis password must not hold quotes, backslashes or newlines")
            auth = replace_private(Path(workdir) / "auth.conf", f'requirepass "{password}"\n')
            config = [str(auth)]  # redis-server reads a configuration file named first
        argv = [
            require_binary("redis-server"),
            *config,
            *("--bind", LOOPBACK, "--port", str(self.port), "--save", ""),
            *("--appendonly", "yes" if durable else "no", "--appendfsync", "always"),
            *("--dir", str(workdir), "--daemonize", "no", "--protected-mode", "no"),
            *(extra_args or []),
        ]
        super().__init__(name, argv, workdir, health=self._ping)

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{LOOPBACK}:{self.port}/0"

    def _ping(self) -> bool:
        import redis

        client = redis.Redis(
            host=LOOPBACK, port=self.port, password=self.password, socket_timeout=0.5
        )
        try:
            return bool(client.ping())
        finally:
            client.close()


class RedisExporter(ManagedProcess):
    """prometheus-redis-exporter for one Redis, with stream checks on the given keys."""

    def __init__(
        self,
        workdir: Path,
        redis_url: str,
        check_streams: list[str] | None = None,
        port: int | None = None,
        name: str = "redis_exporter",
        password: str | None = None,
    ) -> None:
        """``redis_url`` without credentials; ``password`` reaches the exporter through its
        environment (REDIS_PASSWORD), never its command line."""
        self.endpoint = Endpoint(LOOPBACK, port or free_port())
        argv = [
            require_binary("prometheus-redis-exporter"),
            "-redis.addr",
            redis_url,
            "-web.listen-address",
            f"{LOOPBACK}:{self.endpoint.port}",
        ]
        if check_streams:
            argv += ["-check-streams", ",".join(check_streams)]
        env = {"REDIS_PASSWORD": password} if password else None
        super().__init__(name, argv, workdir, health=self._ready, env=env)

    def _ready(self) -> bool:
        return http_ok(f"{self.endpoint.url}/metrics")


class NodeExporter(ManagedProcess):
    """prometheus-node-exporter on a loopback port."""

    def __init__(self, workdir: Path, port: int | None = None, name: str = "node_exporter") -> None:
        self.endpoint = Endpoint(LOOPBACK, port or free_port())
        argv = [
            require_binary("prometheus-node-exporter"),
            f"--web.listen-address={LOOPBACK}:{self.endpoint.port}",
        ]
        super().__init__(name, argv, workdir, health=self._ready)

    def _ready(self) -> bool:
        return http_ok(f"{self.endpoint.url}/metrics")


class Prometheus(ManagedProcess):
    """A Prometheus server with its own TSDB directory and the given configuration file."""

    def __init__(
        self,
        workdir: Path,
        config_file: Path,
        port: int | None = None,
        retention_time: str = "30d",
        retention_size: str = "50GB",
        name: str = "prometheus",
        extra_args: list[str] | None = None,
    ) -> None:
        self.endpoint = Endpoint(LOOPBACK, port or free_port())
        argv = [
            require_binary("prometheus"),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--storage.tsdb.retention.time={retention_time}",
            f"--storage.tsdb.retention.size={retention_size}",
            f"--web.listen-address={LOOPBACK}:{self.endpoint.port}",
            # The admin API (TSDB deletion, snapshots) is off unless a flag turns it on, and
            # so is the lifecycle API (/-/reload, /-/quit): anyone who can reach the port could
            # use them. ``extra_args`` can ask for either.
            *(extra_args or []),
        ]
        super().__init__(name, argv, workdir, health=self._ready, start_timeout=30)

    def _ready(self) -> bool:
        return http_ok(f"{self.endpoint.url}/-/ready")


@dataclass(frozen=True)
class AlertmanagerCluster:
    """Gossip settings for one Alertmanager peer of a high-availability pair (or more).

    The defaults suit peers on one host: Alertmanager's own (15 s peer timeout, 200 ms gossip,
    1 min push-pull) are sized for a network, and the peer timeout is how long the second peer
    holds a notification back to let the first one's go out and be gossiped: 15 s of that would
    slow every local alert that the first peer cannot send. A shorter gossip interval also
    shortens the settle phase (10 gossip intervals a poll) during which a new peer sends nothing.
    """

    listen_port: int
    peers: tuple[str, ...] = ()  # host:port of the other peers' cluster listeners
    peer_timeout: str = "2s"
    gossip_interval: str = "100ms"
    pushpull_interval: str = "5s"

    def args(self) -> list[str]:
        return [
            f"--cluster.listen-address={LOOPBACK}:{self.listen_port}",
            *(f"--cluster.peer={peer}" for peer in self.peers),
            f"--cluster.peer-timeout={self.peer_timeout}",
            f"--cluster.gossip-interval={self.gossip_interval}",
            f"--cluster.pushpull-interval={self.pushpull_interval}",
        ]


class Alertmanager(ManagedProcess):
    """prometheus-alertmanager with its own storage directory; clustering off unless asked.

    Without ``cluster`` the peer listens for gossip nowhere (``--cluster.listen-address=``), so
    a stand-alone test instance neither binds port 9094 nor waits for peers that never come.
    """

    def __init__(
        self,
        workdir: Path,
        config_file: Path,
        port: int | None = None,
        name: str = "alertmanager",
        cluster: AlertmanagerCluster | None = None,
    ) -> None:
        self.endpoint = Endpoint(LOOPBACK, port or free_port())
        self.cluster = cluster
        argv = [
            require_binary("prometheus-alertmanager"),
            f"--config.file={config_file}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.endpoint.port}",
            *(cluster.args() if cluster else ["--cluster.listen-address="]),
        ]
        super().__init__(name, argv, workdir, health=self._ready)

    def _ready(self) -> bool:
        return http_ok(f"{self.endpoint.url}/-/ready")


def postgres_bin(name: str) -> str:
    """A PostgreSQL server binary: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise ServiceError(f"PostgreSQL's {name} is not installed; run `make setup`")
    return candidates[-1]


class PostgresServer(ManagedProcess):
    """A throwaway PostgreSQL cluster (initdb into its own directory), trust auth on loopback.

    PostgreSQL refuses to run as root; when we are root the cluster lives in a fresh directory
    owned by the ``postgres`` system user and both initdb and the server run as that user.
    """

    def __init__(self, workdir: Path, port: int | None = None, name: str = "postgres") -> None:
        self.port = port or free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            workdir = Path(tempfile.mkdtemp(prefix="tradeguard-pg-"))
            shutil.chown(workdir, user="postgres", group="postgres")
        self.datadir = workdir / "pgdata"
        argv = [
            postgres_bin("postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            f"unix_socket_directories={workdir}",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ]
        super().__init__(
            name, argv, workdir, health=self._ready, user="postgres" if self._as_root else None
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    def start(self) -> Self:
        if not (self.datadir / "PG_VERSION").exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            cmd = [
                postgres_bin("initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ]
            result = subprocess.run(
                cmd, capture_output=True, text=True, check=False, user=self.user, cwd=self.workdir
            )
            if result.returncode != 0:
                raise ServiceError(f"initdb failed: {result.stderr.strip()}")
        super().start()
        return self

    def _ready(self) -> bool:
        """Accepting queries, not just the port: PostgreSQL opens it while still starting."""
        if not port_open(LOOPBACK, self.port):
            return False
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False
