"""Alertmanager's notification templates as a ConfigMap.

An AlertmanagerConfig has no ``templates``; the receivers still say ``{{ template "..." }}``,
and Alertmanager fails every notification that names a template it has not loaded. So the
files travel as a ConfigMap that the Alertmanager object can load (its
``spec.alertmanagerConfiguration.templates``), and the note in the file says so.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tradeguard.k8sexport.errors import ExportError
from tradeguard.k8sexport.fields import as_str
from tradeguard.k8sexport.meta import Manifest, object_meta


def templates_configmap(
    config_dir: Path,
    patterns: Any,
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    source: str,
) -> Manifest | None:
    """The notification templates as one ConfigMap (one key per file); None without any."""
    if not isinstance(patterns, list):
        raise ExportError("templates: must be a list of file patterns")
    data: dict[str, str] = {}
    for pattern in patterns:
        text = as_str(pattern, "templates")
        base = "" if Path(text).is_absolute() else str(config_dir) + "/"
        for found in sorted(glob.glob(base + text)):
            path = Path(found)
            if path.name in data:
                raise ExportError(f"templates: two template files named {path.name}")
            try:
                data[path.name] = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ExportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data:
        return None
    return Manifest(
        body={
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": object_meta(name, namespace, labels),
            "data": data,
        },
        source=source,
        summary=f"{len(data)} notification template file{'s' * (len(data) != 1)}",
        notes=(
            "Notification templates of the AlertmanagerConfig beside this file. An "
            "AlertmanagerConfig cannot load templates: list this ConfigMap in the Alertmanager "
            "object's spec.alertmanagerConfiguration.templates (or mount it and name its files "
            "in your Alertmanager configuration's templates), or every notification that uses "
            "one of them fails.",
        ),
    )
