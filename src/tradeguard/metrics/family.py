"""The shape shared by tradeguard's scrape-time collectors."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class FamilyCollector(Collector):
    """A collector whose gauge families are known up front: ``describe`` needs no I/O, so
    registering one does not touch Redis, DuckDB or Docker."""

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        raise NotImplementedError
