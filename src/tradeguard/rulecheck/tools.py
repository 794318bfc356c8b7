"""The upstream validators, run as subprocesses: promtool and amtool.

They know Prometheus' and Alertmanager's real semantics (PromQL parsing, template syntax,
test evaluation); the other checks only cover what they cannot see. Each failure becomes a
finding carrying the tool's output, and a missing binary says how to install it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tradeguard.rulecheck.findings import Finding
from tradeguard.rulecheck.paths import RepoPaths

TOOL_TIMEOUT = 300.0
MAX_OUTPUT = 6000


class ToolMissingError(FileNotFoundError):
    """A validator binary is not on PATH."""

    def __init__(self, tool: str) -> None:
        super().__init__(f"{tool} is not installed; run `make setup`")
        self.tool = tool


@dataclass(frozen=True)
class ToolRun:
    """One finished invocation."""

    argv: tuple[str, ...]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def command(self) -> str:
        return " ".join(self.argv)


def run_tool(
    argv: Sequence[str], cwd: Path | None = None, timeout: float = TOOL_TIMEOUT
) -> ToolRun:
    """Run ``argv`` with stdout and stderr merged; ToolMissingError if the binary is absent.

    A timeout is reported as a failed run (return code -1) rather than raised.
    """
    binary = shutil.which(argv[0])
    if binary is None:
        raise ToolMissingError(argv[0])
    try:
        done = subprocess.run(
            [binary, *argv[1:]],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else ""
        return ToolRun(tuple(argv), -1, f"{out}\n(timed out after {timeout:.0f}s)")
    return ToolRun(tuple(argv), done.returncode, done.stdout)


def _trim(output: str) -> str:
    if len(output) <= MAX_OUTPUT:
        return output
    return "…(output trimmed)\n" + output[-MAX_OUTPUT:]


def tool_findings(check: str, subject: str, argv: Sequence[str]) -> list[Finding]:
    """No finding if the tool succeeds; otherwise one with its output."""
    try:
        run = run_tool(argv)
    except ToolMissingError as exc:
        return [Finding(check, subject, str(exc))]
    if run.ok:
        return []
    return [Finding(check, subject, f"`{run.command}` exited {run.returncode}", _trim(run.output))]


def check_promtool_config(paths: RepoPaths) -> list[Finding]:
    """``promtool check config``: the configuration and every rule file it names."""
    config = paths.prometheus_config
    if not config.is_file():
        return [Finding("promtool-config", str(config), "missing")]
    return tool_findings(
        "promtool-config", config.name, ["promtool", "check", "config", str(config)]
    )


def check_promtool_rules(paths: RepoPaths) -> list[Finding]:
    """``promtool check rules --lint=duplicate-rules --lint-fatal`` on each rule file."""
    files = paths.rule_files()
    if not files:
        return [Finding("promtool-rules", str(paths.rules_dir), "no *.rules.yml files")]
    return [finding for path in files for finding in check_rule_file(path)]


def check_rule_file(path: Path) -> list[Finding]:
    """``promtool check rules --lint=duplicate-rules --lint-fatal`` on one file."""
    argv = ["promtool", "check", "rules", "--lint=duplicate-rules", "--lint-fatal", str(path)]
    return tool_findings("promtool-rules", path.name, argv)


def check_promtool_tests(paths: RepoPaths, files: Sequence[Path] | None = None) -> list[Finding]:
    """``promtool test rules`` on each test file (default: every ``*.test.yml``)."""
    chosen = list(files) if files is not None else paths.test_files()
    if not chosen:
        return [Finding("promtool-tests", str(paths.tests_dir), "no *.test.yml files")]
    found: list[Finding] = []
    for path in chosen:
        found.extend(
            tool_findings("promtool-tests", path.name, ["promtool", "test", "rules", str(path)])
        )
    return found


def check_amtool_config(paths: RepoPaths) -> list[Finding]:
    """``amtool check-config``: routing tree, receivers, inhibitions and templates."""
    config = paths.alertmanager_config
    if not config.is_file():
        return [Finding("amtool-config", str(config), "missing")]
    return tool_findings("amtool-config", config.name, ["amtool", "check-config", str(config)])
