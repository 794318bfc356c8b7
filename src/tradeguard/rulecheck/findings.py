"""The records every check returns.

Checks report problems as data rather than raising, so that one run can list every problem at
once and both pytest (``assert not findings``) and the CLI report can use the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One problem found by a check.

    ``subject`` names what is wrong (an alert, a file, a tool), ``message`` says how, and
    ``detail`` carries a tool's output when there is one.
    """

    check: str
    subject: str
    message: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.subject}: {self.message}"
        if self.detail:
            indented = "\n".join(f"    {line}" for line in self.detail.rstrip().splitlines())
            text = f"{text}\n{indented}"
        return text


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one named check."""

    name: str
    description: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class Report:
    """Every check's result, in the order they ran."""

    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for result in self.results for f in result.findings)


def describe(findings: Iterable[Finding]) -> str:
    """Findings as a bullet list, for assertion messages."""
    lines = [f"- {finding}" for finding in findings]
    return f"{len(lines)} problem(s):\n" + "\n".join(lines)
