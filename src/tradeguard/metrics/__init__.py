"""Metrics: the catalog of every metric, exposition over HTTP, and scrape-time collectors."""

from tradeguard.metrics.catalog import Metrics, catalog_series_names, default_metrics

__all__ = ["Metrics", "catalog_series_names", "default_metrics"]
