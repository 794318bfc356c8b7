"""Prometheus rule files as PrometheusRule objects, one object per file.

One object per file keeps the repository's split (one component per file) visible in the
cluster, so ``kubectl get prometheusrules`` reads like ``ls deploy/prometheus/rules``. Groups
and rules are copied as they are (name, interval, expr, ``for``, labels, annotations); the only
change is the optional absolute runbook link, made by the function the responder and the local
stack use (:mod:`tradeguard.responder.runbook_links`), so every link to a runbook points alike.
A field PrometheusRule does not know stops the export, since the API server would drop it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tradeguard.k8sexport.errors import ExportError
from tradeguard.k8sexport.meta import Manifest, check_name, object_meta
from tradeguard.responder.runbook_links import runbook_link

API_VERSION = "monitoring.coreos.com/v1"
KIND = "PrometheusRule"
NAME_PREFIX = "tradeguard-"
RULE_SUFFIX = ".rules.yml"
# The RuleGroup and Rule fields of the PrometheusRule CRD (snake_case, as in Prometheus).
GROUP_FIELDS = frozenset(
    {"name", "interval", "rules", "limit", "query_offset", "labels", "partial_response_strategy"}
)
RULE_FIELDS = frozenset(
    {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
)

RELATIVE_RUNBOOKS_NOTE = (
    "runbook_url annotations here are paths in the tradeguard repository, not links; export "
    "with --runbook-base-url URL to point them at the console's runbook pages."
)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where (PyYAML's own text spans lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"not valid YAML: {problem}{at}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def object_name(path: Path) -> str:
    """``signal_stream.rules.yml`` -> ``tradeguard-signal-stream``."""
    stem = path.name.removesuffix(RULE_SUFFIX)
    return check_name(NAME_PREFIX + stem.replace("_", "-").lower(), str(path))


def _check_strings(value: Any, where: str) -> None:
    """Labels and annotations must be strings already: converting ``1`` or ``yes`` here could
    change the value Prometheus reads from the same file."""
    if not isinstance(value, Mapping):
        raise ExportError(f"{where}: must be a map")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ExportError(f"{where}.{key}: must be a string (quote it in the rule file)")


def _check_group(group: Any, where: str) -> None:
    if not isinstance(group, Mapping) or not isinstance(group.get("name"), str):
        raise ExportError(f"{where}: a group must be a map with a `name`")
    unknown = sorted(set(group) - GROUP_FIELDS)
    if unknown:
        raise ExportError(f"{where}: field {unknown[0]!r} has no PrometheusRule equivalent")
    rules = group.get("rules")
    if not isinstance(rules, list):
        raise ExportError(f"{where}.rules: must be a list")
    for n, rule in enumerate(rules):
        rule_where = f"{where}.rules[{n}]"
        if not isinstance(rule, Mapping) or "expr" not in rule:
            raise ExportError(f"{rule_where}: a rule must be a map with an `expr`")
        unknown = sorted(set(rule) - RULE_FIELDS)
        if unknown:
            raise ExportError(
                f"{rule_where}: field {unknown[0]!r} has no PrometheusRule equivalent"
            )
        for key in ("labels", "annotations"):
            if key in rule:
                _check_strings(rule[key], f"{rule_where}.{key}")
        for key in ("for", "keep_firing_for"):
            if key in rule and not isinstance(rule[key], str):
                raise ExportError(f"{rule_where}.{key}: must be a duration string like 5m")


def read_groups(path: Path, runbook_base_url: str | None = None) -> list[dict[str, Any]]:
    """The rule groups of one file, checked, with absolute runbook links if a base is given."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExportError(f"{path}: {yaml_problem(exc)}") from None
    groups = document.get("groups") if isinstance(document, Mapping) else None
    if not isinstance(groups, list) or not groups:
        raise ExportError(f"{path}: no `groups:` list")
    for n, group in enumerate(groups):
        _check_group(group, f"{path.name}: groups[{n}]")
        if runbook_base_url is not None:
            for rule in group["rules"]:
                annotations = rule.get("annotations") or {}
                if "runbook_url" in annotations:
                    # The responder's rewrite of notification links, so a link here opens the
                    # same console page as one in a notification.
                    annotations["runbook_url"] = runbook_link(
                        annotations["runbook_url"], runbook_base_url
                    )
    return [dict(group) for group in groups]


def rule_files(rules_dir: Path) -> list[Path]:
    if not rules_dir.is_dir():
        raise ExportError(f"rule directory not found: {rules_dir}")
    files = sorted(rules_dir.glob(f"*{RULE_SUFFIX}"))
    if not files:
        raise ExportError(f"no *{RULE_SUFFIX} files in {rules_dir}")
    return files


def prometheus_rules(
    files: Sequence[Path],
    namespace: str | None,
    labels: Mapping[str, str],
    runbook_base_url: str | None = None,
    source_root: Path | None = None,
) -> list[Manifest]:
    """One PrometheusRule per rule file, in file order; ExportError on two files that would
    get the same object name (the second would overwrite the first in the cluster)."""
    manifests: list[Manifest] = []
    seen: dict[str, Path] = {}
    for path in files:
        name = object_name(path)
        if name in seen:
            raise ExportError(f"{path} and {seen[name]} both export as PrometheusRule {name}")
        seen[name] = path
        groups = read_groups(path, runbook_base_url)
        alerts = sum(1 for g in groups for r in g["rules"] if "alert" in r)
        records = sum(1 for g in groups for r in g["rules"] if "record" in r)
        summary = f"{plural(len(groups), 'group')}, {plural(alerts, 'alert')}"
        if records:
            summary += f", {plural(records, 'recording rule')}"
        shown = (
            path.relative_to(source_root)
            if source_root and path.is_relative_to(source_root)
            else path
        )
        relative = [
            r["alert"]
            for g in groups
            for r in g["rules"]
            if "://" not in r.get("annotations", {}).get("runbook_url", "://")
        ]
        notes = (RELATIVE_RUNBOOKS_NOTE,) if relative else ()
        manifests.append(
            Manifest(
                body={
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "metadata": object_meta(name, namespace, labels),
                    "spec": {"groups": groups},
                },
                source=str(shown),
                summary=summary,
                notes=notes,
            )
        )
    return manifests
