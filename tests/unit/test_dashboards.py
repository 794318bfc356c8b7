"""Grafana provisioning and dashboards (deploy/grafana/) are well-formed and use known series.

Grafana cannot be installed here, so these checks stand in for its loader: every dashboard
parses, carries a fixed uid, points every panel at the provisioned Prometheus data source and
selects only series tradeguard or its exporters expose. tests/e2e/test_dashboards.py runs the
same queries against a live Prometheus.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradeguard.metrics.catalog import catalog_series_names
from tradeguard.rulecheck.promql import metric_names

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))
EXPORTER_LISTS = sorted((REPO / "deploy" / "prometheus" / "exporter-metrics").glob("*.txt"))

DATASOURCE_UID = "tradeguard-prometheus"
DATASOURCE_REFS = {"${datasource}", "$datasource", DATASOURCE_UID}
PROVIDER_PATH = "/var/lib/grafana/dashboards/tradeguard"
EXPECTED_UIDS = {
    "tradeguard-overview",
    "tradeguard-redis",
    "tradeguard-ha",
    "tradeguard-store",
    "tradeguard-alerting",
}
PANEL_TYPES = {"timeseries", "stat", "table"}
# Series Prometheus makes itself (rule evaluation and scraping), not listed by any exporter.
PROMETHEUS_BUILTINS = {
    "up",
    "ALERTS",
    "ALERTS_FOR_STATE",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s"}
# Series each dashboard must show (the brief and seed 004's HA layout).
REQUIRED_SERIES = {
    "tradeguard-overview": {
        "tradeguard_signals_published_total",
        "tradeguard_signals_processed_total",
        "tradeguard_signal_latency_seconds_bucket",
        "tradeguard_stream_lag",
        "tradeguard_stream_pending",
        "tradeguard_signals_dropped_total",
        "tradeguard_orders_total",
        "tradeguard_order_execution_duration_seconds_bucket",
        "tradeguard_order_slippage_ratio_bucket",
        "ALERTS",
    },
    "tradeguard-redis": {
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_connected_clients",
        "redis_evicted_keys_total",
        "redis_commands_processed_total",
        "redis_stream_length",
        "tradeguard_redis_operation_duration_seconds_bucket",
        "tradeguard_redis_connection_errors_total",
    },
    "tradeguard-ha": {
        "tradeguard_ha_is_leader",
        "tradeguard_ha_epoch",
        "tradeguard_ha_leadership_changes_total",
        "tradeguard_ha_db_sync_total",
        "tradeguard_ha_db_sync_duration_seconds_bucket",
        "tradeguard_ha_db_sync_window_seconds",
        "tradeguard_ha_last_heartbeat_timestamp_seconds",
        "tradeguard_ha_mode",
        "tradeguard_ha_split_brain",
        "tradeguard_ha_fenced_rejections_total",
        "tradeguard_ha_leader_info",
        "tradeguard_recovery_total",
        "tradeguard_recovery_duration_seconds",
        "tradeguard_recovery_positions",
        "tradeguard_recovery_error",
    },
    "tradeguard-store": {
        "tradeguard_duckdb_query_duration_seconds_bucket",
        "tradeguard_duckdb_write_failures_total",
        "tradeguard_duckdb_transaction_failures_total",
        "tradeguard_duckdb_file_size_bytes",
        "tradeguard_duckdb_disk_free_bytes",
        "tradeguard_result_sync_failures_total",
        "tradeguard_result_processing_duration_seconds_bucket",
    },
    "tradeguard-alerting": {
        "tradeguard_responder_webhooks_total",
        "tradeguard_responder_alert_events_total",
        "tradeguard_responder_notifications_total",
        "tradeguard_http_requests_total",
        "tradeguard_http_request_duration_seconds_bucket",
    },
}
_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<metric>.+),\s*(?P<label>\w+)\s*\)\s*$")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included, rows themselves excluded."""
    out = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def all_panel_ids(dashboard: dict[str, Any]) -> list[Any]:
    ids = []
    for panel in dashboard.get("panels", []):
        ids.append(panel.get("id"))
        ids.extend(p.get("id") for p in panel.get("panels", []))
    return ids


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard.get("templating", {}).get("list", []))


def substitute(expr: str, dashboard: dict[str, Any]) -> str:
    """The expression as Grafana would send it: built-ins fixed, template variables at All."""
    values = {}
    for var in variables(dashboard):
        if var.get("includeAll"):
            values[var["name"]] = var.get("allValue") or ".*"
        else:
            current = var.get("current", {}).get("value", ".*")
            values[var["name"]] = current[0] if isinstance(current, list) else current
    values.update(
        {
            "__rate_interval": "1m",
            "__interval": "15s",
            "__interval_ms": "15000",
            "__range": "1h",
            "__range_s": "3600",
        }
    )

    def repl(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return values.get(name, match.group(0))

    return _VAR.sub(repl, expr)


def allowed_series() -> set[str]:
    names = set(catalog_series_names()) | PROMETHEUS_BUILTINS
    for path in EXPORTER_LISTS:
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                names.add(line)
    return names


@pytest.fixture(scope="module")
def known_series() -> set[str]:
    return allowed_series()


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


# ---- the set of dashboards -------------------------------------------------------------------
def test_the_five_dashboards_exist_with_fixed_unique_uids() -> None:
    uids = [load(p)["uid"] for p in DASHBOARD_FILES]
    assert len(uids) == len(set(uids)), f"duplicate dashboard uids: {uids}"
    assert set(uids) == EXPECTED_UIDS
    titles = [load(p)["title"] for p in DASHBOARD_FILES]
    assert len(titles) == len(set(titles)), f"duplicate titles: {titles}"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=ids(DASHBOARD_FILES))
def test_dashboard_is_provisionable(path: Path) -> None:
    dash = load(path)
    assert dash["uid"] == path.stem, "file name and uid must match (fixed uid)"
    assert dash["title"].startswith("tradeguard-")
    assert dash["schemaVersion"] == 39
    assert dash.get("id") is None, "provisioned dashboards must not carry a database id"
    assert "tradeguard" in dash["tags"]
    assert dash["panels"], "no panels"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=ids(DASHBOARD_FILES))
def test_panels_have_fixed_ids_types_and_layout(path: Path) -> None:
    dash = load(path)
    panel_ids = all_panel_ids(dash)
    assert all(isinstance(i, int) and i > 0 for i in panel_ids), panel_ids
    assert len(panel_ids) == len(set(panel_ids)), f"duplicate panel ids in {path.name}"
    for panel in panels(dash):
        where = f"{path.name} panel {panel['id']} {panel.get('title')!r}"
        assert panel["type"] in PANEL_TYPES, where
        assert panel.get("title"), where
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, where
        assert pos["h"] > 0 and pos["y"] >= 0, where
        if panel["type"] != "table":
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=ids(DASHBOARD_FILES))
def test_every_panel_uses_the_provisioned_datasource(path: Path) -> None:
    dash = load(path)
    ds_vars = [v for v in variables(dash) if v["type"] == "datasource"]
    assert len(ds_vars) == 1 and ds_vars[0]["name"] == "datasource"
    assert ds_vars[0]["query"] == "prometheus"
    assert ds_vars[0]["current"]["value"] == DATASOURCE_UID
    for var in variables(dash):
        if var["type"] == "query":
            assert var["datasource"]["uid"] in DATASOURCE_REFS, var["name"]
    for panel in panels(dash):
        where = f"{path.name} panel {panel['id']} {panel['title']!r}"
        ds = panel.get("datasource")
        assert isinstance(ds, dict), f"{where}: no datasource reference"
        assert ds.get("type") == "prometheus" and ds.get("uid") in DATASOURCE_REFS, where
        for target in panel["targets"]:
            if "datasource" in target:
                assert target["datasource"].get("uid") in DATASOURCE_REFS, where


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=ids(DASHBOARD_FILES))
def test_every_target_has_an_expr_and_a_unique_ref_id(path: Path) -> None:
    dash = load(path)
    defined = {v["name"] for v in variables(dash)} | GRAFANA_BUILTINS
    for panel in panels(dash):
        where = f"{path.name} panel {panel['id']} {panel['title']!r}"
        targets = panel.get("targets", [])
        assert targets, f"{where}: no targets"
        refs = [t.get("refId") for t in targets]
        assert all(refs) and len(refs) == len(set(refs)), f"{where}: refIds {refs}"
        for target in targets:
            expr = target.get("expr", "")
            assert expr.strip(), f"{where}: empty expr"
            used = {next(g for g in m.groups() if g) for m in _VAR.finditer(expr)}
            assert used <= defined, f"{where}: undefined variables {used - defined}"
            assert "$" not in substitute(expr, dash), f"{where}: unsubstituted variable"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=ids(DASHBOARD_FILES))
def test_every_series_is_in_the_catalog_or_an_exporter_list(
    path: Path, known_series: set[str]
) -> None:
    dash = load(path)
    unknown: list[str] = []
    for panel in panels(dash):
        for target in panel["targets"]:
            names = metric_names(substitute(target["expr"], dash))
            assert names, f"panel {panel['id']} {target['refId']}: selects no series"
            unknown += [f"panel {panel['id']}: {n}" for n in names if n not in known_series]
    for var in variables(dash):
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = _LABEL_VALUES.match(query)
        assert match, f"variable {var['name']}: expected label_values(metric, label): {query!r}"
        unknown += [
            f"variable {var['name']}: {n}"
            for n in metric_names(match["metric"])
            if n not in known_series
        ]
    assert not unknown, f"{path.name} uses series outside the catalog and exporter lists: {unknown}"


@pytest.mark.parametrize("uid", sorted(REQUIRED_SERIES))
def test_dashboard_shows_what_it_promises(uid: str) -> None:
    dash = load(DASHBOARD_DIR / f"{uid}.json")
    used: set[str] = set()
    for panel in panels(dash):
        for target in panel["targets"]:
            used.update(metric_names(substitute(target["expr"], dash)))
    assert REQUIRED_SERIES[uid] <= used, f"missing: {REQUIRED_SERIES[uid] - used}"


def test_substitute_replaces_grafana_variables() -> None:
    dash = {
        "templating": {
            "list": [
                {"name": "layer", "type": "query", "includeAll": True, "allValue": ".*"},
                {"name": "datasource", "type": "datasource", "current": {"value": DATASOURCE_UID}},
            ]
        }
    }
    expr = 'rate(x{layer=~"$layer"}[$__rate_interval]) + y{l=~"${layer}"}[$__interval]'
    assert substitute(expr, dash) == 'rate(x{layer=~".*"}[1m]) + y{l=~".*"}[15s]'


# ---- provisioning ----------------------------------------------------------------------------
def test_datasource_provisioning() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert ds["uid"] == DATASOURCE_UID
    assert ds["type"] == "prometheus"
    assert ds["access"] == "proxy"
    # Grafana expands $VAR / ${VAR} in provisioning values; the URL comes from the environment.
    assert re.fullmatch(r"\$\{?TRADEGUARD_PROMETHEUS_URL\}?", ds["url"]), ds["url"]
    assert ds.get("isDefault") is True


def test_dashboard_provisioning_points_at_the_dashboards() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "tradeguard.yaml").read_text())
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "tradeguard"
    assert provider["options"]["path"] == PROVIDER_PATH
    assert DASHBOARD_FILES, "deploy/grafana/dashboards/ holds no dashboards"


def test_readme_documents_mounts_and_the_prometheus_url() -> None:
    text = (GRAFANA / "README.md").read_text()
    assert PROVIDER_PATH in text
    assert "/etc/grafana/provisioning" in text
    assert "TRADEGUARD_PROMETHEUS_URL" in text
    assert "http://localhost:9090" in text
    for uid in EXPECTED_UIDS:
        assert uid in text, f"README does not describe {uid}"
