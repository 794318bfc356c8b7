"""The alert inventory and the check that every inventory alert has a conforming rule.

``alert-inventory.csv`` is the list of alerts the seeds ask for (one row each: seed, component,
alert, intent, severity, action). The rules are written by hand from it, so this check keeps
the two from drifting: names, labels, annotations, runbooks and remediation actions.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from tradeguard.metrics.vocabulary import REMEDIATION_ACTIONS
from tradeguard.rulecheck.findings import Finding
from tradeguard.rulecheck.paths import RepoPaths
from tradeguard.rulecheck.rules import (
    WATCHDOG_SEVERITY,
    AlertRule,
    RuleSet,
    is_watchdog,
    load_rules,
)

CHECK = "inventory"
SEVERITIES = ("critical", "warning", "info")
REQUIRED_LABELS = ("severity", "component", "service")
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url", "action")


@dataclass(frozen=True)
class InventoryRow:
    """One alert the seeds ask for."""

    seed: str
    component: str
    alert: str
    intent: str
    severity: str
    action: str


def load_inventory(path: Path) -> list[InventoryRow]:
    """The rows of ``alert-inventory.csv``, in file order."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return [
            InventoryRow(
                seed=row["seed"].strip(),
                component=row["component"].strip(),
                alert=row["alert"].strip(),
                intent=row.get("intent (the seed's words)", "").strip(),
                severity=row["severity"].strip(),
                action=row.get("action in the seed", "").strip(),
            )
            for row in reader
            if row.get("alert", "").strip()
        ]


def runbook_url(alert: str) -> str:
    """The runbook link every rule must carry, relative to the repository root."""
    return f"docs/runbooks/{alert}.md"


def check_rule(rule: AlertRule, row: InventoryRow, paths: RepoPaths) -> list[Finding]:
    """Problems of one rule against its inventory row and the rule conventions."""
    where = f"{rule.name} ({rule.file.name})"
    found: list[Finding] = []

    def problem(message: str) -> None:
        found.append(Finding(CHECK, where, message))

    for label in REQUIRED_LABELS:
        if not rule.labels.get(label):
            problem(f"missing label `{label}`")
    for annotation in REQUIRED_ANNOTATIONS:
        if not rule.annotations.get(annotation):
            problem(f"missing annotation `{annotation}`")
    severity = rule.labels.get("severity")
    watchdog_severity = severity == WATCHDOG_SEVERITY and is_watchdog(rule)
    if severity and severity not in SEVERITIES and not watchdog_severity:
        problem(
            f"severity {severity!r} is not one of {', '.join(SEVERITIES)} "
            f"({WATCHDOG_SEVERITY!r} only for the always-firing Watchdog of component meta)"
        )
    component = rule.labels.get("component")
    if component and component != row.component:
        problem(f"component label {component!r} differs from the inventory's {row.component!r}")
    expected_file = f"{row.component}.rules.yml"
    if rule.file.name != expected_file:
        problem(
            f"defined in {rule.file.name}; component {row.component} belongs in {expected_file}"
        )
    if rule.group != f"tradeguard.{row.component}":
        problem(f"group {rule.group!r} should be 'tradeguard.{row.component}'")
    url = rule.annotations.get("runbook_url")
    if url:
        if url != runbook_url(row.alert):
            problem(f"runbook_url {url!r} should be {runbook_url(row.alert)!r}")
        elif not (paths.root / url).is_file():
            problem(f"runbook {url} does not exist")
    action = rule.annotations.get("action")
    if action and action not in REMEDIATION_ACTIONS:
        problem(f"action {action!r} is not a remediation action ({', '.join(REMEDIATION_ACTIONS)})")
    summary = rule.annotations.get("summary", "")
    if summary and ("{{" in summary or not summary.rstrip().endswith(".")):
        problem("summary should be a static sentence ending in a period")
    return found


def check_inventory(
    paths: RepoPaths, inventory: list[InventoryRow] | None = None, rules: RuleSet | None = None
) -> list[Finding]:
    """Every inventory alert has a rule of that exact name with the required labels and
    annotations, its component, an existing runbook and a known action; no rule is an alert
    the inventory does not list."""
    rows = inventory if inventory is not None else load_inventory(paths.inventory)
    rule_set = rules if rules is not None else load_rules(paths.rule_files(), CHECK)
    found: list[Finding] = list(rule_set.problems)
    if not paths.rule_files():
        found.append(Finding(CHECK, str(paths.rules_dir), "no *.rules.yml files"))
    by_name = {row.alert: row for row in rows}
    for row in rows:
        matching = rule_set.alerts_named(row.alert)
        if not matching:
            found.append(Finding(CHECK, row.alert, f"no rule (component {row.component})"))
            continue
        for rule in matching:
            found.extend(check_rule(rule, row, paths))
        severities = {rule.labels.get("severity") for rule in matching}
        if row.severity not in severities:
            found.append(
                Finding(
                    CHECK,
                    row.alert,
                    f"no rule with the inventory's severity {row.severity!r} "
                    f"(rules have {', '.join(sorted(s or '-' for s in severities))})",
                )
            )
    for rule in rule_set.alerts:
        if rule.name not in by_name:
            found.append(
                Finding(CHECK, f"{rule.name} ({rule.file.name})", "alert is not in the inventory")
            )
    # A row split into a warning and a critical rule would otherwise report shared problems twice.
    return list(dict.fromkeys(found))
