"""Run every check and report: ``run_all`` for code, ``render`` for people, ``main`` for the CLI.

``tradeguard rules check`` calls :func:`main`; it prints one line per check (ok or FAIL) with the
problems under each failing one, and returns the process exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from tradeguard.errors import TradeguardError
from tradeguard.rulecheck.coverage import check_tests
from tradeguard.rulecheck.findings import CheckResult, Finding, Report
from tradeguard.rulecheck.inventory import check_inventory
from tradeguard.rulecheck.metricnames import check_metrics
from tradeguard.rulecheck.paths import RepoPaths, find_repo_root
from tradeguard.rulecheck.routing import check_routes
from tradeguard.rulecheck.tools import (
    check_amtool_config,
    check_promtool_config,
    check_promtool_rules,
    check_promtool_tests,
)

CheckFunction = Callable[[RepoPaths], list[Finding]]


@dataclass(frozen=True)
class Check:
    """A named check and what it verifies."""

    name: str
    description: str
    run: CheckFunction


CHECKS: tuple[Check, ...] = (
    Check(
        "inventory",
        "every inventory alert has a conforming rule, runbook and action",
        check_inventory,
    ),
    Check("tests", "every alert has a firing and a silent promtool test case", check_tests),
    Check("metrics", "rules select only catalogued or exporter series", check_metrics),
    Check("routes", "amtool routes every inventory alert as routes.yml says", check_routes),
    Check("promtool-config", "promtool check config", check_promtool_config),
    Check(
        "promtool-rules",
        "promtool check rules --lint=duplicate-rules --lint-fatal",
        check_promtool_rules,
    ),
    Check("promtool-tests", "promtool test rules on every test file", check_promtool_tests),
    Check("amtool-config", "amtool check-config", check_amtool_config),
)


def run_check(check: Check, paths: RepoPaths) -> CheckResult:
    """One check; a check that cannot run at all (no inventory, unreadable file) is a finding."""
    try:
        findings = tuple(check.run(paths))
    except (TradeguardError, OSError, ValueError) as exc:
        findings = (Finding(check.name, check.name, f"could not run: {exc}"),)
    return CheckResult(check.name, check.description, findings)


def run_all(repo_root: Path, checks: tuple[Check, ...] = CHECKS) -> Report:
    """Every check against the checkout at ``repo_root``."""
    paths = RepoPaths(repo_root)
    return Report(tuple(run_check(check, paths) for check in checks))


def render(report: Report) -> str:
    """Plain text: one line per check, then its problems indented below it."""
    width = max((len(result.name) for result in report.results), default=0)
    lines: list[str] = []
    for result in report.results:
        status = "ok  " if result.ok else "FAIL"
        summary = result.description if result.ok else f"{len(result.findings)} problem(s)"
        lines.append(f"{status}  {result.name:<{width}}  {summary}")
        for finding in result.findings:
            text = str(finding).replace("\n", "\n        ")
            lines.append(f"      - {text}")
    failed = sum(not result.ok for result in report.results)
    lines.append(
        f"{len(report.results)} checks, {failed} failed, {len(report.findings)} problem(s)"
    )
    return "\n".join(lines)


def main(repo_root: Path | None = None, console: Console | None = None) -> int:
    """Run every check, print the report; 0 if all pass, 1 if any fails, 2 if none could run."""
    out = console if console is not None else Console(highlight=False)
    try:
        root = repo_root if repo_root is not None else find_repo_root()
    except TradeguardError as exc:
        out.print(Text(f"error: {exc}", style="bold red"))
        return 2
    report = run_all(root)
    out.print(Text(f"tradeguard rule check: {root}", style="bold"), soft_wrap=True)
    for line in render(report).splitlines():
        style = ""
        if line.startswith("FAIL"):
            style = "bold red"
        elif line.startswith("ok"):
            style = "green"
        out.print(Text(line, style=style), soft_wrap=True)
    return 0 if report.ok else 1
