"""In-process figures for the live view: counts and recent latencies, cheap to update."""

from __future__ import annotations

import threading
from collections import Counter, deque


class EngineStats:
    """What the demo's live view shows; Prometheus metrics remain the source of truth."""

    def __init__(self, window: int = 4000) -> None:
        self.by_status: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.latencies: deque[float] = deque(maxlen=window)
        self.processed = 0
        self.reclaimed = 0
        self.redis_errors = 0
        self._lock = threading.Lock()

    def record(self, status: str, latency: float) -> None:
        with self._lock:
            self.by_status[status] += 1
            self.latencies.append(latency)
            self.processed += 1

    def drop(self, reason: str) -> None:
        with self._lock:
            self.dropped[reason] += 1

    def quantiles(self) -> tuple[float, float]:
        """(p50, p99) of recent signal-to-result latencies, in seconds (0 when empty)."""
        with self._lock:
            data = sorted(self.latencies)
        if not data:
            return 0.0, 0.0
        return data[len(data) // 2], data[min(len(data) - 1, int(len(data) * 0.99))]
