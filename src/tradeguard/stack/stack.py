"""The local stack: every component as a supervised child process under one run directory.

Start order follows dependencies (Redis, exporters, responder, bypass sink, engine replicas,
workload, Prometheus, the Alertmanager peers); each must pass its health check before the next
starts, and a failure names the part and shows its log. Stop runs in reverse, children included.

Alertmanager runs as two gossiping peers, as in production, and Prometheus sends every alert to
both: a test or a fault scenario that kills one peer sees what production would, the other peer
notifying alone. Alerts about the responder itself (receiver ``responder-bypass``) go to the
bypass sink, a separate small process, so they arrive even when the responder does not.

Each engine replica supervises one demo terminal instance (``terminal-<replica>``, a stand-in
for a MetaTrader bridge), so the instance alerts, their remediation and the instance chaos
helpers have something to act on.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from tradeguard.bus.keys import Keys
from tradeguard.config import InstanceSpec, Layer
from tradeguard.errors import ServiceError
from tradeguard.net import LOOPBACK, http_ok
from tradeguard.process import ManagedProcess, wait_until
from tradeguard.process.services import (
    Alertmanager,
    AlertmanagerCluster,
    NodeExporter,
    Prometheus,
    RedisExporter,
    RedisServer,
)
from tradeguard.secret_files import ensure_secret
from tradeguard.stack.layout import StackLayout
from tradeguard.stack.processes import process_start
from tradeguard.stack.render import (
    ensure_bypass_token,
    ensure_token,
    local_targets,
    render_alertmanager,
    render_prometheus,
)
from tradeguard.stack.status import read_stack_status

log = logging.getLogger(__name__)
STREAMS = f"{Keys().signals},{Keys().results}"
# The fast profile's Watchdog repeats every 6 s (render.WATCHDOG_TIMERS): a switch that trips
# after 20 s notices a broken alert path within a demo, yet tolerates two lost repeats.
FAST_WATCHDOG_TIMEOUT_SECONDS = 20
FAST_VERIFY_SECONDS = 90  # remediation's verify time in the fast profile (see responder env)
# The fast profile's responder restarts instances at most once every 15 s (its remediation
# cool-down, below), and it restarts one within seconds of its first failure (InstanceFailed).
# A supervisor backing off 1, 2, 4 s, then 8 s before it gives up, needs ~18 s from that restart
# to ``stopped``: the responder's next restart would always come first, and a crash-looping
# instance could never raise InstanceRecoveryFailed. Backing off 0.25, 0.5, 1 s, then 2 s (each
# rounded up to the supervisor's 1 s tick), it gives up ~8 s after a restart, and its
# InstanceFailed has resolved before the cool-down ends (tradeguard.chaos.instance_faults).
FAST_INSTANCE_RESTART_BACKOFF_SECONDS = 0.25
# The demo terminal each engine supervises (tradeguard.instances.demo_terminal), run as a
# script by its path: with ``-m`` every start would first import the instances package (the
# supervisor, redis, the metric catalog), a second of CPU at each restart of a crash loop.
DEMO_TERMINAL = Path(__file__).resolve().parents[1] / "instances" / "demo_terminal.py"


def demo_terminal_command(crash_file: Path) -> list[str]:
    """The argv of a demo terminal that crashes while ``crash_file`` holds a future unix time.
    ``-I``: no user site or PYTHON* variables, and not the script's directory on ``sys.path``
    (where the supervisor's modules live)."""
    return [sys.executable, "-I", str(DEMO_TERMINAL), "--crash-file", str(crash_file)]


def repo_deploy_dir() -> Path:
    """The deploy/ directory: next to the working directory's repository, else the package's."""
    for base in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[3]):
        if (base / "deploy" / "prometheus" / "prometheus.yml").exists():
            return base / "deploy"
    raise ServiceError("cannot find deploy/prometheus/prometheus.yml; run from the repository")


def _http_ok(url: str) -> Callable[[], bool]:
    """A health check for ManagedProcess: ``url`` answers 200."""
    return functools.partial(http_ok, url)


def _target_problem(job: str, address: str, target: dict[str, Any] | None) -> str:
    if target is None:
        return f"{job} {address}: not discovered yet"
    return f"{job} {address}: {target['health']} {target.get('error', '')}".rstrip()


def _tradeguard(*args: str) -> list[str]:
    return [sys.executable, "-m", "tradeguard.cli", *args]


class Stack:
    """Builds, starts and stops every child of one local stack."""

    def __init__(
        self,
        layout: StackLayout,
        deploy: Path | None = None,
        responder_env: Mapping[str, str] | None = None,
    ) -> None:
        self.layout = layout
        self.deploy = deploy or repo_deploy_dir()
        # Responder settings on top of the profile's (a test shortens remediation's waits).
        self.responder_env = dict(responder_env or {})
        self.children: dict[str, ManagedProcess] = {}
        self._build()

    # ---- construction ------------------------------------------------------------------
    def _build(self) -> None:
        lay, run = self.layout, self.layout.run_dir
        run.mkdir(parents=True, exist_ok=True)
        # Every Redis of the stack requires a password, generated once per run directory like
        # the responder's token; it reaches clients by file or environment, never by argv.
        password = ensure_secret(lay.redis_password_file)
        started_redis: dict[int, str] = {}
        for layer in Layer:
            port = lay.redis_ports[layer.value]
            if port in started_redis:
                continue
            name = "redis" if lay.shared_redis else f"redis-{layer.value}"
            started_redis[port] = name
            # The signal layer's Redis keeps an append-only file: a restart keeps every signal
            # that was acknowledged at publish.
            self.children[name] = RedisServer(
                run / name, port=port, name=name, durable=True, password=password
            )
        for layer in Layer:
            self.children[f"redis_exporter-{layer.value}"] = RedisExporter(
                run / "exporters",
                lay.redis_address(layer),
                STREAMS.split(","),
                port=lay.exporter_ports[layer.value],
                name=f"redis_exporter-{layer.value}",
                password=password,
            )
        self.children["node_exporter"] = NodeExporter(run / "exporters", port=lay.node_port)
        for replica in lay.engine_ports:  # a stack starts without faults: no crash left over
            lay.instance_crash_file(replica).unlink(missing_ok=True)
        self.children["responder"] = self._responder()
        self.children["bypass-sink"] = self._bypass_sink()
        for replica, port in lay.engine_ports.items():
            self.children[replica] = self._engine(replica, port)
        if lay.workload_rate > 0:
            self.children["workload"] = ManagedProcess(
                "workload",
                _tradeguard(
                    "generate",
                    "--rate",
                    str(lay.workload_rate),
                ),  # its Redis (and password) from the environment
                run / "workload",
                env=self._env(),
            )
        prom_cfg = render_prometheus(self.deploy, lay)
        self.children["prometheus"] = Prometheus(
            run / "prometheus",
            prom_cfg,
            port=lay.prometheus_port,
            # The lifecycle API lets `tradeguard config restore` reload the restored rules
            # (POST /-/reload); the port is loopback-only, like every part of the stack.
            extra_args=["--rules.alert.resend-delay=2s", "--web.enable-lifecycle"],
        )
        am_cfg = render_alertmanager(self.deploy, lay)  # one configuration for every peer
        for peer, port in lay.alertmanager_ports.items():
            self.children[peer] = Alertmanager(
                run / peer,
                am_cfg,
                port=port,
                name=peer,
                cluster=AlertmanagerCluster(
                    lay.alertmanager_cluster_ports[peer], tuple(lay.alertmanager_peers_of(peer))
                ),
            )

    def _env(self) -> dict[str, str]:
        lay = self.layout
        env = {
            f"TRADEGUARD_{layer.value.upper()}_REDIS_URL": lay.redis_url(layer) for layer in Layer
        }
        env["TRADEGUARD_REDIS_URL"] = lay.redis_url(Layer.TRADE_STATE)
        env["TRADEGUARD_DUCKDB_PATH"] = str(lay.duckdb_dir / "tradeguard.duckdb")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _engine(self, replica: str, port: int) -> ManagedProcess:
        lay = self.layout
        argv = _tradeguard(
            "coordinator",
            "--replica-id",
            replica,
            "--ledger-url",
            lay.ledger_url,
            "--metrics-port",
            str(port),
            "--broker-book",
            str(lay.broker_book),
        )
        lay.duckdb_dir.mkdir(parents=True, exist_ok=True)
        return ManagedProcess(
            replica,
            argv,
            lay.run_dir / "engine",
            env=self._env() | self._instance_env(replica),
            health=_http_ok(f"http://{LOOPBACK}:{port}/healthz"),
            start_timeout=30,
        )

    def _instance_env(self, replica: str) -> dict[str, str]:
        """The settings, for ``replica``'s environment, of the one instance it supervises: a
        demo terminal (:mod:`tradeguard.instances.demo_terminal`) standing in for a MetaTrader
        bridge, with an id of its own (``terminal-engine-1``) and its own crash-until file.

        The engine stops it when it stops; a killed engine's terminal gets SIGTERM from the
        kernel (the supervisor's children die with it), and the restarted engine starts a
        fresh one. In the environment rather than a settings file, so a ``TRADEGUARD_CONFIG``
        the stack is started with still reaches the engines as before."""
        lay = self.layout
        spec = InstanceSpec(
            id=lay.instance_of(replica),
            command=demo_terminal_command(lay.instance_crash_file(replica)),
        )
        env = {
            "TRADEGUARD_INSTANCES": json.dumps([spec.model_dump(mode="json")]),
            "TRADEGUARD_INSTANCES_DIR": str(lay.instances_dir),
        }
        if lay.profile == "fast":
            env["TRADEGUARD_INSTANCE_RESTART_BACKOFF_SECONDS"] = str(
                FAST_INSTANCE_RESTART_BACKOFF_SECONDS
            )
        return env

    def _responder(self) -> ManagedProcess:
        lay = self.layout
        ensure_token(lay)
        argv = _tradeguard(
            "responder",
            "--port",
            str(lay.responder_port),
            "--token-file",
            str(lay.token_file),
            "--history-url",
            f"sqlite:///{lay.run_dir / 'responder' / 'alerts.sqlite'}",
            "--jsonl-path",
            str(lay.run_dir / "responder" / "notifications.jsonl"),
        )
        (lay.run_dir / "responder").mkdir(parents=True, exist_ok=True)
        env = self._env()
        # Remediation: commands go to the engines over the signal layer's Redis; the URL
        # without the password, which the responder reads from the stack's secret file.
        env["TRADEGUARD_RESPONDER_REDIS_URL"] = lay.redis_address(Layer.SIGNAL_STREAM)
        env["TRADEGUARD_RESPONDER_PROMETHEUS_URL"] = lay.prometheus_url  # the console's figures
        # The rules it renders carry absolute runbook links already; the responder's own
        # notices (the dead man's switch, remediation giving up) get them from this.
        env["TRADEGUARD_RESPONDER_RUNBOOK_BASE_URL"] = lay.runbook_base_url
        env["TRADEGUARD_RESPONDER_REDIS_PASSWORD_FILE"] = str(lay.redis_password_file)
        # The local stack trades on a paper broker: it also turns on the graceful switchover
        # (off by default for real money) so a stuck leader can be shown to heal.
        env["TRADEGUARD_RESPONDER_REMEDIATION_ENABLE"] = '["demote_leader"]'
        # The shipped example rota, so the console's fatigue index names someone; a roster
        # given in the environment wins.
        roster = self.deploy / "responder" / "roster.yml"
        if roster.is_file() and "TRADEGUARD_RESPONDER_ROSTER_FILE" not in os.environ:
            env["TRADEGUARD_RESPONDER_ROSTER_FILE"] = str(roster)
        if lay.profile == "fast":
            env["TRADEGUARD_RESPONDER_WATCHDOG_TIMEOUT_SECONDS"] = str(
                FAST_WATCHDOG_TIMEOUT_SECONDS
            )
            # Scenarios inject a fault every few seconds: attempts follow each other faster.
            env["TRADEGUARD_RESPONDER_REMEDIATION_COOLDOWN_SECONDS"] = "15"
            # A tour injects a dozen faults in ten minutes: the default rate limit (6 actions per
            # 10 min, against a storm on a real desk) would hold back its later healings.
            env["TRADEGUARD_RESPONDER_REMEDIATION_RATE_LIMIT"] = "30"
            # A healed TradeExecutionFailures resolves about 60 s after the reconnect (its 1 m
            # window): a done action is judged after 90 s, not the default 300.
            env["TRADEGUARD_RESPONDER_REMEDIATION_VERIFY_SECONDS"] = str(FAST_VERIFY_SECONDS)
        env.update(self.responder_env)
        return ManagedProcess(
            "responder",
            argv,
            lay.run_dir / "responder",
            env=env,
            health=_http_ok(f"{lay.responder_url}/healthz"),
            start_timeout=30,
        )

    def _bypass_sink(self) -> ManagedProcess:
        """The receiver of ``responder-bypass``: stdlib only, nothing shared with the responder."""
        lay = self.layout
        ensure_bypass_token(lay)
        argv = [
            sys.executable,
            "-m",
            "tradeguard.stack.bypass_sink",
            "--port",
            str(lay.bypass_sink_port),
            "--out",
            str(lay.bypass_sink_file),
            "--token-file",
            str(lay.bypass_sink_token_file),
        ]
        return ManagedProcess(
            "bypass-sink",
            argv,
            lay.bypass_sink_file.parent,
            env={"PYTHONUNBUFFERED": "1"},
            health=_http_ok(f"{lay.bypass_sink_url}/healthz"),
        )

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self, progress: Callable[[str], None] | None = None) -> Stack:
        say = progress or (lambda _msg: None)
        try:
            for name, child in self.children.items():
                t0 = time.monotonic()
                child.start()
                self._record(name, child)
                say(f"{name} up ({time.monotonic() - t0:.1f}s)")
            t0 = time.monotonic()
            self._wait_observed()
            say(
                "Prometheus scrapes every target, Alertmanager cluster formed "
                f"({time.monotonic() - t0:.1f}s)"
            )
        except ServiceError:
            self.stop()
            raise
        self.layout.supervisor_pid = os.getpid()
        self.layout.supervisor_started = process_start(os.getpid())
        self.layout.ready = True
        self.layout.save()
        return self

    def _wait_observed(self, timeout: float = 30.0) -> None:
        """Until Prometheus has scraped every local target successfully, sends to every
        Alertmanager peer, and the peers form one settled cluster.

        Every process answering its health check is not enough: Prometheus applies discovered
        targets a few seconds after it starts, and until its first scrape of a target no rule
        can see that part. Likewise a peer holds every notification back until its gossip has
        settled, and peers that have not met would each notify. A stack is ready only once a
        fault would be noticed and its notice sent once.
        """
        lay = self.layout
        wanted = {(job, address) for job, rows in local_targets(lay).items() for address, _ in rows}
        wanted_managers = {f"{url}/api/v2/alerts" for url in lay.alertmanager_urls.values()}
        missing: list[str] = []

        def observed() -> bool:
            status = read_stack_status(lay)
            if status.prometheus_error:
                missing[:] = [status.prometheus_error]
                return False
            seen = {(t["job"], t["instance"]): t for t in status.targets}
            missing[:] = [
                _target_problem(job, address, seen.get((job, address)))
                for job, address in sorted(wanted)
                if seen.get((job, address), {}).get("health") != "up"
            ]
            managers = httpx.get(f"{lay.prometheus_url}/api/v1/alertmanagers", timeout=2)
            active = {m["url"] for m in managers.json()["data"]["activeAlertmanagers"]}
            missing.extend(
                f"Prometheus does not send to {url} yet" for url in sorted(wanted_managers - active)
            )
            for name, peer in status.alertmanagers.items():
                if not peer.reachable:
                    missing.append(f"{name} does not answer: {peer.error}")
                elif peer.members != len(status.alertmanagers) or peer.cluster_status != "ready":
                    missing.append(
                        f"{name} sees {peer.members} of {len(status.alertmanagers)} peers, "
                        f"cluster {peer.cluster_status}"
                    )
            return not missing

        try:
            wait_until(
                observed,
                timeout,
                "Prometheus to scrape every target and the Alertmanager cluster to form",
                interval=0.2,
            )
        except TimeoutError as exc:
            raise ServiceError(
                f"{exc}: {'; '.join(missing)} (see {self.children['prometheus'].log_path})"
            ) from None

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            try:
                child.stop()
            except Exception as exc:  # keep stopping the others
                log.warning("stopping %s failed: %s", child.name, exc)
        self.layout.ready = False
        self.layout.supervisor_pid = None
        self.layout.save()

    def child(self, name: str) -> ManagedProcess:
        return self.children[name]

    def start_child(self, name: str) -> None:
        """(Re)start one child and record its new pid for `status` and `down`."""
        child = self.children[name]
        child.start()
        self._record(name, child)
        self.layout.save()

    def _record(self, name: str, child: ManagedProcess) -> None:
        """Keep a started child's PID and start time for `status` and `down`."""
        pid = child.pid or 0
        self.layout.pids[name] = pid
        started = process_start(pid)
        if started is None:
            self.layout.started.pop(name, None)
        else:
            self.layout.started[name] = started

    def kill_child(self, name: str) -> None:
        self.children[name].kill()

    def dead_children(self) -> list[str]:
        return [name for name, c in self.children.items() if not c.running]
