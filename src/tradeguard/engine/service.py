"""An engine process: the loop, the result persister, the instance supervisor, the remediation
command listener and the /metrics endpoint, wired from settings, started and stopped together.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from tradeguard.bus.commands import CommandBus
from tradeguard.bus.connection import RedisAuthError, check_credentials, layer_clients, make_client
from tradeguard.bus.instance_state import InstanceRegistry
from tradeguard.bus.keys import Keys
from tradeguard.bus.results import ResultStream
from tradeguard.bus.signal_stream import SignalStream
from tradeguard.bus.stream_collector import StreamCollector
from tradeguard.bus.trade_state import TradeState
from tradeguard.config import Layer, Settings
from tradeguard.engine.broker import Broker
from tradeguard.engine.commands import CommandListener
from tradeguard.engine.control import ControlledFence, ControlPoller
from tradeguard.engine.fencing import LocalFence
from tradeguard.engine.loop import Engine, EngineConfig
from tradeguard.engine.paper import BrokerKnobs, PaperBroker, SQLiteBook
from tradeguard.engine.remediation_handlers import EngineParts, handlers
from tradeguard.fencing import Fence
from tradeguard.instances.supervisor import InstanceSupervisor
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.http import MetricsServer
from tradeguard.metrics.process import process_registry
from tradeguard.store.collector import DuckDBCollector
from tradeguard.store.consistency import RESYNC_PAUSE_SECONDS, ConsistencyChecker
from tradeguard.store.duck import DuckStore
from tradeguard.store.persister import ResultPersister, store_group

log = logging.getLogger(__name__)


@dataclass
class EngineOptions:
    consumer: str = "engine-1"
    seed: int = 0
    knobs: BrokerKnobs = field(default_factory=BrokerKnobs)
    broker_book: Path | None = None  # SQLite file shared by replicas on one host
    persist: bool = True
    metrics_port: int | None = None  # None: from settings; 0: any free port


class EngineService:
    """Everything one engine replica runs, with one start and one stop."""

    def __init__(
        self,
        settings: Settings,
        options: EngineOptions | None = None,
        broker: Broker | None = None,
        fence: Fence | None = None,
        metrics: Metrics | None = None,
        active: Callable[[], bool] | None = None,
        demote: Callable[[str], bool] | None = None,
    ) -> None:
        """``metrics`` shares a metric set (and its registry) with another part of the process
        (the HA coordinator); ``active`` gates the leader-only part of the store (account state
        snapshots, the Redis-vs-DuckDB check and resync): results are persisted on every
        replica, each through its own consumer group, so every DuckDB file keeps the history.
        ``demote`` is the HA coordinator's graceful step-down (reason -> whether this replica
        stepped down), run by the ``demote_leader`` remediation; without it that is refused.

        The replica id remediation commands are addressed to is ``options.consumer`` (under
        HA the coordinator's replica id, which the replica module makes the consumer)."""
        self.settings = settings
        self.options = options or EngineOptions()
        self.metrics = metrics or Metrics(process_registry())
        self.registry = self.metrics.registry
        self.metrics.process_memory_budget.set(settings.memory_budget_bytes)
        self.metrics.signal_filter_expects_rejections.set(
            1 if settings.signal_filter_expects_rejections else 0
        )
        self.keys = Keys(settings.key_prefix)
        self._check_credentials()
        self.clients: dict[Layer, Redis] = layer_clients(settings)
        self.signals = SignalStream(
            self.clients[Layer.SIGNAL_STREAM],
            self.keys,
            settings.consumer_group,
            settings.signal_max_bytes,
            self.metrics,
        )
        self.results = ResultStream(
            self.clients[Layer.RESULT_STREAM], self.keys, settings.results_maxlen, self.metrics
        )
        self.state = TradeState(self.clients[Layer.TRADE_STATE], self.keys, self.metrics)
        book = SQLiteBook(self.options.broker_book) if self.options.broker_book else None
        self.broker = broker or PaperBroker(self.options.knobs, self.options.seed, book)
        knobs = self.broker.knobs if isinstance(self.broker, PaperBroker) else None
        self.control = ControlPoller(self.clients[Layer.SIGNAL_STREAM], self.keys, knobs)
        self.fence = ControlledFence(
            fence or LocalFence(self.clients[Layer.SIGNAL_STREAM], self.keys), self.control
        )
        self.engine = Engine(
            EngineConfig(
                consumer=self.options.consumer,
                signal_ttl=settings.signal_ttl_seconds,
                reclaim_idle=settings.reclaim_idle_seconds,
                broker_max_in_flight=settings.broker_max_in_flight_seconds,
                send_margin=settings.broker_send_margin_seconds,
                poison_deliveries=settings.poison_deliveries,
            ),
            self.signals,
            self.results,
            self.state,
            self.broker,
            self.fence,
            self.metrics,
            stall=self.control.stall_remaining,
        )
        self.store: DuckStore | None = None
        self.persister: ResultPersister | None = None
        if self.options.persist:
            self.store = DuckStore(settings.duckdb_path, self.metrics)
            self.persister = ResultPersister(
                self.results,
                self.store,
                self.state,
                self.metrics,
                consumer=f"{self.options.consumer}-store",
                group=store_group(self.options.consumer),  # this replica's own group
                active=active,
                checker=ConsistencyChecker(
                    self.state,
                    self.store,
                    self.metrics,
                    settings.state_check_interval_seconds,
                    pause=lambda: self.engine.between_signals(RESYNC_PAUSE_SECONDS),
                ),
            )
            self.registry.register(DuckDBCollector(self.store))
        sig, res = self.clients[Layer.SIGNAL_STREAM], self.clients[Layer.RESULT_STREAM]
        # Pending and lag of the result stream as this replica's store reads it.
        results_group = self.persister.group if self.persister is not None else None
        self.registry.register(
            StreamCollector(
                [
                    (sig, "signals", self.keys.signals, settings.consumer_group),
                    (sig, "signals_dead", self.keys.signals_dead, None),
                    (res, "results", self.keys.results, results_group),
                ]
            )
        )
        port = (
            settings.metrics_port
            if self.options.metrics_port is None
            else self.options.metrics_port
        )
        self.supervisor: InstanceSupervisor | None = None
        if settings.instances:
            self.supervisor = InstanceSupervisor(
                settings.instances,
                InstanceRegistry(self.clients[Layer.INSTANCE_STATE], self.keys, self.metrics),
                settings.instances_dir,
                self.metrics,
                max_recovery_attempts=settings.instance_max_recovery_attempts,
                stable_seconds=settings.instance_stable_seconds,
                restart_backoff=settings.instance_restart_backoff_seconds,
            )
        # Remediation commands from the responder, on the signal layer's Redis.
        self.commands = CommandListener(
            CommandBus(self.clients[Layer.SIGNAL_STREAM], self.keys),
            self.options.consumer,
            handlers(
                EngineParts(
                    keys=self.keys,
                    control=self.clients[Layer.SIGNAL_STREAM],
                    clients=self.clients,
                    engine=self.engine,
                    state=self.state,
                    persister=self.persister,
                    supervisor=self.supervisor,
                    active=active or (lambda: True),
                    demote=demote,
                )
            ),
        )
        self.http = MetricsServer(self.registry, settings.metrics_host, port, health=self.problem)
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def _check_credentials(self) -> None:
        """Refuse to start when Redis refuses a layer's password (RedisAuthError, counted in
        ``tradeguard_redis_auth_errors_total`` for every layer on that URL).

        Checked before anything is opened: a wrong password is a setting to fix, and worker
        threads would otherwise retry it forever as if Redis were down. An unreachable Redis
        passes (the threads ride outages out); each URL is tried once, with a short timeout.
        """
        layers_of: dict[str, list[Layer]] = {}
        for layer in Layer:
            layers_of.setdefault(self.settings.layer_url(layer), []).append(layer)
        for url, layers in layers_of.items():
            client = make_client(url, socket_timeout=1.0, retries=0)
            try:
                check_credentials(client, url, [layer.value for layer in layers])
            except RedisAuthError:
                for layer in layers:
                    self.metrics.redis_auth_errors.labels(layer.value).inc()
                raise
            finally:
                client.close()

    @property
    def metrics_url(self) -> str:
        return self.http.url

    def start(self) -> EngineService:
        self.http.start()
        self._spawn("control", self.control.run)
        self._spawn("engine", self.engine.run)
        if self.persister is not None:
            self._spawn("persister", self.persister.run)
        if self.supervisor is not None:
            self._spawn("instances", self.supervisor.run)
        self._spawn("commands", self.commands.run)
        log.info("engine %s started; metrics at %s", self.options.consumer, self.metrics_url)
        return self

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        def run(stop: threading.Event) -> None:
            try:
                target(stop)
            except Exception:
                log.critical("the %s thread died; this replica can no longer work", name)
                raise

        thread = threading.Thread(target=run, args=(self.stop_event,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def problem(self) -> str | None:
        """Why this replica cannot do its work (a worker thread died), or None when it can.

        ``/healthz`` answers 503 with it, so a supervisor restarts the process, and an HA
        coordinator steps down on it, so a healthy replica takes over the signals.
        """
        if self.stop_event.is_set():
            return None  # stopping on purpose
        dead = [t.name for t in self._threads if not t.is_alive()]
        return f"worker thread(s) died: {', '.join(dead)}" if dead else None

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
        self.http.stop()
        if self.store is not None:
            self.store.close()
        for client in self.clients.values():
            client.close()

    def __enter__(self) -> EngineService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
