"""tradeguard: keeps a Redis-based trading platform honest.

It carries trade signals and results through Redis, executes each signal at most once, measures
every layer with Prometheus metrics and ships the alert rules, routing and runbooks to watch them.
"""

__version__ = "0.1.0"
