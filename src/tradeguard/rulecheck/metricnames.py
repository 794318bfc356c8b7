"""Every series a rule selects must be one something actually exposes.

The seeds' rules use metrics no exporter emits (``redis_auth_errors_total``,
``container_health_status``, ...); such a rule never fires. Names are allowed when they are in
tradeguard's metric catalog, in a scraped exporter list under
``deploy/prometheus/exporter-metrics/``, recorded by a recording rule, or built into Prometheus.
"""

from __future__ import annotations

from pathlib import Path

from tradeguard.metrics.catalog import catalog_series_names
from tradeguard.rulecheck.findings import Finding
from tradeguard.rulecheck.paths import RepoPaths
from tradeguard.rulecheck.promql import PromQLSyntaxError, metric_names
from tradeguard.rulecheck.rules import RuleSet, is_watchdog, load_rules

CHECK = "metrics"

# Series Prometheus itself writes for every target and for alerting rules.
PROMETHEUS_BUILTINS = frozenset(
    {
        "up",
        "ALERTS",
        "ALERTS_FOR_STATE",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "scrape_timeout_seconds",
        "scrape_sample_limit",
        "scrape_body_size_bytes",
    }
)


def exporter_metric_names(directory: Path) -> set[str]:
    """Names listed in ``directory/*.txt``: one per line, ``#`` lines are comments."""
    names: set[str] = set()
    for path in sorted(directory.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                names.add(stripped)
    return names


def known_metric_names(paths: RepoPaths, rules: RuleSet) -> set[str]:
    """Every name a rule may select in this checkout."""
    return (
        catalog_series_names()
        | exporter_metric_names(paths.exporter_metrics_dir)
        | PROMETHEUS_BUILTINS
        | {record.name for record in rules.records}
    )


def check_metrics(paths: RepoPaths, rules: RuleSet | None = None) -> list[Finding]:
    """Rule expressions select only known series names."""
    rule_set = rules if rules is not None else load_rules(paths.rule_files(), CHECK)
    known = known_metric_names(paths, rule_set)
    found: list[Finding] = []
    # The Watchdog (`vector(1)`) selects no metric by design; every other rule must select one.
    expressions = [(rule.name, rule.file, rule.expr, is_watchdog(rule)) for rule in rule_set.alerts]
    expressions += [(record.name, record.file, record.expr, False) for record in rule_set.records]
    for name, file, expr, constant in expressions:
        subject = f"{name} ({file.name})"
        try:
            used = metric_names(expr)
        except PromQLSyntaxError as exc:
            found.append(Finding(CHECK, subject, f"cannot scan expression: {exc}"))
            continue
        if not used and not constant:
            found.append(Finding(CHECK, subject, "expression selects no metric"))
        for metric in used:
            if metric not in known:
                found.append(
                    Finding(
                        CHECK,
                        subject,
                        f"metric `{metric}` is neither in the catalog nor in "
                        "exporter-metrics/*.txt nor a Prometheus built-in",
                    )
                )
    return found
