"""Where the files the checks read live, relative to the repository root.

The checks run from a checkout (tests, ``make test``) and from an installed CLI alike, so the
root is found by walking up to the directory that holds ``deploy/``, from the working directory
first and from this package's location second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tradeguard.errors import ConfigError

INVENTORY_ENV = "TRADEGUARD_ALERT_INVENTORY"
INVENTORY_NAME = "alert-inventory.csv"


def _holds_deploy(directory: Path) -> bool:
    return (directory / "deploy" / "prometheus").is_dir()


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest directory holding ``deploy/prometheus``, from ``start`` (default: the cwd)
    upwards, then from this package's location upwards; ConfigError if neither has one."""
    origins = [Path.cwd() if start is None else start, Path(__file__)]
    for origin in origins:
        origin = origin.resolve()
        for candidate in (origin, *origin.parents):
            if _holds_deploy(candidate):
                return candidate
    raise ConfigError(
        "cannot find the repository root (a directory holding deploy/prometheus) above "
        f"{origins[0]} or {Path(__file__).parent}"
    )


@dataclass(frozen=True)
class RepoPaths:
    """The monitoring files of one checkout."""

    root: Path

    @property
    def deploy(self) -> Path:
        return self.root / "deploy"

    @property
    def prometheus_dir(self) -> Path:
        return self.deploy / "prometheus"

    @property
    def prometheus_config(self) -> Path:
        return self.prometheus_dir / "prometheus.yml"

    @property
    def rules_dir(self) -> Path:
        return self.prometheus_dir / "rules"

    @property
    def tests_dir(self) -> Path:
        return self.prometheus_dir / "tests"

    @property
    def targets_dir(self) -> Path:
        return self.prometheus_dir / "targets"

    @property
    def exporter_metrics_dir(self) -> Path:
        return self.prometheus_dir / "exporter-metrics"

    @property
    def alertmanager_dir(self) -> Path:
        return self.deploy / "alertmanager"

    @property
    def alertmanager_config(self) -> Path:
        return self.alertmanager_dir / "alertmanager.yml"

    @property
    def routes_table(self) -> Path:
        return self.alertmanager_dir / "routes.yml"

    @property
    def runbooks_dir(self) -> Path:
        return self.root / "docs" / "runbooks"

    def rule_files(self) -> list[Path]:
        return sorted(self.rules_dir.glob("*.rules.yml"))

    def test_files(self) -> list[Path]:
        return sorted(self.tests_dir.glob("*.test.yml"))

    def inventory_candidates(self) -> list[Path]:
        """Where the alert inventory may be, in order: ``$TRADEGUARD_ALERT_INVENTORY``, a copy
        in ``deploy/``, the repository root, then the ``shared/`` directory beside the checkout
        (where the project's design documents live)."""
        candidates = [
            self.deploy / INVENTORY_NAME,
            self.root / INVENTORY_NAME,
            self.root.parent / "shared" / INVENTORY_NAME,
        ]
        override = os.environ.get(INVENTORY_ENV)
        if override:
            candidates.insert(0, Path(override))
        return candidates

    @property
    def inventory(self) -> Path:
        """The alert inventory CSV; ConfigError naming every place looked at if none exists."""
        candidates = self.inventory_candidates()
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        looked = ", ".join(str(c) for c in candidates)
        raise ConfigError(f"alert inventory not found; looked at {looked}")
