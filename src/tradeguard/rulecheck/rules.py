"""Reading the Prometheus rule files into typed records.

The checks need names, expressions, labels and annotations, not Prometheus' full semantics
(promtool checks those); a file that cannot be read becomes a finding, not an exception, so one
broken file does not hide the problems of the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tradeguard.rulecheck.findings import Finding


@dataclass(frozen=True)
class AlertRule:
    """One ``alert:`` rule and where it is defined."""

    name: str
    expr: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    file: Path
    group: str


@dataclass(frozen=True)
class RecordingRule:
    """One ``record:`` rule: its name is a series other expressions may use."""

    name: str
    expr: str
    file: Path
    group: str


@dataclass(frozen=True)
class RuleSet:
    """Every rule of a set of files, plus what could not be read."""

    alerts: tuple[AlertRule, ...] = ()
    records: tuple[RecordingRule, ...] = ()
    problems: tuple[Finding, ...] = field(default=())

    def alerts_named(self, name: str) -> list[AlertRule]:
        return [rule for rule in self.alerts if rule.name == name]

    @property
    def alert_names(self) -> set[str]:
        return {rule.name for rule in self.alerts}


# The dead man's switch (component `meta`): an alert that always fires, so the responder can
# tell when alerts stop arriving. It is the one rule with severity `none`, with no metric in its
# expression and with no promtool case where it stays silent.
WATCHDOG_ALERT = "Watchdog"
WATCHDOG_COMPONENT = "meta"
WATCHDOG_SEVERITY = "none"
WATCHDOG_EXPR = "vector(1)"


def is_watchdog(rule: AlertRule) -> bool:
    """Whether ``rule`` is the always-firing Watchdog of component meta (``vector(1)``)."""
    return (
        rule.name == WATCHDOG_ALERT
        and rule.labels.get("component") == WATCHDOG_COMPONENT
        and "".join(rule.expr.split()) == WATCHDOG_EXPR
    )


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; OSError or yaml.YAMLError propagate to the caller."""
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_rule_file(path: Path, check: str = "rules") -> RuleSet:
    """The rules of one file, or a RuleSet carrying only the problem that stopped reading it."""
    try:
        document = load_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        return RuleSet(problems=(Finding(check, path.name, f"cannot read rule file: {exc}"),))
    groups = document.get("groups") if isinstance(document, Mapping) else None
    if not isinstance(groups, list):
        return RuleSet(problems=(Finding(check, path.name, "no `groups:` list"),))
    alerts: list[AlertRule] = []
    records: list[RecordingRule] = []
    problems: list[Finding] = []
    for group in groups:
        group_name = str(group.get("name", "")) if isinstance(group, Mapping) else ""
        rules = group.get("rules") if isinstance(group, Mapping) else None
        if not isinstance(rules, list):
            problems.append(Finding(check, path.name, f"group {group_name!r} has no rules list"))
            continue
        for rule in rules:
            if not isinstance(rule, Mapping):
                problems.append(Finding(check, path.name, f"non-mapping rule in {group_name!r}"))
            elif "alert" in rule:
                alerts.append(
                    AlertRule(
                        name=str(rule["alert"]),
                        expr=str(rule.get("expr", "")),
                        labels=_strings(rule.get("labels")),
                        annotations=_strings(rule.get("annotations")),
                        file=path,
                        group=group_name,
                    )
                )
            elif "record" in rule:
                records.append(
                    RecordingRule(str(rule["record"]), str(rule.get("expr", "")), path, group_name)
                )
            else:
                problems.append(Finding(check, path.name, f"rule without alert/record: {rule}"))
    return RuleSet(tuple(alerts), tuple(records), tuple(problems))


def load_rules(files: Iterable[Path], check: str = "rules") -> RuleSet:
    """All rules of ``files`` merged into one RuleSet."""
    alerts: list[AlertRule] = []
    records: list[RecordingRule] = []
    problems: list[Finding] = []
    for path in files:
        one = load_rule_file(path, check)
        alerts.extend(one.alerts)
        records.extend(one.records)
        problems.extend(one.problems)
    return RuleSet(tuple(alerts), tuple(records), tuple(problems))
