"""The whole export: read the repository's monitoring files, translate, write, summarise.

:func:`build` translates without writing anything, so the tests can check every object
against the CRD schemas; :func:`export` also writes and reports each file; :func:`summary`
is what a user must still do (the Secret keys to create, the namespace scope to arrange).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tradeguard.k8sexport.alertmanager import (
    DEFAULT_SECRET,
    AlertmanagerExport,
    alertmanager_config,
)
from tradeguard.k8sexport.errors import ExportError
from tradeguard.k8sexport.meta import DEFAULT_LABELS, Manifest, check_namespace
from tradeguard.k8sexport.rules import KIND as RULE_KIND
from tradeguard.k8sexport.rules import prometheus_rules, rule_files
from tradeguard.k8sexport.writer import write_manifests
from tradeguard.rulecheck.paths import RepoPaths, find_repo_root

FORMATS = ("prometheus-operator",)
DEFAULT_OUT = Path("build/prometheus-operator")


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise ExportError(f"unknown format {name!r}; choose one of: {', '.join(FORMATS)}")
    return name


def check_base_url(url: str) -> str:
    """An absolute http(s) URL, since the links must open from Slack or a pager."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ExportError(f"--runbook-base-url: {url!r} is not an http:// or https:// URL")
    return url


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how; ``repo`` None means the checkout found from the cwd."""

    repo: Path | None = None
    out_dir: Path = DEFAULT_OUT
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    runbook_base_url: str | None = None
    secret_name: str = DEFAULT_SECRET


@dataclass(frozen=True)
class Translation:
    """Every object of one export, before anything is written."""

    rules: tuple[Manifest, ...]
    alertmanager: AlertmanagerExport

    @property
    def manifests(self) -> tuple[Manifest, ...]:
        return self.rules + self.alertmanager.manifests


def build(options: ExportOptions) -> Translation:
    """Translate the repository's rules and Alertmanager configuration; ExportError (or
    ConfigError when no repository is found) on bad input, before any file is written."""
    if options.namespace is not None:
        check_namespace(options.namespace)
    if options.runbook_base_url is not None:
        check_base_url(options.runbook_base_url)
    root = options.repo if options.repo is not None else find_repo_root()
    paths = RepoPaths(root)
    rules = prometheus_rules(
        rule_files(paths.rules_dir),
        options.namespace,
        options.labels,
        options.runbook_base_url,
        source_root=root,
    )
    if not paths.alertmanager_config.is_file():
        raise ExportError(f"Alertmanager configuration not found: {paths.alertmanager_config}")
    alertmanager = alertmanager_config(
        paths.alertmanager_config,
        options.namespace,
        options.labels,
        secret_name=options.secret_name,
        source_root=root,
    )
    return Translation(tuple(rules), alertmanager)


@dataclass(frozen=True)
class ExportResult:
    translation: Translation
    files: tuple[Path, ...]
    options: ExportOptions


def export(options: ExportOptions, progress: Callable[[str], None]) -> ExportResult:
    """Translate, then write one file per object into ``options.out_dir``, calling
    ``progress`` with a line per file. OSError from writing propagates."""
    translation = build(options)
    files = write_manifests(options.out_dir, translation.manifests, progress)
    return ExportResult(translation, tuple(files), options)


def summary(result: ExportResult) -> list[str]:
    """The closing lines: what was written, then what the user still has to do."""
    translation, options = result.translation, result.options
    rules = translation.rules
    alerts = sum(
        1
        for m in rules
        for group in m.body["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    )
    kinds: dict[str, int] = {}
    for manifest in translation.manifests:
        kinds[manifest.kind] = kinds.get(manifest.kind, 0) + 1
    counted = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    lines = [
        f"exported {len(result.files)} objects to {options.out_dir}: {counted} "
        f"({alerts} alerts in {len(rules)} {RULE_KIND} objects)"
    ]
    ns = f" -n {options.namespace}" if options.namespace else ""
    where = f"namespace {options.namespace}" if options.namespace else "the objects' namespace"
    keys = translation.alertmanager.secret_keys
    name = translation.alertmanager.secret_name
    if keys:
        lines.append(f"before applying, create Secret {name} in {where} with these keys:")
        lines.extend(f"  {key.describe()}" for key in keys)
        files = " ".join(f"--from-file={k.key}=<file>" for k in keys)
        lines.append(f"  e.g. kubectl{ns} create secret generic {name} {files}")
        lines.append("  (each <file> holding the production value, not a development placeholder)")
    lines.append(
        "routing: the operator sends an AlertmanagerConfig only the alerts labelled with its "
        'namespace (namespace="<ns>"): set spec.enforcedNamespaceLabel: namespace on the '
        "Prometheus object, or spec.alertmanagerConfigMatcherStrategy.type: None on the "
        "Alertmanager object"
    )
    for manifest in translation.alertmanager.manifests:
        if manifest.kind == "ConfigMap":
            lines.append(
                f"templates: list ConfigMap {manifest.name} in the Alertmanager object's "
                "spec.alertmanagerConfiguration.templates"
            )
    if options.runbook_base_url is None and any(m.notes for m in rules):
        lines.append("runbook links are repository paths: add --runbook-base-url URL for links")
    lines.append(f"apply with: kubectl{ns} apply -f {options.out_dir}")
    return lines
