"""The metric catalog follows Prometheus conventions and DESIGN.md's label rules."""

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tradeguard.metrics.catalog import Metrics, catalog_series_names

ALLOWED_LABELS = {
    "container",
    "account",
    "instance",
    "layer",
    "stream",
    "action",
    "status",
    "reason",
    "op",
    "state",
    "event",
    "redis_leader",
    "db_leader",
    "version",
    "channel",  # a configured notification channel: a handful per responder
    "outcome",
}
FORBIDDEN_LABELS = {"trade_id", "signal_id", "result_id", "order_id"}
UNIT_SUFFIXES = ("_seconds", "_bytes", "_ratio", "_total", "_info")


def families() -> list[tuple[str, str, list[str]]]:
    registry = CollectorRegistry()
    m = Metrics(registry)
    out = []
    for attr in vars(m).values():
        if hasattr(attr, "_labelnames") and hasattr(attr, "_type"):
            out.append((attr._name, attr._type, list(attr._labelnames)))
    return out


def test_every_metric_is_prefixed_and_labels_are_bounded() -> None:
    fams = families()
    assert len(fams) > 50
    for name, _kind, labels in fams:
        assert name.startswith("tradeguard_"), name
        assert not FORBIDDEN_LABELS & set(labels), (name, labels)
        assert set(labels) <= ALLOWED_LABELS, (name, labels)


def test_latencies_are_histograms_in_seconds() -> None:
    for name, kind, _labels in families():
        if "duration" in name or "latency" in name:
            assert name.endswith("_seconds"), name
            if kind != "gauge":
                assert kind == "histogram", name


def test_series_names_include_suffixes() -> None:
    names = catalog_series_names()
    assert "tradeguard_orders_total" in names
    assert "tradeguard_signal_latency_seconds_bucket" in names
    assert "tradeguard_stream_lag" in names
    assert "tradeguard_build_info" in names
    assert "tradeguard_instance_state" in names
    assert "tradeguard_instance_restarts_total" in names
    assert not any(n.endswith("_total_total") for n in names)


def test_exposition_passes_promtool_check_metrics(require_binary: Callable[[str], str]) -> None:
    """promtool is required (make setup installs it): without it this fails, never skips."""
    promtool = require_binary("promtool")
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.init_accounts(["acct-1"])
    m.init_instance("mt5-1")
    text = generate_latest(registry)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_missing_promtool_fails_the_check_instead_of_skipping(
    require_binary: Callable[[str], str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The promtool check above must not pass quietly on a machine without promtool: with an
    empty PATH the helper it uses fails the test, naming the tool and how to install it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    expected = r"^promtool is not installed: run make setup \(Debian package prometheus\)$"
    with pytest.raises(pytest.fail.Exception, match=expected):
        require_binary("promtool")
