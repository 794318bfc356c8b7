"""The bounded label values used across metrics, Redis and rules.

Every label value a tradeguard metric can carry comes from one of these tuples (or from a
configured, finite list such as accounts and instances), so series counts stay bounded and
counters can be initialised to 0 at start-up.
"""

from __future__ import annotations

LAYERS = ("trade_state", "instance_state", "signal_stream", "result_stream")
REDIS_OPS = ("read", "write", "xadd", "xreadgroup", "xack", "xautoclaim", "xinfo")
ACTIONS = ("buy", "sell", "close")
ORDER_STATUSES = ("filled", "rejected", "failed")
FILTER_STATUSES = ("accepted", "rejected")
# Why a signal left the stream without being executed; also the dead-letter `reason` field.
DROP_REASONS = (
    "expired",
    "invalid_json",
    "missing_field",
    "bad_action",
    "bad_volume",
    "bad_field",
    "oversized",
    "duplicate",
    "poison",
)
RESULT_DROP_REASONS = ("redis_error", "trimmed_unpersisted")
STREAMS = ("signals", "results", "signals_dead", "instance_events")
DUCKDB_OPS = ("insert_results", "upsert_state", "read_state", "check")
INSTANCE_STATES = ("starting", "running", "degraded", "failed", "recovering", "stopped")
INSTANCE_EVENTS = (
    "instance_started",
    "instance_failed",
    "instance_recovered",
    "instance_stopped",
    "instance_degraded",
    "network_issue",
    "socket_failure",
)
ERROR_REASONS = ("redis", "broker", "duckdb", "internal")
HA_MODES = ("normal", "db_only", "no_db")
RECOVERY_ERRORS = ("db_unavailable", "data_corrupt", "validation_failed")
HTTP_CODE_CLASSES = ("2xx", "3xx", "4xx", "5xx")
# Named remediation actions of the responder; alert rules name one in their `action` annotation
# ("none" when the alert only notifies).
REMEDIATION_ACTIONS = (
    "none",
    "restart_instance",
    "stop_instance",
    "reconnect_redis",
    "reconnect_broker",
    "throttle_intake",
    "stop_duckdb_writes",
    "resync_state",
    "retry_result_sync",
    "demote_leader",
    "restart_redis",
)
# What undoes a reversible action when its alert resolves: run by the engines, never named by a
# rule (tradeguard.remediation.registry.UNDO_ACTIONS; a test keeps the two in step).
REMEDIATION_UNDO_ACTIONS = ("resume_intake", "resume_duckdb_writes")
# What became of one remediation attempt, as the responder's audit records it: `pending` until
# the engines answer; `done`, `refused`, `failed` and `not_applicable` as an engine answered
# (tradeguard.bus.commands); `timed_out` when no outcome came by the command's deadline;
# `dry_run` when it was only recorded; `skipped` when it is off or needs a person; `exhausted`
# when its attempt limit was reached.
REMEDIATION_OUTCOMES = (
    "pending",
    "done",
    "refused",
    "failed",
    "timed_out",
    "not_applicable",
    "dry_run",
    "skipped",
    "exhausted",
)
# Every action the responder's remediation audit (and its metrics) can name: the rules' actions
# but "none", which names no action, and the undo actions.
REMEDIATION_AUDIT_ACTIONS = (
    *(a for a in REMEDIATION_ACTIONS if a != "none"),
    *REMEDIATION_UNDO_ACTIONS,
)
