"""The DuckDB store's figures, read at scrape time: file size, free disk space on its
volume, DuckDB's own memory figures. It lives with the store it reads; ``metrics`` knows
nothing of DuckDB.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric

from tradeguard.metrics.family import FamilyCollector
from tradeguard.store.duck import DuckStore


class DuckDBCollector(FamilyCollector):
    """File size, free disk space on its volume, and DuckDB's own memory figures."""

    def __init__(self, store: DuckStore) -> None:
        self.store = store

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "tradeguard_duckdb_file_size_bytes",
                "Size of the DuckDB file and its write-ahead log.",
            ),
            GaugeMetricFamily(
                "tradeguard_duckdb_disk_free_bytes",
                "Free space on the filesystem holding the DuckDB file.",
            ),
            GaugeMetricFamily(
                "tradeguard_duckdb_memory_usage_bytes", "Memory DuckDB reports in use."
            ),
            GaugeMetricFamily(
                "tradeguard_duckdb_memory_limit_bytes", "DuckDB's configured memory limit."
            ),
        )

    def collect(self) -> Iterator[Metric]:
        size, free, used, limit = self._families()
        path = self.store.path
        total = sum(p.stat().st_size for p in (path, Path(f"{path}.wal")) if p.exists())
        size.add_metric([], float(total))
        free.add_metric([], float(disk_free_bytes(path)))
        mem_used, mem_limit = self.store.memory()
        used.add_metric([], mem_used)
        limit.add_metric([], mem_limit)
        yield from (size, free, used, limit)


# Tests and the duckdb-disk-low scenario lower the apparent free space instead of filling a disk.
DISK_FREE_OVERRIDE_ENV = "TRADEGUARD_DUCKDB_DISK_FREE_OVERRIDE_BYTES"


def disk_free_bytes(path: Path) -> int:
    """Free bytes on ``path``'s filesystem, unless an override file/env says otherwise."""
    override = os.environ.get(DISK_FREE_OVERRIDE_ENV)
    marker = path.parent / "disk-free-override"
    if marker.exists():
        override = marker.read_text().strip() or override
    if override:
        try:
            return int(float(override))
        except ValueError:
            pass
    return shutil.disk_usage(path.parent).free
