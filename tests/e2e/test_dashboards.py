"""End to end: every Grafana panel query works against the live stack's Prometheus.

Grafana is not installable here, so the test sends each panel's query the way Grafana would
(`$__rate_interval` -> 1m, `$__interval` -> 15s, template variables at All / their default) to
/api/v1/query. Every query must be accepted; once the workload has been processed, every panel
outside ALLOWED_EMPTY must return at least one finite sample (a NaN-only answer, as
histogram_quantile gives over an idle histogram, shows as "No data" and does not count).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tradeguard.process import wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "deploy" / "grafana" / "dashboards"

# Panels that only show data after a fault, keyed by (dashboard uid, panel id) with the panel's
# title to catch ids drifting. Everything else must have data in the healthy demo: fault
# counters are created at 0 when a process starts, so their rates read 0, not "No data".
ALLOWED_EMPTY = {
    # ALERTS{alertstate="firing"} is empty while nothing fires, the healthy state. The firing
    # count next to it (`or vector(0)`) is checked.
    ("tradeguard-overview", 17): "Firing alerts",
}
DATA_TIMEOUT = 45.0  # the engines report within a few seconds of the stack being up

_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def _substitute(expr: str, dashboard: dict[str, Any]) -> str:
    values = {
        "__rate_interval": "1m",
        "__interval": "15s",
        "__interval_ms": "15000",
        "__range": "1h",
        "__range_s": "3600",
    }
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("includeAll"):
            values[var["name"]] = var.get("allValue") or ".*"
        else:
            current = var.get("current", {}).get("value", ".*")
            values[var["name"]] = current[0] if isinstance(current, list) else current

    def repl(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return values.get(name, match.group(0))

    return _VAR.sub(repl, expr)


def _queries() -> list[tuple[str, int, str, str, str]]:
    """(dashboard uid, panel id, panel title, refId, query as Grafana sends it) for every target."""
    out = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        dash = json.loads(path.read_text())
        for panel in _panels(dash):
            for target in panel["targets"]:
                out.append(
                    (
                        dash["uid"],
                        panel["id"],
                        panel["title"],
                        target["refId"],
                        _substitute(target["expr"], dash),
                    )
                )
    return out


QUERIES = _queries()


def _variable_queries() -> list[tuple[str, str, str, str]]:
    """(dashboard uid, variable, metric, label) for every label_values() variable."""
    out = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        dash = json.loads(path.read_text())
        for var in dash.get("templating", {}).get("list", []):
            if var["type"] != "query":
                continue
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\s*\)\s*", query)
            assert match, f"{dash['uid']} variable {var['name']}: unsupported query {query!r}"
            out.append((dash["uid"], var["name"], match[1], match[2]))
    return out


def _query(client: httpx.Client, expr: str) -> dict[str, Any]:
    response = client.get("/api/v1/query", params={"query": expr})
    body: dict[str, Any] = response.json()
    return body


def _has_data(body: dict[str, Any]) -> bool:
    data = body.get("data", {})
    if data.get("resultType") == "scalar":
        return math.isfinite(float(data["result"][1]))
    return any(math.isfinite(float(s["value"][1])) for s in data.get("result", []))


@pytest.fixture(scope="module")
def prometheus(live_stack: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_stack.layout.prometheus_url, timeout=5.0) as client:
        wait_until(
            lambda: _query(client, "up")["status"] == "success", 30, "Prometheus to answer queries"
        )
        yield client


def test_allow_list_names_existing_panels() -> None:
    titles = {(uid, pid): title for uid, pid, title, _ref, _expr in QUERIES}
    for key, title in ALLOWED_EMPTY.items():
        assert titles.get(key) == title, f"allow-list entry {key} {title!r} matches no panel"
    assert len(ALLOWED_EMPTY) <= 3, "keep the allow-list short"


def test_every_panel_query_is_accepted(prometheus: httpx.Client) -> None:
    rejected = []
    for uid, pid, title, ref, expr in QUERIES:
        body = _query(prometheus, expr)
        if body.get("status") != "success":
            rejected.append(f"{uid} panel {pid} {title!r} {ref}: {body.get('error')} :: {expr}")
    assert not rejected, "Prometheus rejected:\n" + "\n".join(rejected)


def test_every_panel_has_data_in_the_demo(prometheus: httpx.Client) -> None:
    wait_until(
        lambda: _has_data(_query(prometheus, "sum(tradeguard_signals_processed_total) > 0")),
        DATA_TIMEOUT,
        "the engines to process signals (tradeguard_signals_processed_total > 0)",
    )
    required = [q for q in QUERIES if (q[0], q[1]) not in ALLOWED_EMPTY]
    empty: list[str] = []

    def all_have_data() -> bool:
        empty[:] = [
            f"{uid} panel {pid} {title!r} {ref}: {expr}"
            for uid, pid, title, ref, expr in required
            if not _has_data(_query(prometheus, expr))
        ]
        return not empty

    try:
        # Rates need two samples in their window and histograms an observation: poll, bounded.
        wait_until(all_have_data, DATA_TIMEOUT, "every panel to show data", interval=1.0)
    except TimeoutError:
        pytest.fail("panels without data in the demo:\n" + "\n".join(empty))


def test_template_variables_have_values(prometheus: httpx.Client) -> None:
    for uid, name, metric, label in _variable_queries():

        def has_values(metric: str = metric, label: str = label) -> bool:
            body = prometheus.get(
                f"/api/v1/label/{label}/values", params={"match[]": metric}
            ).json()
            return body["status"] == "success" and bool(body["data"])

        wait_until(
            has_values, DATA_TIMEOUT, f"{uid} variable ${name} ({label} of {metric})", interval=0.5
        )
