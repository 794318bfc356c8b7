"""Chaos: named fault scenarios, their runner, and the demo tour built from them."""

# The demo's default tour, cheapest alerts first (kept here so the CLI can show it without
# importing the stack machinery).
DEFAULT_TOUR = (
    "duckdb-disk-low",
    "redis-down",
    "signal-backlog",
    "execution-failures",
    "broker-disconnect",
    # Healed without a human: the responder's remediation reconnects the broker.
    "broker-session-dead",
    "leader-kill",
    "leader-engine-stuck",
    "account-state-lost",
    "instance-crash",
    "slippage-spike",
    "broker-slow",
    # The alert path itself: the responder's dead man's switch and the route around it.
    "alertmanager-down",
    "prometheus-down",
    "responder-down",
)
