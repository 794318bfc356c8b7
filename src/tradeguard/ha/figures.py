"""Seed 004's coordinator figures: rolling DB-sync latency, failure rate, flapping, heartbeat.

``get_metrics()`` returns exactly the seed's dictionary (keys and OK/WARNING/CRITICAL statuses
from its threshold constants); the same figures are exported to Prometheus, the rolling
quantiles as a summary so dashboards can show what the seed showed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import Metric, SummaryMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

# Seed 004's CoordinatorMetrics constants.
DB_SYNC_FAILURE_RATE_WARNING = 0.05
DB_SYNC_FAILURE_RATE_CRITICAL = 0.10
LEADERSHIP_CHANGES_WARNING_PER_HOUR = 3
LEADERSHIP_CHANGES_CRITICAL_PER_HOUR = 10
HEARTBEAT_STALE_WARNING_SECONDS = 30
HEARTBEAT_STALE_CRITICAL_SECONDS = 60
WINDOW = 1000  # latency samples kept for the rolling figures
_RANK = {"OK": 0, "WARNING": 1, "CRITICAL": 2}


def _status(value: float | None, warning: float, critical: float) -> str:
    if value is None:
        return "OK"
    if value > critical:
        return "CRITICAL"
    return "WARNING" if value > warning else "OK"


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class CoordinatorFigures(Collector):
    """Counts and windows the coordinator updates on every tick; thread-safe."""

    def __init__(self, replica: str) -> None:
        self.replica = replica
        self._lock = threading.Lock()
        self.sync_success = 0
        self.sync_failure = 0
        self._window: deque[tuple[float, bool]] = deque(maxlen=WINDOW)  # (latency s, ok)
        self._changes: deque[float] = deque()
        self.leadership_changes = 0
        self.current_leader_redis: str | None = None
        self.current_leader_db: str | None = None
        self.is_leader = False
        self.heartbeat_running = False
        self.fallback_mode = False
        self.last_heartbeat: float | None = None  # unix seconds

    def record_sync(self, seconds: float, ok: bool) -> None:
        with self._lock:
            if ok:
                self.sync_success += 1
            else:
                self.sync_failure += 1
            self._window.append((seconds, ok))

    def record_leadership_change(self) -> None:
        with self._lock:
            self.leadership_changes += 1
            self._changes.append(time.time())

    def changes_last_hour(self) -> int:
        cutoff = time.time() - 3600
        with self._lock:
            while self._changes and self._changes[0] < cutoff:
                self._changes.popleft()
            return len(self._changes)

    def get_metrics(self) -> dict[str, Any]:
        """The seed's dictionary, with exactly its keys."""
        with self._lock:
            latencies = sorted(s * 1000 for s, _ok in self._window)
            window_failures = sum(1 for _s, ok in self._window if not ok)
            window_total = len(self._window)
            total = self.sync_success + self.sync_failure
            snapshot = (
                self.sync_success,
                self.sync_failure,
                self.leadership_changes,
                self.current_leader_redis,
                self.current_leader_db,
                self.is_leader,
                self.heartbeat_running,
                self.fallback_mode,
                self.last_heartbeat,
            )
        (
            success,
            failure,
            changes,
            leader_redis,
            leader_db,
            is_leader,
            hb_running,
            fallback,
            last_hb,
        ) = snapshot
        failure_rate = window_failures / window_total if window_total else 0.0
        per_hour = float(self.changes_last_hour())
        staleness = None if last_hb is None else max(0.0, time.time() - last_hb)
        alerts: dict[str, Any] = {
            "db_sync_failure_rate": self._alert(
                failure_rate,
                DB_SYNC_FAILURE_RATE_WARNING,
                DB_SYNC_FAILURE_RATE_CRITICAL,
                "DB sync failure rate {value:.1%}",
            ),
            "leadership_changes": self._alert(
                per_hour,
                LEADERSHIP_CHANGES_WARNING_PER_HOUR,
                LEADERSHIP_CHANGES_CRITICAL_PER_HOUR,
                "{value:.0f} leadership changes/hour",
            ),
            "heartbeat_staleness": self._alert(
                staleness,
                HEARTBEAT_STALE_WARNING_SECONDS,
                HEARTBEAT_STALE_CRITICAL_SECONDS,
                "last heartbeat {value:.1f}s ago",
            ),
        }
        overall = max((a["status"] for a in alerts.values()), key=_RANK.__getitem__)
        alerts["overall_status"] = overall
        return {
            "db_sync_success": success,
            "db_sync_failure": failure,
            "db_sync_total": total,
            "db_sync_failure_rate": failure_rate,
            "db_sync_avg_latency_ms": sum(latencies) / len(latencies) if latencies else 0.0,
            "db_sync_min_latency_ms": latencies[0] if latencies else 0.0,
            "db_sync_max_latency_ms": latencies[-1] if latencies else 0.0,
            "db_sync_p50_latency_ms": _percentile(latencies, 0.50),
            "db_sync_p95_latency_ms": _percentile(latencies, 0.95),
            "db_sync_p99_latency_ms": _percentile(latencies, 0.99),
            "db_sync_latency_samples": len(latencies),
            "leadership_changes": changes,
            "current_leader_redis": leader_redis,
            "current_leader_db": leader_db,
            "this_instance": self.replica,
            "is_leader": is_leader,
            "heartbeat_running": hb_running,
            "fallback_mode": fallback,
            "last_heartbeat": (
                None if last_hb is None else datetime.fromtimestamp(last_hb, UTC).isoformat()
            ),
            "alerts": alerts,
            "overall_alert_status": overall,
        }

    @staticmethod
    def _alert(
        value: float | None, warning: float, critical: float, template: str
    ) -> dict[str, Any]:
        status = _status(value, warning, critical)
        message = "no data yet" if value is None else template.format(value=value)
        if status != "OK":
            limit = critical if status == "CRITICAL" else warning
            message += f" (above the {status.lower()} threshold {limit:g})"
        return {
            "status": status,
            "value": value,
            "threshold_warning": float(warning),
            "threshold_critical": float(critical),
            "message": message,
        }

    # ---- Prometheus: the rolling window as a summary ------------------------------------
    def describe(self) -> Iterator[Metric]:
        yield SummaryMetricFamily("tradeguard_ha_db_sync_window_seconds", "", labels=["quantile"])

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            values = sorted(s for s, _ok in self._window)
        family = SummaryMetricFamily(
            "tradeguard_ha_db_sync_window_seconds",
            f"DB-sync latency over the last {WINDOW} syncs (rolling window, this replica).",
        )
        name = "tradeguard_ha_db_sync_window_seconds"
        for q in (0.5, 0.95, 0.99):
            family.samples.append(Sample(name, {"quantile": str(q)}, _percentile(values, q)))
        family.samples.append(Sample(name + "_count", {}, float(len(values))))
        family.samples.append(Sample(name + "_sum", {}, float(sum(values))))
        yield family
