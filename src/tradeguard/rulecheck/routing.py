"""The expected Alertmanager routing of every inventory alert, and the check against amtool.

``deploy/alertmanager/routes.yml`` is the routing table the seeds ask for, written out: for each
inventory alert (name, component, severity, and the ``service`` label of its rule) the receivers
Alertmanager must notify, in order. It is generated from the inventory and the rules by
:func:`render_routes_table` (``scripts/gen_routes_table.py``) with the policy below, reviewed,
and then checked against the shipped ``alertmanager.yml`` with ``amtool config routes test``, so
a routing change that moves an alert shows up in review.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from tradeguard.rulecheck.findings import Finding
from tradeguard.rulecheck.inventory import InventoryRow, load_inventory
from tradeguard.rulecheck.paths import RepoPaths
from tradeguard.rulecheck.rules import WATCHDOG_ALERT, RuleSet, load_rules, load_yaml
from tradeguard.rulecheck.tools import ToolMissingError, run_tool

CHECK = "routes"

# Components whose alerts the trading team owns (the signal-to-result path).
TRADING_COMPONENTS = frozenset(
    {"trade_engine", "trading_bot", "signal_stream", "result_stream", "redis_trade_state"}
)

# The Watchdog feeds the responder's dead man's switch through its own receiver and nothing else.
WATCHDOG_RECEIVER = "watchdog"
# Meta alerts about the responder must not depend on it: this receiver reaches people without
# passing through the responder, and routing continues to the normal routes.
BYPASS_RECEIVER = "responder-bypass"


def policy_receivers(
    component: str, severity: str, alertname: str = "", service: str = ""
) -> tuple[str, ...]:
    """The receivers the routing policy (seeds 003 and 004, plus the meta routes) sends an
    alert to, in the order Alertmanager's tree visits them. Mirrors
    deploy/alertmanager/alertmanager.yml."""
    if alertname == WATCHDOG_ALERT:
        return (WATCHDOG_RECEIVER,)
    receivers: list[str] = []
    if component == "meta" and service == "responder":
        receivers.append(BYPASS_RECEIVER)  # routing continues
    if severity == "critical":
        receivers.append("pager")  # every critical pages, and routing continues
    if component == "system":
        receivers.append("sysadmin-email")  # continues to the severity routes
    if component == "docker":
        receivers.append("docker-team")
    elif component in TRADING_COMPONENTS:
        receivers.append("trading-chat")
    elif severity == "critical":
        receivers.append("chat-critical")
    elif severity == "warning":
        receivers.append("chat-warnings")
    return tuple(receivers) or ("responder",)


@dataclass(frozen=True)
class RouteExpectation:
    """One row of the routing table."""

    alertname: str
    component: str
    severity: str
    receivers: tuple[str, ...]
    service: str = ""  # the rule's `service` label; empty when no rule defines the alert

    @property
    def labels(self) -> dict[str, str]:
        labels = {
            "alertname": self.alertname,
            "component": self.component,
            "severity": self.severity,
        }
        if self.service:
            labels["service"] = self.service
        return labels


HEADER = """\
# Expected Alertmanager routing of every alert in alert-inventory.csv: for each alert, the
# receivers `amtool config routes test --config.file=deploy/alertmanager/alertmanager.yml
# alertname=A component=C severity=S service=V` must print, in that order (V: the `service`
# label of the alert's rule).
#
# Policy (seeds 003 and 004): every critical pages (pager, continue); system alerts mail the
# sysadmins and continue; docker alerts go to docker-team; trading-path alerts go to
# trading-chat; everything else to chat-critical or chat-warnings by severity. Alerts with
# neither severity go to the responder only. Every receiver also posts to the tradeguard
# responder's webhook, except two meta routes ahead of all others: the Watchdog goes to
# `watchdog` only (the responder's dead man's switch), and meta alerts about the responder
# (component meta, service responder) go first to `responder-bypass`, which does not pass
# through the responder, and then on as above. Trading-path components:
#   {trading}
#
# Generated from the inventory and the rules by scripts/gen_routes_table.py
# (tradeguard.rulecheck.routing); checked by tests/integration/test_deploy_config.py and
# `tradeguard rules check`.
"""


def alert_services(rules: RuleSet) -> dict[str, str]:
    """Alert name -> the ``service`` label of its rule (the first one, for a split alert); a
    templated label (``{{ $labels.service }}``) is the series' own and left out as unknown."""
    services: dict[str, str] = {}
    for rule in rules.alerts:
        service = rule.labels.get("service", "")
        services.setdefault(rule.name, "" if "{{" in service else service)
    return services


def expectations_for(
    rows: Iterable[InventoryRow], services: Mapping[str, str] | None = None
) -> list[RouteExpectation]:
    """The table the policy yields for ``rows``, with each alert's ``service`` label taken from
    ``services`` (:func:`alert_services` of the rules)."""
    known = services or {}
    table: list[RouteExpectation] = []
    for row in rows:
        service = known.get(row.alert, "")
        receivers = policy_receivers(row.component, row.severity, row.alert, service)
        table.append(RouteExpectation(row.alert, row.component, row.severity, receivers, service))
    return table


def render_routes_table(
    rows: Iterable[InventoryRow], services: Mapping[str, str] | None = None
) -> str:
    """routes.yml text for ``rows``: one flow-style mapping per alert, in inventory order."""
    lines = [HEADER.format(trading=", ".join(sorted(TRADING_COMPONENTS))), "routes:"]
    for route in expectations_for(rows, services):
        receivers = ", ".join(route.receivers)
        service = f"service: {route.service}, " if route.service else ""
        lines.append(
            f"  - {{alertname: {route.alertname}, component: {route.component}, "
            f"severity: {route.severity}, {service}receivers: [{receivers}]}}"
        )
    return "\n".join(lines) + "\n"


def load_routes_table(path: Path) -> list[RouteExpectation]:
    """The rows of routes.yml; ValueError if its shape is wrong."""
    document = load_yaml(path)
    routes = document.get("routes") if isinstance(document, Mapping) else None
    if not isinstance(routes, list):
        raise ValueError(f"{path}: no `routes:` list")
    table: list[RouteExpectation] = []
    for entry in routes:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("receivers"), list):
            raise ValueError(f"{path}: bad entry {entry!r}")
        table.append(
            RouteExpectation(
                alertname=str(entry["alertname"]),
                component=str(entry["component"]),
                severity=str(entry["severity"]),
                receivers=tuple(str(r) for r in entry["receivers"]),
                service=str(entry.get("service", "")),
            )
        )
    return table


class AmtoolError(RuntimeError):
    """amtool exited non-zero; the message carries its output."""


def amtool_receivers(config: Path, labels: Mapping[str, str]) -> tuple[str, ...]:
    """The receivers ``amtool config routes test`` prints for ``labels``, in its order.

    Raises ToolMissingError without amtool and AmtoolError when it fails.
    """
    argv = ["amtool", "config", "routes", "test", f"--config.file={config}"]
    argv += [f"{key}={value}" for key, value in labels.items()]
    run = run_tool(argv, timeout=60)
    # amtool warns on stderr that --config.file overrides --alertmanager.url; the answer is the
    # last line: the receivers, comma-separated.
    lines = [
        line.strip()
        for line in run.output.splitlines()
        if line.strip() and not line.startswith("Warning:")
    ]
    if not run.ok or not lines:
        raise AmtoolError(f"`{run.command}` exited {run.returncode}:\n{run.output}")
    return tuple(r.strip() for r in lines[-1].split(","))


def compare_route(config: Path, expected: RouteExpectation) -> list[Finding]:
    """Findings for one alert whose amtool routing differs from the table (or fails)."""
    try:
        actual = amtool_receivers(config, expected.labels)
    except AmtoolError as exc:
        return [Finding(CHECK, expected.alertname, "amtool failed", str(exc))]
    if actual != expected.receivers:
        return [
            Finding(
                CHECK,
                expected.alertname,
                f"routed to {', '.join(actual)}; the table expects {', '.join(expected.receivers)}",
            )
        ]
    return []


def compare_table_with_inventory(
    table: Sequence[RouteExpectation],
    rows: Sequence[InventoryRow],
    services: Mapping[str, str] | None = None,
) -> list[Finding]:
    """The table lists exactly the inventory's alerts with their component and severity, and
    (given ``services``, from :func:`alert_services`) the ``service`` label of their rules."""
    found: list[Finding] = []
    by_name = {route.alertname: route for route in table}
    for row in rows:
        route = by_name.get(row.alert)
        if route is None:
            found.append(Finding(CHECK, row.alert, "missing from routes.yml"))
        elif (route.component, route.severity) != (row.component, row.severity):
            found.append(
                Finding(
                    CHECK,
                    row.alert,
                    f"routes.yml has {route.component}/{route.severity}; "
                    f"the inventory has {row.component}/{row.severity}",
                )
            )
        elif services is not None and route.service != services.get(row.alert, ""):
            found.append(
                Finding(
                    CHECK,
                    row.alert,
                    f"routes.yml has service {route.service or '-'!r}; "
                    f"the rule has {services.get(row.alert) or '-'!r}",
                )
            )
    inventory_names = {row.alert for row in rows}
    found += [
        Finding(CHECK, route.alertname, "in routes.yml but not in the inventory")
        for route in table
        if route.alertname not in inventory_names
    ]
    return found


def check_routes(paths: RepoPaths, workers: int = 8) -> list[Finding]:
    """routes.yml covers the inventory and amtool routes every alert as it says."""
    config = paths.alertmanager_config
    try:
        table = load_routes_table(paths.routes_table)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return [Finding(CHECK, str(paths.routes_table), f"cannot read the routing table: {exc}")]
    services = alert_services(load_rules(paths.rule_files(), CHECK))
    found = compare_table_with_inventory(table, load_inventory(paths.inventory), services)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for findings in pool.map(lambda route: compare_route(config, route), table):
                found.extend(findings)
    except ToolMissingError as exc:
        found.append(Finding(CHECK, exc.tool, str(exc)))
    return found
