"""Per-instance figures (RIS) as a table read at scrape time.

With hundreds of supervised instances, one labelled gauge child per (instance, figure) makes
every scrape walk thousands of children. The supervisor instead writes plain values into this
table and the collector turns them into families only when Prometheus asks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradeguard.metrics.vocabulary import INSTANCE_STATES


@dataclass
class InstanceFigures:
    """The latest known figures of one instance."""

    state: str = "starting"
    cpu_ratio: float = 0.0
    memory_ratio: float = 0.0
    queue_length: float = 0.0
    load_average: float = 0.0
    recovery_attempts: float = 0.0
    socket_connections: float = 0.0
    network_latency_seconds: float = 0.0
    restarts: float = 0.0


# figure attribute -> (metric name, help)
GAUGES = {
    "cpu_ratio": (
        "tradeguard_instance_cpu_ratio",
        "CPU used by an instance's process tree, as a share of one core.",
    ),
    "memory_ratio": (
        "tradeguard_instance_memory_ratio",
        "Resident memory of an instance relative to its memory budget.",
    ),
    "queue_length": ("tradeguard_instance_queue_length", "Orders waiting in an instance's queue."),
    "load_average": (
        "tradeguard_instance_load_average",
        "1-minute load average of the host an instance runs on.",
    ),
    "recovery_attempts": (
        "tradeguard_instance_recovery_attempts",
        "Consecutive recovery attempts since the instance last ran healthy.",
    ),
    "socket_connections": (
        "tradeguard_instance_socket_connections",
        "Open socket connections between an instance and its broker.",
    ),
    "network_latency_seconds": (
        "tradeguard_instance_network_latency_seconds",
        "Last measured network round trip from an instance to its broker.",
    ),
}
STATE_METRIC = "tradeguard_instance_state"
RESTARTS_METRIC = "tradeguard_instance_restarts_total"


class InstanceTable(Collector):
    """Thread-safe table of instance figures that is also their Prometheus collector."""

    def __init__(self) -> None:
        self._rows: dict[str, InstanceFigures] = {}
        self._lock = threading.Lock()
        self._text_prefixes: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {}

    def add(self, instance: str) -> None:
        with self._lock:
            self._rows.setdefault(instance, InstanceFigures())

    def remove(self, instance: str) -> None:
        with self._lock:
            self._rows.pop(instance, None)

    def update(self, instance: str, **values: float | str) -> None:
        """Set figures of ``instance`` (created if unknown); unknown names raise."""
        known = {f.name for f in fields(InstanceFigures)}
        bad = set(values) - known
        if bad:
            raise ValueError(f"unknown instance figures {sorted(bad)}")
        if "state" in values and values["state"] not in INSTANCE_STATES:
            raise ValueError(f"unknown instance state {values['state']!r}")
        with self._lock:
            row = self._rows.setdefault(instance, InstanceFigures())
            for name, value in values.items():
                setattr(row, name, value)

    def increment_restarts(self, instance: str) -> None:
        with self._lock:
            self._rows.setdefault(instance, InstanceFigures()).restarts += 1

    def get(self, instance: str) -> InstanceFigures | None:
        with self._lock:
            row = self._rows.get(instance)
            return None if row is None else InstanceFigures(**vars(row))

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(STATE_METRIC, "", labels=["instance", "state"])
        for name, doc in GAUGES.values():
            yield GaugeMetricFamily(name, doc, labels=["instance"])
        yield CounterMetricFamily(RESTARTS_METRIC, "", labels=["instance"])

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            rows = sorted((k, InstanceFigures(**vars(v))) for k, v in self._rows.items())
        state = GaugeMetricFamily(
            STATE_METRIC,
            "Enum: 1 for the state an instance is in, 0 for the others.",
            labels=["instance", "state"],
        )
        gauges = {
            attr: GaugeMetricFamily(name, doc, labels=["instance"])
            for attr, (name, doc) in GAUGES.items()
        }
        restarts = CounterMetricFamily(
            RESTARTS_METRIC.removesuffix("_total"),
            "Restarts of an instance by the supervisor.",
            labels=["instance"],
        )
        for instance, row in rows:
            for s in INSTANCE_STATES:
                state.add_metric([instance, s], 1.0 if row.state == s else 0.0)
            for attr, family in gauges.items():
                family.add_metric([instance], float(getattr(row, attr)))
            restarts.add_metric([instance], row.restarts)
        yield state
        yield from gauges.values()
        yield restarts

    def render_text(self, fmt: Callable[[float], str]) -> str:
        """The same families as ``collect()``, formatted straight to exposition text.

        The exposition fast path: no Sample objects, one cached prefix per (instance, series).
        """
        with self._lock:
            rows = sorted((k, InstanceFigures(**vars(v))) for k, v in self._rows.items())
        prefixes = self._text_prefixes
        state_lines: list[str] = []
        gauge_lines: dict[str, list[str]] = {attr: [] for attr in GAUGES}
        restart_lines: list[str] = []
        for instance, row in rows:
            cached = prefixes.get(instance)
            if cached is None:
                label = _escape(instance)
                cached = (
                    tuple(
                        f'{STATE_METRIC}{{instance="{label}",state="{st}"}} '
                        for st in INSTANCE_STATES
                    ),
                    tuple(f'{name}{{instance="{label}"}} ' for name, _doc in GAUGES.values()),
                    f'{RESTARTS_METRIC}{{instance="{label}"}} ',
                )
                prefixes[instance] = cached
            state_prefixes, gauge_prefixes, restart_prefix = cached
            for st, prefix in zip(INSTANCE_STATES, state_prefixes, strict=True):
                state_lines.append(prefix + ("1.0\n" if row.state == st else "0.0\n"))
            for (attr, lines), prefix in zip(gauge_lines.items(), gauge_prefixes, strict=True):
                lines.append(prefix + fmt(float(getattr(row, attr))) + "\n")
            restart_lines.append(restart_prefix + fmt(row.restarts) + "\n")
        parts = [
            _header(
                STATE_METRIC, "Enum: 1 for the state an instance is in, 0 for the others.", "gauge"
            ),
            *state_lines,
        ]
        for attr, (name, doc) in GAUGES.items():
            parts.append(_header(name, doc, "gauge"))
            parts.extend(gauge_lines[attr])
        parts.append(
            _header(RESTARTS_METRIC, "Restarts of an instance by the supervisor.", "counter")
        )
        parts.extend(restart_lines)
        return "".join(parts)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _header(name: str, doc: str, kind: str) -> str:
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"
