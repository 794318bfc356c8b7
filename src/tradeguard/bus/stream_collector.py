"""The signal and result streams' figures, read at scrape time.

Stream length, pending count, undelivered lag and the age of the oldest pending entry come
from one pipelined round trip per scrape (XLEN, XINFO GROUPS, XPENDING summary): cheaper to
read when asked than to track. Redis' own health stays with redis_exporter; these are the
figures only tradeguard can label by stream. It lives with the bus because it reads the
bus's streams; ``metrics`` knows nothing of Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis import Redis
from redis.exceptions import RedisError

from tradeguard.bus.connection import as_text
from tradeguard.bus.signal_stream import entry_ms
from tradeguard.metrics.family import FamilyCollector

StreamSource = tuple[Redis, str, str, str | None]  # client, stream label, key, consumer group


class StreamCollector(FamilyCollector):
    """Gauges for each (client, stream label, key, consumer group) source.

    The streams may live on different Redis servers (one per layer); one collector serves all
    of them because a registry accepts each metric family once.
    """

    def __init__(self, sources: Iterable[StreamSource]) -> None:
        self.sources = list(sources)
        self.errors = 0

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "tradeguard_stream_length", "Entries in the stream.", labels=["stream"]
            ),
            GaugeMetricFamily(
                "tradeguard_stream_pending",
                "Entries delivered to a consumer but not yet acknowledged.",
                labels=["stream"],
            ),
            GaugeMetricFamily(
                "tradeguard_stream_lag",
                "Entries not yet delivered to the consumer group.",
                labels=["stream"],
            ),
            GaugeMetricFamily(
                "tradeguard_stream_oldest_pending_age_seconds",
                "Age of the oldest unacknowledged entry (0 when none).",
                labels=["stream"],
            ),
        )

    def collect(self) -> Iterator[Metric]:
        length, pending, lag, age = self._families()
        errors = CounterMetricFamily(
            "tradeguard_stream_collect_errors", "Scrapes that could not read stream figures."
        )
        now_ms = time.time() * 1000
        for redis, label, key, group in self.sources:
            try:
                pipe = redis.pipeline(transaction=False)
                pipe.xlen(key)
                if group:
                    pipe.xinfo_groups(key)
                    pipe.xpending(key, group)
                replies = pipe.execute(raise_on_error=False)
            except RedisError:
                self.errors += 1
                continue
            if isinstance(replies[0], Exception):
                self.errors += 1
                continue
            length.add_metric([label], float(replies[0]))
            if not group:
                continue
            groups, summary = replies[1], replies[2]
            if isinstance(groups, Exception) or isinstance(summary, Exception):
                # No group yet (stream never consumed): everything is undelivered.
                pending.add_metric([label], 0.0)
                lag.add_metric([label], float(replies[0]))
                age.add_metric([label], 0.0)
                continue
            info = next((g for g in groups if as_text(g.get("name")) == group), None)
            pending.add_metric([label], float(summary.get("pending", 0)))
            lag_value = info.get("lag") if info else None
            lag.add_metric([label], float(lag_value if lag_value is not None else replies[0]))
            oldest = entry_ms(summary.get("min"))
            age.add_metric([label], max(0.0, (now_ms - oldest) / 1000) if oldest else 0.0)
        errors.add_metric([], float(self.errors))
        yield from (length, pending, lag, age, errors)
