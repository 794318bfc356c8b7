"""Kubernetes object names, labels and the exported object itself.

The API server rejects an object whose name or labels break its syntax rules only when it is
applied, far from the export that produced it; checking here turns that into an error at export
time that names the option or file at fault.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tradeguard.k8sexport.errors import ExportError

# RFC 1123 subdomain (object names) and label (namespaces), as Kubernetes validates them.
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A label key's name part and a label value (empty allowed for values).
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
MAX_NAME = 253
MAX_LABEL_PART = 63

# What a prometheus-operator ruleSelector or alertmanagerConfigSelector commonly matches on;
# replaced as a whole by the labels a user gives (their selector may want something else).
DEFAULT_LABELS: Mapping[str, str] = {"app.kubernetes.io/part-of": "tradeguard"}


def is_dns1123_subdomain(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(_DNS1123_SUBDOMAIN.match(name))


def check_name(name: str, what: str) -> str:
    """``name`` if it is a valid object name; ExportError naming ``what`` otherwise."""
    if not is_dns1123_subdomain(name):
        raise ExportError(
            f"{what}: {name!r} is not a valid Kubernetes object name (lowercase letters, "
            "digits, '-' and '.', starting and ending with a letter or digit, at most 253)"
        )
    return name


def check_namespace(namespace: str) -> str:
    if len(namespace) > MAX_LABEL_PART or not _DNS1123_LABEL.match(namespace):
        raise ExportError(
            f"--namespace: {namespace!r} is not a valid namespace (lowercase letters, digits "
            "and '-', starting and ending with a letter or digit, at most 63)"
        )
    return namespace


def _valid_label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and not is_dns1123_subdomain(prefix):
        return False
    return len(name) <= MAX_LABEL_PART and bool(_LABEL_NAME.match(name))


def _valid_label_value(value: str) -> bool:
    return value == "" or (len(value) <= MAX_LABEL_PART and bool(_LABEL_NAME.match(value)))


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """``key=value`` strings as object labels; :data:`DEFAULT_LABELS` when there are none."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ExportError(f"--label wants KEY=VALUE, got {item!r}")
        if not _valid_label_key(key):
            raise ExportError(f"--label: {key!r} is not a valid Kubernetes label key")
        if not _valid_label_value(value):
            raise ExportError(f"--label: {value!r} is not a valid Kubernetes label value")
        labels[key] = value
    return labels or dict(DEFAULT_LABELS)


def object_meta(name: str, namespace: str | None, labels: Mapping[str, str]) -> dict[str, Any]:
    """``metadata`` of an exported object. Without a namespace the object goes where
    ``kubectl apply -n`` (or the current context) puts it."""
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    return meta


@dataclass(frozen=True)
class Manifest:
    """One exported object, with what its file's header comment says about it.

    ``source`` is the file it was translated from; ``notes`` are the comments a reader of the
    file needs (what the operator changes, what was not carried over and why); ``summary``
    is the short description the progress line prints.
    """

    body: dict[str, Any]
    source: str
    summary: str
    notes: tuple[str, ...] = field(default=())

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def filename(self) -> str:
        return f"{self.kind.lower()}-{self.name}.yaml"
