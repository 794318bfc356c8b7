"""A coordinator replica: crash recovery, the HA loop and an engine behind the ledger fence.

The composition module: the only place that knows both ``engine/`` and ``ha/``. Neither of them
imports the other; they meet through ``tradeguard.fencing``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.config import Layer, Settings
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.ha.coordinator import Coordinator, HAConfig
from tradeguard.ha.fence import LedgerFence
from tradeguard.ha.lease import RedisLease
from tradeguard.ha.ledger import LedgerUnavailable, open_ledger
from tradeguard.ha.recovery import RecoveryCode, RecoveryReport, recover
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.process import process_registry

log = logging.getLogger(__name__)


class CoordinatorService:
    """One replica: it leads (and executes) only while the ledger's epoch is its own."""

    def __init__(
        self,
        settings: Settings,
        ha: HAConfig,
        ledger_url: str,
        options: EngineOptions | None = None,
        ledger_timeout: float = 1.0,
    ) -> None:
        self.settings = settings
        self.ha = ha
        self.metrics = Metrics(process_registry())
        self.ledger = open_ledger(ledger_url, timeout=ledger_timeout)
        self.recovery = self._recover()
        lease_client = make_client(
            settings.layer_url(Layer.INSTANCE_STATE),
            socket_timeout=min(0.5, ha.renew_interval / 2),
            retries=0,
        )
        key = Keys(settings.key_prefix).leader
        self.coordinator = Coordinator(
            replace(ha, lease_key=key),
            self.ledger,
            lambda token: RedisLease(lease_client, key, ha.replica_id, token, ha.ttl),
            self.metrics,
            eligible=self.recovery.ok,
            able=lambda: self.engine.problem() is None,
            drain=lambda timeout: self.engine.engine.wait_idle(timeout),
        )
        self.fence = LedgerFence(self.coordinator, self.metrics)
        engine_options = replace(options or EngineOptions(), consumer=ha.replica_id)
        self.engine = EngineService(
            settings,
            engine_options,
            fence=self.fence,
            metrics=self.metrics,
            active=self.coordinator.may_execute,
            # demote_leader: the graceful step-down (drain the signal in hand, release both
            # leases); its commands are addressed to ha.replica_id, the engine's consumer.
            demote=self.coordinator.step_down,
        )
        self.metrics.registry.register(self.coordinator.figures)
        self.engine.http.add_route("/coordinator/metrics", self.coordinator.figures.get_metrics)
        self.engine.http.add_route("/coordinator/status", self.status)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.coordinator.run, args=(self._stop,), name="coordinator", daemon=True
        )

    def _recover(self) -> RecoveryReport:
        try:
            self.ledger.setup()
        except LedgerUnavailable as exc:
            report = RecoveryReport(RecoveryCode.DB_UNAVAILABLE, detail=str(exc))
            recover_metrics(self.metrics, report)
            return report
        report = recover(self.ledger, self.metrics)
        if not report.ok:
            log.error(
                "start-up recovery failed (%s): %s; this replica will not lead",
                report.code.value,
                report.detail,
            )
        return report

    @property
    def metrics_url(self) -> str:
        return self.engine.metrics_url

    def status(self) -> dict[str, Any]:
        return {
            **self.coordinator.status(),
            "recovery": self.recovery.code.value,
            "recovery_detail": self.recovery.detail,
            "positions_recovered": len(self.recovery.positions),
            "engine_problem": self.engine.problem(),
        }

    def start(self) -> CoordinatorService:
        self.engine.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Step down first (successor takes over within one renew interval), then stop."""
        self._stop.set()
        self._thread.join(10)
        self.engine.stop()
        self.ledger.close()


def recover_metrics(metrics: Metrics, report: RecoveryReport) -> None:
    """Publish a recovery that failed before positions could even be read."""
    metrics.recovery.labels("failure").inc()
    metrics.recovery_error.labels("db_unavailable").set(1)
    metrics.recovery_duration.set(report.seconds)
