"""Every metric tradeguard emits, in one place.

Rules, dashboards and tests may use only names defined here (or the exporters' documented
sets): ``catalog_series_names()`` is what the consistency test checks them against.

Conventions (DESIGN.md 3): prefix ``tradeguard_``, base units, counters end in ``_total``,
latencies are histograms, and labels take values from :mod:`tradeguard.metrics.vocabulary` or a
configured finite list (accounts, instances), never a trade, signal or result id.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.metrics import MetricWrapperBase

from tradeguard import __version__
from tradeguard.metrics import vocabulary as v
from tradeguard.metrics.instances import InstanceTable

# `_created` series double every counter's series count and no rule uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REDIS_OP_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
SIGNAL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ORDER_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SLIPPAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# A remediation runs from a reconnect (tens of ms) to a restart or a resync (tens of seconds);
# its command's deadline is 30 s by default, so 60 s is the last bound worth telling apart.
REMEDIATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)


class Metrics:
    """The metric objects of one process, registered in ``registry``.

    Build one per process (``default_metrics()``); tests build their own on a fresh registry.
    Hot paths should take label children once (``.labels(...)``) and keep them: a ``labels()``
    call costs about three ``inc()`` calls.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r

        self.build_info = Info("tradeguard_build", "tradeguard version.", registry=r)
        self.build_info.info({"version": __version__})

        # ---- Redis layers (bus) --------------------------------------------------------
        self.redis_op_duration = Histogram(
            "tradeguard_redis_operation_duration_seconds",
            "Time of one Redis operation made by tradeguard, by layer and operation.",
            ["layer", "op"],
            buckets=REDIS_OP_BUCKETS,
            registry=r,
        )
        self.redis_auth_errors = Counter(
            "tradeguard_redis_auth_errors_total",
            "Redis AUTH failures (WRONGPASS, NOAUTH) returned to tradeguard's clients, by layer.",
            ["layer"],
            registry=r,
        )
        self.redis_connection_errors = Counter(
            "tradeguard_redis_connection_errors_total",
            "Redis connection errors (refused, reset, timed out) seen by tradeguard, by layer.",
            ["layer"],
            registry=r,
        )
        self.trade_state_updates = Counter(
            "tradeguard_trade_state_updates_total",
            "Account state writes to the trade-state layer (RTS).",
            ["account"],
            registry=r,
        )
        self.state_mismatched_accounts = Gauge(
            "tradeguard_state_mismatched_accounts",
            "Accounts whose Redis state differed from DuckDB at the last consistency check.",
            registry=r,
        )
        self.state_consistency_checks = Counter(
            "tradeguard_state_consistency_checks_total",
            "Redis-vs-DuckDB consistency checks run, by outcome (ok, mismatch, failed).",
            ["status"],
            registry=r,
        )
        self.state_resyncs = Counter(
            "tradeguard_state_resyncs_total",
            "Accounts re-synchronised from DuckDB into Redis after a mismatch.",
            registry=r,
        )

        # ---- Signal stream (RTSS) ----------------------------------------------------------
        self.signals_published = Counter(
            "tradeguard_signals_published_total",
            "Signals accepted onto the signal stream by a publisher.",
            ["action"],
            registry=r,
        )
        self.signal_publish_errors = Counter(
            "tradeguard_signal_publish_errors_total",
            "Publish attempts that failed and were reported to the caller, by reason.",
            ["reason"],
            registry=r,
        )
        self.signals_received = Counter(
            "tradeguard_signals_received_total",
            "Signals read from the stream by an engine (first delivery or reclaim).",
            ["action"],
            registry=r,
        )
        self.signals_processed = Counter(
            "tradeguard_signals_processed_total",
            "Signals fully handled (result recorded and entry acknowledged), by outcome.",
            ["action", "status"],
            registry=r,
        )
        self.signals_dropped = Counter(
            "tradeguard_signals_dropped_total",
            "Signals not executed and moved to the dead-letter stream, by reason.",
            ["reason"],
            registry=r,
        )
        self.signals_reclaimed = Counter(
            "tradeguard_signals_reclaimed_total",
            "Pending signals claimed from a consumer that stopped acknowledging.",
            registry=r,
        )
        self.signal_filter_decisions = Counter(
            "tradeguard_signal_filter_decisions_total",
            "Risk-filter decisions on valid signals (accepted or rejected).",
            ["status"],
            registry=r,
        )
        self.signal_filter_expects_rejections = Gauge(
            "tradeguard_signal_filter_expects_rejections",
            "1 when the signal filter is a selective (spam-style) filter that normally rejects "
            "most signals, so a low rejection rate is itself a problem; 0 for a risk filter.",
            registry=r,
        )
        self.signal_processing_duration = Histogram(
            "tradeguard_signal_processing_duration_seconds",
            "Time from an engine reading a signal to its result being recorded.",
            buckets=SIGNAL_BUCKETS,
            registry=r,
        )
        self.signal_latency = Histogram(
            "tradeguard_signal_latency_seconds",
            "Time from a signal's creation by the strategy to its result being recorded.",
            buckets=SIGNAL_BUCKETS,
            registry=r,
        )

        # Stream gauges are filled by StreamCollector at scrape time; declared here so the
        # catalog is complete (see tradeguard.bus.stream_collector).
        # tradeguard_stream_length{stream}, tradeguard_stream_pending{stream},
        # tradeguard_stream_lag{stream}, tradeguard_stream_oldest_pending_age_seconds{stream}

        # ---- Result stream (RTRS) ----------------------------------------------------------
        self.results_written = Counter(
            "tradeguard_results_written_total",
            "Results appended to the result stream, by status.",
            ["status"],
            registry=r,
        )
        self.results_dropped = Counter(
            "tradeguard_results_dropped_total",
            "Results lost before reaching durable storage, by reason.",
            ["reason"],
            registry=r,
        )
        self.result_sync_failures = Counter(
            "tradeguard_result_sync_failures_total",
            "Failed attempts to persist results from the stream to DuckDB.",
            registry=r,
        )
        self.result_processing_duration = Histogram(
            "tradeguard_result_processing_duration_seconds",
            "Time from a result entering the stream to its being persisted in this replica's "
            "DuckDB (results already on the stream when the persister started are not timed).",
            buckets=SIGNAL_BUCKETS,
            registry=r,
        )

        # ---- Trade engine / broker ----------------------------------------------------------
        self.orders = Counter(
            "tradeguard_orders_total",
            "Orders sent to the broker, by outcome.",
            ["action", "status"],
            registry=r,
        )
        self.order_duration = Histogram(
            "tradeguard_order_execution_duration_seconds",
            "Broker round trip for one order.",
            buckets=ORDER_BUCKETS,
            registry=r,
        )
        self.order_slippage = Histogram(
            "tradeguard_order_slippage_ratio",
            "Absolute slippage of a fill relative to the requested price.",
            buckets=SLIPPAGE_BUCKETS,
            registry=r,
        )
        self.broker_connection_failures = Counter(
            "tradeguard_broker_connection_failures_total",
            "Failures to reach or stay connected to the broker.",
            registry=r,
        )
        self.network_failures = Counter(
            "tradeguard_network_failures_total",
            "Network failures (timeouts, resets) between the engine and its broker/terminal.",
            registry=r,
        )
        self.broker_connected = Gauge(
            "tradeguard_broker_connected",
            "1 while the engine holds a working broker connection.",
            registry=r,
        )
        self.engine_paused = Gauge(
            "tradeguard_engine_intake_paused",
            "1 while intake is throttled or paused (a remediation, or not leader).",
            registry=r,
        )
        self.engine_loop_heartbeat = Gauge(
            "tradeguard_engine_loop_heartbeat_timestamp_seconds",
            "Unix time the engine loop last made progress (a pass of the loop, paused or not, "
            "or one signal handled); it stops advancing while the loop hangs.",
            registry=r,
        )
        self.errors = Counter(
            "tradeguard_errors_total",
            "Errors handled by a tradeguard service, by subsystem.",
            ["reason"],
            registry=r,
        )
        self.broker_orders_reconciled = Counter(
            "tradeguard_broker_orders_reconciled_total",
            "Open intents settled against the broker after its in-flight time, by outcome: "
            "matched (a fill was there), sent (none, the order was sent), failed (none, "
            "the signal had expired).",
            ["status"],
            registry=r,
        )
        self.broker_orders_unknown = Counter(
            "tradeguard_broker_orders_unknown_total",
            "Orders whose outcome was unknown (timeout, connection lost mid-order): kept "
            "open and reconciled by client order id, never resent blindly.",
            registry=r,
        )
        self.broker_lookup_failures = Counter(
            "tradeguard_broker_lookup_failures_total",
            "Broker look-ups of an earlier order that failed (retried).",
            registry=r,
        )

        # ---- DuckDB store ----------------------------------------------------------------
        self.duckdb_query_duration = Histogram(
            "tradeguard_duckdb_query_duration_seconds",
            "Duration of one DuckDB statement or transaction, by operation.",
            ["op"],
            buckets=DB_BUCKETS,
            registry=r,
        )
        self.duckdb_write_failures = Counter(
            "tradeguard_duckdb_write_failures_total", "DuckDB writes that failed.", registry=r
        )
        self.duckdb_transaction_failures = Counter(
            "tradeguard_duckdb_transaction_failures_total",
            "DuckDB transactions rolled back after an error.",
            registry=r,
        )
        self.duckdb_writes_enabled = Gauge(
            "tradeguard_duckdb_writes_enabled",
            "0 while DuckDB writes are stopped (low disk remediation), else 1.",
            registry=r,
        )
        # Filled at scrape time by DuckDBCollector: tradeguard_duckdb_file_size_bytes,
        # tradeguard_duckdb_disk_free_bytes, tradeguard_duckdb_memory_usage_bytes,
        # tradeguard_duckdb_memory_limit_bytes.

        # ---- ClickHouse sync ---------------------------------------------------------------
        self.clickhouse_sync_duration = Histogram(
            "tradeguard_clickhouse_sync_duration_seconds",
            "Time of one batch sync from DuckDB to ClickHouse.",
            buckets=DB_BUCKETS,
            registry=r,
        )
        self.clickhouse_sync_failures = Counter(
            "tradeguard_clickhouse_sync_failures_total",
            "Batch syncs to ClickHouse that failed.",
            registry=r,
        )

        # ---- Instances (RIS) ----------------------------------------------------------------
        # Per-instance gauges (state enum, cpu, memory, queue, load, recovery attempts,
        # sockets, network latency, restarts) live in an InstanceTable read at scrape time:
        # see tradeguard.metrics.instances.
        self.instances = InstanceTable()
        r.register(self.instances)
        self.instance_events = Counter(
            "tradeguard_instance_events_total",
            "Instance events published on the instance event stream, by event.",
            ["event"],
            registry=r,
        )

        # ---- Process (backend memory budget) ----------------------------------------------
        self.process_memory_budget = Gauge(
            "tradeguard_process_memory_budget_bytes",
            "Resident memory this process is allowed (alerts compare "
            "process_resident_memory_bytes against it).",
            registry=r,
        )

        # ---- HTTP APIs (responder, coordinator) -------------------------------------------
        self.http_requests = Counter(
            "tradeguard_http_requests_total",
            "HTTP requests served, by status code class.",
            ["status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "tradeguard_http_request_duration_seconds",
            "HTTP request duration.",
            buckets=HTTP_BUCKETS,
            registry=r,
        )

        # ---- HA coordinator (seed 004) ------------------------------------------------------
        self.ha_db_sync = Counter(
            "tradeguard_ha_db_sync_total",
            "Leadership writes/renewals against the SQL ledger, by outcome (success, failure).",
            ["status"],
            registry=r,
        )
        self.ha_db_sync_duration = Histogram(
            "tradeguard_ha_db_sync_duration_seconds",
            "Duration of one ledger synchronisation.",
            buckets=DB_BUCKETS,
            registry=r,
        )
        # Rolling-window quantiles are a summary filled by the coordinator's collector:
        # tradeguard_ha_db_sync_window_seconds{quantile="0.5|0.95|0.99"}.
        self.ha_leadership_changes = Counter(
            "tradeguard_ha_leadership_changes_total",
            "Times this replica gained or lost leadership.",
            registry=r,
        )
        self.ha_is_leader = Gauge(
            "tradeguard_ha_is_leader", "1 while this replica leads.", registry=r
        )
        self.ha_epoch = Gauge(
            "tradeguard_ha_epoch", "Fencing epoch this replica last saw in the ledger.", registry=r
        )
        self.ha_heartbeat_timestamp = Gauge(
            "tradeguard_ha_last_heartbeat_timestamp_seconds",
            "Unix time of this replica's last completed heartbeat.",
            registry=r,
        )
        self.ha_heartbeat_running = Gauge(
            "tradeguard_ha_heartbeat_running", "1 while the heartbeat loop runs.", registry=r
        )
        self.ha_mode = Gauge(
            "tradeguard_ha_mode",
            "Enum: 1 for the coordinator's mode (normal, db_only, no_db).",
            ["state"],
            registry=r,
        )
        self.ha_fallback_mode = Gauge(
            "tradeguard_ha_fallback_mode",
            "1 while the coordinator runs DB-only because Redis is unreachable.",
            registry=r,
        )
        self.ha_split_brain = Gauge(
            "tradeguard_ha_split_brain",
            "1 while the Redis lease holder differs from the ledger's leader.",
            registry=r,
        )
        self.ha_split_brain_detected = Counter(
            "tradeguard_ha_split_brain_detected_total",
            "Split-brain situations detected (and resolved in the ledger's favour).",
            registry=r,
        )
        self.ha_leader_info = Gauge(
            "tradeguard_ha_leader_info",
            "Always 1; labels name the leader according to Redis and to the ledger.",
            ["redis_leader", "db_leader"],
            registry=r,
        )
        self.ha_fenced_rejections = Counter(
            "tradeguard_ha_fenced_rejections_total",
            "Leader-only actions refused because this replica's epoch was stale.",
            registry=r,
        )

        # ---- Crash recovery (seed 004) ----------------------------------------------------
        self.recovery = Counter(
            "tradeguard_recovery_total",
            "Start-up recoveries, by outcome (success, failure).",
            ["status"],
            registry=r,
        )
        self.recovery_duration = Gauge(
            "tradeguard_recovery_duration_seconds",
            "Duration of the last start-up recovery.",
            registry=r,
        )
        self.recovery_error = Gauge(
            "tradeguard_recovery_error",
            "Enum: 1 for the reason the last recovery failed, all 0 after a success.",
            ["reason"],
            registry=r,
        )
        self.recovery_positions = Gauge(
            "tradeguard_recovery_positions",
            "Positions restored by the last start-up recovery.",
            registry=r,
        )

        # ---- Responder (alert intake, notifications, remediation) ------------------------
        self.responder_webhooks = Counter(
            "tradeguard_responder_webhooks_total",
            "Alertmanager webhook deliveries, by outcome (accepted, duplicate, rejected).",
            ["status"],
            registry=r,
        )
        self.responder_alerts = Counter(
            "tradeguard_responder_alert_events_total",
            "Alert events stored in history, by status (firing, resolved).",
            ["status"],
            registry=r,
        )
        self.responder_notifications = Counter(
            "tradeguard_responder_notifications_total",
            "Notifications by outcome (sent, throttled, failed).",
            ["status"],
            registry=r,
        )
        self.responder_delivery_attempts = Counter(
            "tradeguard_responder_delivery_attempts_total",
            "Attempts to deliver a notification through one channel, by channel and outcome "
            "(sent, failed, rate_limited).",
            ["channel", "outcome"],
            registry=r,
        )
        self.responder_outbox = Gauge(
            "tradeguard_responder_outbox_notifications",
            "Notifications in the delivery outbox, by state (pending, held, dead).",
            ["state"],
            registry=r,
        )
        self.responder_outbox_oldest_age = Gauge(
            "tradeguard_responder_outbox_oldest_pending_age_seconds",
            "Age of the oldest notification waiting in the outbox (pending or held); 0 if none.",
            registry=r,
        )
        self.responder_alert_path_up = Gauge(
            "tradeguard_responder_alert_path_up",
            "1 while a Watchdog alert arrived within the dead man's switch timeout, else 0.",
            registry=r,
        )
        self.responder_watchdog_last = Gauge(
            "tradeguard_responder_watchdog_last_received_timestamp_seconds",
            "Unix time the last firing Watchdog alert arrived (0: none since start).",
            registry=r,
        )
        self.remediation_actions = Counter(
            "tradeguard_remediation_actions_total",
            "Remediation attempts the responder decided and recorded, by action and final "
            "outcome (skipped, dry_run and exhausted when decided; the others when answered).",
            ["action", "outcome"],
            registry=r,
        )
        self.remediation_action_duration = Histogram(
            "tradeguard_remediation_action_duration_seconds",
            "How long a remediation command took: the engine's own run time when it answered, "
            "from issue to deadline when it timed out, by action.",
            ["action"],
            buckets=REMEDIATION_BUCKETS,
            registry=r,
        )

        self._init_fixed_labels()

    def _init_fixed_labels(self) -> None:
        """Create every child whose label values are known now, so counters start at 0."""
        for layer in v.LAYERS:
            self.redis_connection_errors.labels(layer)
            self.redis_auth_errors.labels(layer)
        for action in v.ACTIONS:
            self.signals_published.labels(action)
            self.signals_received.labels(action)
            for status in v.ORDER_STATUSES:
                self.signals_processed.labels(action, status)
                self.orders.labels(action, status)
        for reason in v.DROP_REASONS:
            self.signals_dropped.labels(reason)
        for reason in ("redis_error", "invalid", "duplicate"):
            self.signal_publish_errors.labels(reason)
        for status in v.FILTER_STATUSES:
            self.signal_filter_decisions.labels(status)
        for status in v.ORDER_STATUSES:
            self.results_written.labels(status)
        for reason in v.RESULT_DROP_REASONS:
            self.results_dropped.labels(reason)
        for op in v.DUCKDB_OPS:
            self.duckdb_query_duration.labels(op)
        for status in ("ok", "mismatch", "failed"):
            self.state_consistency_checks.labels(status)
        for event in v.INSTANCE_EVENTS:
            self.instance_events.labels(event)
        for reason in v.ERROR_REASONS:
            self.errors.labels(reason)
        for code in v.HTTP_CODE_CLASSES:
            self.http_requests.labels(code)
        for status in ("success", "failure"):
            self.ha_db_sync.labels(status)
            self.recovery.labels(status)
        for mode in v.HA_MODES:
            self.ha_mode.labels(mode)
        for reason in v.RECOVERY_ERRORS:
            self.recovery_error.labels(reason)
        for status in ("accepted", "duplicate", "rejected"):
            self.responder_webhooks.labels(status)
        for status in ("firing", "resolved"):
            self.responder_alerts.labels(status)
        for status in ("sent", "throttled", "failed"):
            self.responder_notifications.labels(status)
        for state in ("pending", "held", "dead"):
            self.responder_outbox.labels(state)
        self.responder_alert_path_up.set(1)
        for action in v.REMEDIATION_AUDIT_ACTIONS:
            self.remediation_action_duration.labels(action)
            for outcome in v.REMEDIATION_OUTCOMES:
                self.remediation_actions.labels(action, outcome)
        for status in ("sent", "matched", "failed"):
            self.broker_orders_reconciled.labels(status)
        self.duckdb_writes_enabled.set(1)
        self.process_memory_budget.set(1024**3)

    def init_accounts(self, accounts: Iterable[str]) -> None:
        """Create the per-account children for a configured account list."""
        for account in accounts:
            self.trade_state_updates.labels(account)

    def init_instance(self, instance: str) -> None:
        """Add an instance to the table so its series exist (at 0) from the start."""
        self.instances.add(instance)

    def set_enum(self, gauge: Gauge, value: str, choices: Iterable[str], *prefix: str) -> None:
        """Set an Enum-style gauge: 1 for ``value``, 0 for every other choice."""
        for choice in choices:
            gauge.labels(*prefix, choice).set(1 if choice == value else 0)


# Series names filled at scrape time by custom collectors (tradeguard.bus.stream_collector,
# tradeguard.store.collector and the HA coordinator); listed here so the catalog names every
# series tradeguard exposes.
COLLECTED_SERIES = {
    "tradeguard_instance_state": "gauge",
    "tradeguard_instance_cpu_ratio": "gauge",
    "tradeguard_instance_memory_ratio": "gauge",
    "tradeguard_instance_queue_length": "gauge",
    "tradeguard_instance_load_average": "gauge",
    "tradeguard_instance_recovery_attempts": "gauge",
    "tradeguard_instance_socket_connections": "gauge",
    "tradeguard_instance_network_latency_seconds": "gauge",
    "tradeguard_instance_restarts_total": "counter",
    "tradeguard_stream_length": "gauge",
    "tradeguard_stream_pending": "gauge",
    "tradeguard_stream_lag": "gauge",
    "tradeguard_stream_oldest_pending_age_seconds": "gauge",
    "tradeguard_stream_collect_errors_total": "counter",
    "tradeguard_duckdb_file_size_bytes": "gauge",
    "tradeguard_duckdb_disk_free_bytes": "gauge",
    "tradeguard_duckdb_memory_usage_bytes": "gauge",
    "tradeguard_duckdb_memory_limit_bytes": "gauge",
    "tradeguard_ha_db_sync_window_seconds": "summary",
    # tradeguard.metrics.docker, in `tradeguard docker-exporter` (Docker deployments)
    "tradeguard_container_health": "gauge",
    "tradeguard_container_exit_code": "gauge",
    "tradeguard_container_volume_mounts_missing": "gauge",
    "tradeguard_docker_engine_up": "gauge",
    "tradeguard_docker_collect_errors_total": "counter",
}

_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def catalog_series_names() -> set[str]:
    """Every series name tradeguard can expose (as a rule or dashboard would write it)."""
    names: set[str] = set()
    registry = CollectorRegistry()
    Metrics(registry)
    for family in registry.collect():
        for suffix in _SUFFIXES[family.type]:
            names.add(family.name + suffix)
    for name, kind in COLLECTED_SERIES.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        for suffix in _SUFFIXES[kind]:
            names.add(base + suffix)
    # prometheus_client's default process and platform collectors, present on every /metrics.
    names |= {
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "python_info",
    }
    return names


_default: Metrics | None = None


def default_metrics() -> Metrics:
    """The process-wide Metrics, registered in prometheus_client's global REGISTRY."""
    global _default
    if _default is None:
        from prometheus_client import REGISTRY

        _default = Metrics(REGISTRY)
    return _default


__all__ = [
    "COLLECTED_SERIES",
    "MetricWrapperBase",
    "Metrics",
    "catalog_series_names",
    "default_metrics",
]
