"""Every alert has promtool tests both ways: one input that fires it, one that must not.

``promtool test rules`` only runs the cases that exist; an alert with no case, or with only a
firing case (a rule that always fires passes it), is untested. This check reads the test files'
``alert_rule_test`` entries and reports alerts lacking either kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tradeguard.rulecheck.findings import Finding
from tradeguard.rulecheck.inventory import load_inventory
from tradeguard.rulecheck.paths import RepoPaths
from tradeguard.rulecheck.rules import is_watchdog, load_rules, load_yaml

CHECK = "tests"


@dataclass
class AlertCoverage:
    """Which test files hold firing (non-empty ``exp_alerts``) and silent cases of one alert."""

    firing: list[Path] = field(default_factory=list)
    silent: list[Path] = field(default_factory=list)


def read_coverage(files: Iterable[Path]) -> tuple[dict[str, AlertCoverage], list[Finding]]:
    """Per alert name, the files testing it each way; plus findings for unreadable files."""
    coverage: dict[str, AlertCoverage] = {}
    problems: list[Finding] = []
    for path in files:
        try:
            document = load_yaml(path)
        except (OSError, yaml.YAMLError) as exc:
            problems.append(Finding(CHECK, path.name, f"cannot read test file: {exc}"))
            continue
        tests = document.get("tests") if isinstance(document, Mapping) else None
        if not isinstance(tests, list):
            problems.append(Finding(CHECK, path.name, "no `tests:` list"))
            continue
        for test in tests:
            cases = test.get("alert_rule_test") if isinstance(test, Mapping) else None
            for case in cases if isinstance(cases, list) else []:
                if not isinstance(case, Mapping) or "alertname" not in case:
                    problems.append(
                        Finding(CHECK, path.name, f"alert_rule_test without alertname: {case}")
                    )
                    continue
                entry = coverage.setdefault(str(case["alertname"]), AlertCoverage())
                (entry.firing if case.get("exp_alerts") else entry.silent).append(path)
    return coverage, problems


def check_tests(paths: RepoPaths, alert_names: Iterable[str] | None = None) -> list[Finding]:
    """Each alert (default: the rules' alerts and the inventory's) has a firing and a silent
    ``alert_rule_test``; the always-firing Watchdog cannot be silent and needs only firing ones."""
    rule_set = load_rules(paths.rule_files(), CHECK)
    defined = rule_set.alert_names
    always_firing = {rule.name for rule in rule_set.alerts if is_watchdog(rule)}
    if alert_names is None:
        names = {row.alert for row in load_inventory(paths.inventory)} | defined
    else:
        names = set(alert_names)
    files = paths.test_files()
    if not files:
        return [Finding(CHECK, str(paths.tests_dir), "no *.test.yml files")]
    coverage, found = read_coverage(files)
    for name in sorted(names):
        entry = coverage.get(name, AlertCoverage())
        if not entry.firing and not entry.silent:
            found.append(Finding(CHECK, name, "no alert_rule_test"))
        elif not entry.firing:
            found.append(Finding(CHECK, name, "no alert_rule_test where it fires (exp_alerts)"))
        elif not entry.silent and name not in always_firing:
            found.append(Finding(CHECK, name, "no alert_rule_test where it stays silent"))
    for name in sorted(set(coverage) - defined):
        # A silent case for a misspelt or missing alert passes vacuously: say so.
        where = sorted({p.name for p in coverage[name].firing + coverage[name].silent})
        found.append(Finding(CHECK, name, f"tested in {', '.join(where)} but no rule defines it"))
    return found
