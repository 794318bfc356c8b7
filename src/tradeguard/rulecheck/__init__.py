"""Consistency checks between the alert inventory, the rules, their tests, routing and runbooks.

Each check is a plain function returning :class:`Finding` records, so pytest can assert that a
check has none and the CLI (``tradeguard rules check``) can print them all in one report.
"""

from tradeguard.rulecheck.findings import CheckResult, Finding, Report
from tradeguard.rulecheck.paths import RepoPaths, find_repo_root
from tradeguard.rulecheck.report import main, render, run_all

__all__ = [
    "CheckResult",
    "Finding",
    "RepoPaths",
    "Report",
    "find_repo_root",
    "main",
    "render",
    "run_all",
]
