"""alertmanager.yml as one AlertmanagerConfig object (plus a ConfigMap with its templates).

The route tree, inhibit rules and time intervals keep their structure; only the spelling
changes (camelCase, matchers as objects). What an AlertmanagerConfig cannot express is handled
in one of two ways, never dropped quietly: a setting that does not decide who is notified
(``global.resolve_timeout``, ``templates``) is left out with a note in the output file's
header saying where it goes instead; anything else (an unknown field, a notifier type or
receiver option this export does not translate, a time zone) stops the export with the field's
path. The header also states what the operator does to the object on its own (the namespace
matcher, ``continue: true`` on the top route), since those change which alerts reach it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from tradeguard.k8sexport.errors import ExportError
from tradeguard.k8sexport.fields import as_duration, as_str, as_str_list, reject_unknown
from tradeguard.k8sexport.intervals import time_intervals
from tradeguard.k8sexport.matchers import matchers_of
from tradeguard.k8sexport.meta import Manifest, check_name, object_meta
from tradeguard.k8sexport.receivers import GLOBAL_DEFAULTS, receiver
from tradeguard.k8sexport.rules import yaml_problem
from tradeguard.k8sexport.secrets import SecretKey, SecretRefs
from tradeguard.k8sexport.templates import templates_configmap

API_VERSION = "monitoring.coreos.com/v1alpha1"
KIND = "AlertmanagerConfig"
DEFAULT_NAME = "tradeguard"
DEFAULT_SECRET = "tradeguard-alertmanager"
TOP_FIELDS = frozenset(
    {
        "global",
        "templates",
        "route",
        "inhibit_rules",
        "receivers",
        "time_intervals",
        "mute_time_intervals",
    }
)
ROUTE_FIELDS = frozenset(
    {
        "receiver",
        "matchers",
        "match",
        "match_re",
        "group_by",
        "group_wait",
        "group_interval",
        "repeat_interval",
        "continue",
        "mute_time_intervals",
        "active_time_intervals",
        "routes",
    }
)
INHIBIT_FIELDS = frozenset(
    {
        "source_matchers",
        "source_match",
        "source_match_re",
        "target_matchers",
        "target_match",
        "target_match_re",
        "equal",
    }
)
# Global settings that decide nothing about routing and that an AlertmanagerConfig cannot
# carry: left out, each with where it belongs instead.
DROPPED_GLOBALS = {
    "resolve_timeout": "an Alertmanager-wide setting; set it on the Alertmanager object "
    "(spec.alertmanagerConfiguration.global.resolveTimeout) if the default does not suit you. "
    "Alerts from Prometheus carry their own end time, so it does not change their routing",
}
SCOPE_NOTE = (
    "Routing scope: the operator adds this route to its Alertmanager configuration as a "
    'first-level route with a namespace="<namespace of this object>" matcher and '
    "continue: true, and adds the same namespace matcher to both sides of every inhibit rule. "
    "The exported alerts get a namespace label only when the Prometheus object sets "
    "spec.enforcedNamespaceLabel (which also scopes the rules' queries to that namespace); "
    "otherwise set spec.alertmanagerConfigMatcherStrategy.type: None on the Alertmanager "
    "object, or no alert reaches these routes."
)


@dataclass(frozen=True)
class AlertmanagerExport:
    """The objects made from one alertmanager.yml and the Secret keys they refer to."""

    manifests: tuple[Manifest, ...]
    secret_name: str
    secret_keys: tuple[SecretKey, ...]


def route(item: Any, where: str, receivers: set[str], intervals: set[str]) -> dict[str, Any]:
    """One route and its children, recursively, in the CRD's form."""
    if not isinstance(item, Mapping):
        raise ExportError(f"{where}: a route must be a map")
    reject_unknown(item, ROUTE_FIELDS, where)
    out: dict[str, Any] = {}
    if "receiver" in item:
        name = as_str(item["receiver"], f"{where}.receiver")
        if name not in receivers:
            raise ExportError(f"{where}.receiver: no receiver named {name!r}")
        out["receiver"] = name
    found = matchers_of(item, where)
    if found:
        out["matchers"] = found
    if "group_by" in item:
        out["groupBy"] = as_str_list(item["group_by"], f"{where}.group_by")
    for key, camel in (
        ("group_wait", "groupWait"),
        ("group_interval", "groupInterval"),
        ("repeat_interval", "repeatInterval"),
    ):
        if key in item:
            out[camel] = as_duration(item[key], f"{where}.{key}")
    if "continue" in item:
        if not isinstance(item["continue"], bool):
            raise ExportError(f"{where}.continue: must be true or false")
        out["continue"] = item["continue"]
    for key, camel in (
        ("mute_time_intervals", "muteTimeIntervals"),
        ("active_time_intervals", "activeTimeIntervals"),
    ):
        if key in item:
            names = as_str_list(item[key], f"{where}.{key}")
            missing = [n for n in names if n not in intervals]
            if missing:
                raise ExportError(f"{where}.{key}: no time interval named {missing[0]!r}")
            out[camel] = names
    if "routes" in item:
        children = item["routes"]
        if not isinstance(children, list):
            raise ExportError(f"{where}.routes: must be a list")
        out["routes"] = [
            route(child, f"{where}.routes[{n}]", receivers, intervals)
            for n, child in enumerate(children)
        ]
    return out


def inhibit_rule(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise ExportError(f"{where}: an inhibit rule must be a map")
    reject_unknown(item, INHIBIT_FIELDS, where)
    out: dict[str, Any] = {
        "sourceMatch": matchers_of(item, where, "source_"),
        "targetMatch": matchers_of(item, where, "target_"),
    }
    if "equal" in item:
        out["equal"] = as_str_list(item["equal"], f"{where}.equal")
    return out


def _globals(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The global defaults receivers take, and the notes for the ones left out."""
    settings = config.get("global") or {}
    if not isinstance(settings, Mapping):
        raise ExportError("global: must be a map")
    notes = []
    for key, value in settings.items():
        if key in DROPPED_GLOBALS:
            notes.append(f"Not carried over: global.{key} ({value}): {DROPPED_GLOBALS[key]}.")
        elif key not in GLOBAL_DEFAULTS:
            raise ExportError(f"global.{key}: no AlertmanagerConfig equivalent in this export")
    applied = sorted(k for k in settings if k in GLOBAL_DEFAULTS)
    if applied:
        notes.append(
            "AlertmanagerConfig has no global section: "
            + ", ".join(f"global.{k}" for k in applied)
            + " are written into each receiver that relied on them."
        )
    return {k: v for k, v in settings.items() if k in GLOBAL_DEFAULTS}, notes


# Receiver fields holding an address that is copied as written.
ADDRESS_FIELDS = ("smarthost", "url", "proxyURL")


def is_loopback(address: str) -> bool:
    """Whether ``address`` (a URL or host:port) names this machine: in a cluster, that is the
    Alertmanager pod itself, which is right for a local stack and wrong for Kubernetes."""
    host = urlsplit(address).hostname if "://" in address else address.rpartition(":")[0]
    host = (host or address).strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_fields(receivers: list[dict[str, Any]]) -> list[str]:
    """Paths of the translated receivers' address fields that point at loopback."""
    found = []
    for item in receivers:
        for kind, configs in item.items():
            if not isinstance(configs, list):
                continue
            for n, config in enumerate(configs):
                places = [("", config), ("httpConfig.", config.get("httpConfig", {}))]
                for prefix, holder in places:
                    for key in ADDRESS_FIELDS:
                        value = holder.get(key)
                        if isinstance(value, str) and is_loopback(value):
                            found.append(f"receivers[{item['name']}].{kind}[{n}].{prefix}{key}")
    return found


def count_routes(tree: Mapping[str, Any]) -> int:
    return sum(1 + count_routes(child) for child in tree.get("routes", []))


def load_config(path: Path) -> Mapping[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ExportError(f"{path}: {yaml_problem(exc)}") from None
    if not isinstance(document, Mapping):
        raise ExportError(f"{path}: not an Alertmanager configuration (no top-level map)")
    return document


def _spec(config: Mapping[str, Any], secrets: SecretRefs) -> tuple[dict[str, Any], list[str]]:
    """The AlertmanagerConfig spec and the notes about what moved or was left out."""
    reject_unknown(config, TOP_FIELDS, "")
    defaults, notes = _globals(config)
    items = config.get("receivers")
    if not isinstance(items, list) or not items:
        raise ExportError("receivers: must be a non-empty list")
    receivers = [
        receiver(item, f"receivers[{n}]", defaults, secrets) for n, item in enumerate(items)
    ]
    names = {r["name"] for r in receivers}
    intervals = time_intervals(config)
    if "route" not in config:
        raise ExportError("route: missing (Alertmanager needs a root route)")
    tree = route(config["route"], "route", names, {i["name"] for i in intervals})
    if "receiver" not in tree:
        raise ExportError("route.receiver: missing (the root route needs a receiver)")
    if any(m["name"] == "namespace" for m in tree.get("matchers", [])):
        notes.append("The top route's matchers on `namespace` are replaced by the operator's own.")
    local = loopback_fields(receivers)
    if local:
        notes.append(
            "Loopback addresses copied as written (right for the local stack; in a cluster "
            "they reach the Alertmanager pod itself), to point elsewhere when deploying, e.g. "
            "with a kustomize patch: " + ", ".join(local) + "."
        )
    spec: dict[str, Any] = {"route": tree, "receivers": receivers}
    rules = config.get("inhibit_rules") or []
    if not isinstance(rules, list):
        raise ExportError("inhibit_rules: must be a list")
    if rules:
        spec["inhibitRules"] = [inhibit_rule(r, f"inhibit_rules[{n}]") for n, r in enumerate(rules)]
    if intervals:
        spec["muteTimeIntervals"] = intervals
    return spec, notes


def alertmanager_config(
    path: Path,
    namespace: str | None,
    labels: Mapping[str, str],
    secret_name: str = DEFAULT_SECRET,
    name: str = DEFAULT_NAME,
    source_root: Path | None = None,
) -> AlertmanagerExport:
    """Translate ``path`` (alertmanager.yml); ExportError, prefixed with the file, on
    anything that would not survive the translation."""
    check_name(name, "AlertmanagerConfig name")
    check_name(secret_name, "--secret-name")
    shown = str(
        path.relative_to(source_root) if source_root and path.is_relative_to(source_root) else path
    )
    config = load_config(path)
    secrets = SecretRefs(secret_name, PurePosixPath(Path(shown).parent.as_posix()))
    try:
        spec, notes = _spec(config, secrets)
    except ExportError as exc:
        raise ExportError(f"{shown}: {exc}") from None
    manifests: list[Manifest] = []
    templates_name = f"{name}-alertmanager-templates"
    configmap = None
    if "templates" in config:
        configmap = templates_configmap(
            path.parent, config["templates"], templates_name, namespace, labels, shown
        )
        where = f"ConfigMap {templates_name}" if configmap else "no file (the patterns match none)"
        notes.append(
            f"Not carried over: templates ({', '.join(map(str, config['templates']))}): an "
            f"AlertmanagerConfig cannot load templates. They are exported as {where}; see the "
            "note in that file."
        )
    keys = secrets.keys
    if keys:
        notes.append(
            "\n".join(
                [
                    f"Secrets: every credential and webhook URL is a key of Secret {secret_name}"
                    " in this object's namespace, which the export does not write (it never"
                    " copies a secret). Create these keys before applying:",
                    *(f"  {key.describe()}" for key in keys),
                ]
            )
        )
    notes.insert(0, SCOPE_NOTE)
    receivers = spec["receivers"]
    summary = (
        f"{len(receivers)} receivers, {count_routes(spec['route'])} routes, "
        f"{len(spec.get('inhibitRules', []))} inhibit rules"
    )
    manifests.append(
        Manifest(
            body={
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": object_meta(name, namespace, labels),
                "spec": spec,
            },
            source=shown,
            summary=summary,
            notes=tuple(notes),
        )
    )
    if configmap is not None:
        manifests.append(configmap)
    return AlertmanagerExport(tuple(manifests), secret_name, tuple(keys))
