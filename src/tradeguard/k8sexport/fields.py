"""Checked reads of configuration values, each error naming the field it is about.

YAML gives whatever a file says (a number where a string belongs, a typo'd key); reading every
value through these turns a surprise into an ExportError with the field's path, instead of an
object the API server rejects or, worse, prunes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tradeguard.k8sexport.errors import ExportError

# The duration syntax the CRD accepts (Prometheus' model.Duration).
DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)

Convert = Callable[[Any, str], Any]


def as_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ExportError(f"{where}: must be a string, got {value!r}")
    return value


def as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ExportError(f"{where}: must be true or false, got {value!r}")
    return value


def as_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExportError(f"{where}: must be an integer, got {value!r}")
    return value


def as_duration(value: Any, where: str) -> str:
    if not isinstance(value, str) or not DURATION.match(value):
        raise ExportError(f"{where}: {value!r} is not a duration like 30s or 1h30m")
    return value


def as_str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise ExportError(f"{where}: must be a list")
    return [as_str(item, f"{where}[{n}]") for n, item in enumerate(value)]


def as_key_values(value: Any, where: str) -> list[dict[str, str]]:
    """A map (e-mail headers, PagerDuty details) as the CRD's list of ``{key, value}``."""
    if not isinstance(value, Mapping):
        raise ExportError(f"{where}: must be a map")
    return [{"key": str(k), "value": as_str(v, f"{where}.{k}")} for k, v in value.items()]


def reject_unknown(item: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    """ExportError naming the first field of ``item`` not in ``known``."""
    unknown = sorted(set(item) - known)
    if unknown:
        field = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ExportError(f"{field}: no AlertmanagerConfig equivalent in this export")
