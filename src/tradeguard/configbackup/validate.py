"""promtool and amtool on an archive's configuration, before it replaces anything.

The archive's files are written into a temporary directory laid out like the repository
(``<tmp>/deploy/prometheus/...``), so the relative paths inside them hold (a test file's
``../rules/redis.rules.yml``, ``rule_files: rules/*.rules.yml``), and the project's own checks
run there, the same ones as ``tradeguard rules check`` (:mod:`tradeguard.rulecheck.tools`):
``promtool check config`` (prometheus.yml and every rule file it loads), ``promtool check rules``,
``amtool check-config``, then ``promtool test rules``, the slow one, only when the others pass.

When a local stack runs, the configuration is also rendered for it into a scratch directory
and the rendered files checked, so that a restore never leaves the stack with files its
Prometheus or Alertmanager would refuse to reload.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml

from tradeguard.configbackup.errors import InvalidConfiguration
from tradeguard.rulecheck.findings import Finding
from tradeguard.rulecheck.paths import RepoPaths
from tradeguard.rulecheck.report import CHECKS, Check, run_check
from tradeguard.rulecheck.tools import tool_findings
from tradeguard.stack.layout import StackLayout

FIRST_CHECKS = ("promtool-config", "promtool-rules", "amtool-config")
SLOW_CHECKS = ("promtool-tests",)


@contextmanager
def staged(files: Mapping[str, bytes]) -> Iterator[RepoPaths]:
    """A temporary repository root whose ``deploy/`` holds ``files`` (path in deploy/ ->
    contents); removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="tradeguard-restore-") as tmp:
        root = Path(tmp)
        for rel, data in files.items():
            target = root / "deploy" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        yield RepoPaths(root)


def _checks(names: tuple[str, ...]) -> list[Check]:
    return [check for check in CHECKS if check.name in names]


def validate(paths: RepoPaths, say: Callable[[str], None] = lambda _m: None) -> None:
    """Run the checks on ``paths``; InvalidConfiguration with every problem if any fails."""
    for group in (FIRST_CHECKS, SLOW_CHECKS):
        results = [run_check(check, paths) for check in _checks(group)]
        findings = [f for result in results for f in result.findings]
        if findings:
            raise _invalid(findings, paths)
        say("  " + ", ".join(f"{r.name} ok" for r in results))


def validate_rendered(paths: RepoPaths, layout: StackLayout) -> None:
    """Render ``paths.deploy`` for ``layout``'s stack into a scratch directory and check the
    result as Prometheus and Alertmanager will load it on reload."""
    from tradeguard.stack.render import render_alertmanager, render_prometheus

    with tempfile.TemporaryDirectory(prefix="tradeguard-render-") as tmp:
        scratch = dataclasses.replace(layout, run_dir=Path(tmp))
        try:
            prometheus = render_prometheus(paths.deploy, scratch)
            alertmanager = render_alertmanager(paths.deploy, scratch)
        except (KeyError, TypeError, AttributeError, ValueError, yaml.YAMLError) as exc:
            raise InvalidConfiguration(
                f"the archive's configuration cannot be rendered for the running stack "
                f"({type(exc).__name__}: {exc})"
            ) from None
        findings = [
            *tool_findings(
                "rendered-prometheus",
                "prometheus.yml (rendered for the stack)",
                ["promtool", "check", "config", str(prometheus)],
            ),
            *tool_findings(
                "rendered-alertmanager",
                "alertmanager.yml (rendered for the stack)",
                ["amtool", "check-config", str(alertmanager)],
            ),
        ]
        if findings:
            raise _invalid(findings, paths)


def _invalid(findings: list[Finding], paths: RepoPaths) -> InvalidConfiguration:
    """One line naming each problem (file and tool), the tools' output as details; the
    temporary directory's name is taken out so paths read as the archive's own."""
    prefix = f"{paths.root}/"
    first = "; ".join(f"{f.check} {f.subject}: {f.message}" for f in findings)
    details = "\n".join(str(f) for f in findings)
    return InvalidConfiguration(
        "the archive's configuration is invalid: " + first.replace(prefix, ""),
        details.replace(prefix, ""),
    )
