"""Where every part of a local stack lives: ports, directories, URLs; saved as JSON.

The layout is decided once at ``tradeguard up`` (free loopback ports) and written to
``<run_dir>/stack.json`` so ``tradeguard status`` and ``tradeguard down`` can find the parts.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from urllib.parse import quote

from tradeguard.config import Layer
from tradeguard.net import LOOPBACK
from tradeguard.process.ports import free_port
from tradeguard.secret_files import read_secret

STATE_FILE = "stack.json"
# Alertmanager runs as a high-availability pair, as in production: a second peer that gossips
# its notification log with the first, so losing one peer loses no notification.
ALERTMANAGER_PEERS = ("alertmanager-1", "alertmanager-2")


@dataclass
class StackLayout:
    run_dir: Path
    profile: str = "default"
    shared_redis: bool = True
    replicas: int = 2
    workload_rate: float = 0.0
    redis_ports: dict[str, int] = field(default_factory=dict)  # layer -> port
    exporter_ports: dict[str, int] = field(default_factory=dict)  # layer -> port
    engine_ports: dict[str, int] = field(default_factory=dict)  # replica id -> metrics port
    node_port: int = 0
    responder_port: int = 0
    prometheus_port: int = 0
    alertmanager_ports: dict[str, int] = field(default_factory=dict)  # peer -> web port
    alertmanager_cluster_ports: dict[str, int] = field(default_factory=dict)  # peer -> gossip
    bypass_sink_port: int = 0
    supervisor_pid: int | None = None
    pids: dict[str, int] = field(default_factory=dict)
    # Start times (clock ticks since boot) of the supervisor and of each child, so that `down`
    # never signals a process that merely reuses a recorded PID (stack.processes).
    supervisor_started: int | None = None
    started: dict[str, int] = field(default_factory=dict)
    ready: bool = False

    @classmethod
    def allocate(
        cls,
        run_dir: Path,
        profile: str = "default",
        shared_redis: bool = True,
        replicas: int = 2,
        workload_rate: float = 0.0,
    ) -> StackLayout:
        layout = cls(run_dir.resolve(), profile, shared_redis, replicas, workload_rate)
        shared = free_port()
        for layer in Layer:
            layout.redis_ports[layer.value] = shared if shared_redis else free_port()
            layout.exporter_ports[layer.value] = free_port()
        for i in range(1, replicas + 1):
            layout.engine_ports[f"engine-{i}"] = free_port()
        layout.node_port = free_port()
        layout.responder_port = free_port()
        layout.prometheus_port = free_port()
        for peer in ALERTMANAGER_PEERS:
            layout.alertmanager_ports[peer] = free_port()
            layout.alertmanager_cluster_ports[peer] = free_port()
        layout.bypass_sink_port = free_port()
        return layout

    # ---- URLs -------------------------------------------------------------------------
    def redis_url(self, layer: Layer) -> str:
        """The layer's Redis, with the stack's password when it has one: for clients in this
        process and for children's environments, never for a command line."""
        password = self.redis_password
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{LOOPBACK}:{self.redis_ports[layer.value]}/0"

    def redis_address(self, layer: Layer) -> str:
        """The layer's Redis without credentials (what a command line may show)."""
        return f"redis://{LOOPBACK}:{self.redis_ports[layer.value]}/0"

    @property
    def redis_password_file(self) -> Path:
        return self.run_dir / "secrets" / "redis-password"

    @property
    def redis_password(self) -> str | None:
        """The password every Redis of this stack requires (None for a stack made before
        stacks had one)."""
        path = self.redis_password_file
        return read_secret(path) if path.exists() else None

    @property
    def prometheus_url(self) -> str:
        return f"http://{LOOPBACK}:{self.prometheus_port}"

    @property
    def alertmanager_urls(self) -> dict[str, str]:
        """Peer name -> web URL, first peer first."""
        return {peer: f"http://{LOOPBACK}:{port}" for peer, port in self.alertmanager_ports.items()}

    @property
    def alertmanager_url(self) -> str:
        """The first peer's URL, for a client that needs only one (each peer takes alerts)."""
        return next(iter(self.alertmanager_urls.values()))

    def alertmanager_peers_of(self, peer: str) -> list[str]:
        """host:port of the gossip listeners of every peer but ``peer``, for its --cluster.peer."""
        return [
            f"{LOOPBACK}:{port}"
            for name, port in self.alertmanager_cluster_ports.items()
            if name != peer
        ]

    @property
    def bypass_sink_url(self) -> str:
        return f"http://{LOOPBACK}:{self.bypass_sink_port}"

    @property
    def bypass_sink_file(self) -> Path:
        """JSON lines, one per alert that reached the sink instead of the responder."""
        return self.run_dir / "bypass-sink" / "alerts.jsonl"

    @property
    def bypass_sink_token_file(self) -> Path:
        return self.run_dir / "secrets" / "bypass-sink-token"

    @property
    def responder_url(self) -> str:
        return f"http://{LOOPBACK}:{self.responder_port}"

    @property
    def runbook_base_url(self) -> str:
        """Where the rules' runbook links point: ``TRADEGUARD_RUNBOOK_BASE_URL`` (the address
        people reach the console at, behind a proxy say), else the responder's console."""
        return os.environ.get("TRADEGUARD_RUNBOOK_BASE_URL") or self.responder_url

    def engine_metrics_url(self, replica: str) -> str:
        return f"http://{LOOPBACK}:{self.engine_ports[replica]}/metrics"

    @property
    def token_file(self) -> Path:
        return self.run_dir / "secrets" / "responder-token"

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{self.run_dir / 'engine' / 'ledger.sqlite'}"

    @property
    def broker_book(self) -> Path:
        return self.run_dir / "engine" / "broker-book.sqlite"

    @property
    def duckdb_dir(self) -> Path:
        return self.run_dir / "engine"

    # ---- the demo terminal instances: one per engine replica ---------------------------
    @property
    def instances_dir(self) -> Path:
        """Where the engines' supervised instances keep their working directories and logs
        (``<id>/instance-<id>.log``), and the chaos helpers their crash-until files."""
        return self.run_dir / "instances"

    @staticmethod
    def instance_of(replica: str) -> str:
        """The id of the demo terminal ``replica`` supervises (ids are unique per stack: the
        RIS hash and the ``instance`` label are keyed by it)."""
        return f"terminal-{replica}"

    def replica_of(self, instance: str) -> str | None:
        """The replica that supervises ``instance``, if any."""
        return next((r for r in self.engine_ports if self.instance_of(r) == instance), None)

    def instance_crash_file(self, replica: str) -> Path:
        """The file ``replica``'s demo terminal crashes by while it holds a future unix time
        (:mod:`tradeguard.instances.demo_terminal`)."""
        return self.instances_dir / f"{self.instance_of(replica)}.crash-until"

    def urls(self) -> dict[str, str]:
        out = {"prometheus": self.prometheus_url, **self.alertmanager_urls}
        out["responder"] = self.responder_url
        out["responder /metrics"] = f"{self.responder_url}/metrics"
        out["console"] = f"{self.responder_url}/console/"
        out["bypass sink"] = self.bypass_sink_url
        for replica in self.engine_ports:
            out[f"{replica} /metrics"] = self.engine_metrics_url(replica)
        return out

    # ---- persistence ---------------------------------------------------------------------
    def save(self) -> None:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        path = self.run_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, run_dir: Path) -> StackLayout | None:
        path = run_dir / STATE_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        data["run_dir"] = Path(data["run_dir"])
        # A state file written by an older version may carry keys since renamed (the single
        # ``alertmanager_port``): drop them, so ``down`` can still stop that stack by its pids.
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
