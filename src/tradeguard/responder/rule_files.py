"""Where each alert rule is written: file, line, ``for`` and severity, for a suggestion that
names the line to change.

``tradeguard.rulecheck`` reads the same files for its checks, but through ``yaml.safe_load``,
which forgets line numbers, and the responder may not import it (the two sit side by side in
the dependency order). Here the files are *composed* instead (the YAML node tree keeps where
each node starts), which is all a location needs. ``tests/unit/test_alerts_optimize.py``
checks that both readers find the same alerts in the same files and groups.

Also the Prometheus duration syntax (``90s``, ``1m30s``, ``2h``), both ways: a suggested
``for:`` is written the way the rule files write them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

RULES_SUBDIR = Path("deploy") / "prometheus" / "rules"
RULE_FILE_GLOB = "*.yml"
# Prometheus' duration units, largest first, as its parser takes them (a year is 365 days).
_UNITS: tuple[tuple[str, float], ...] = (
    ("y", 365 * 86400.0),
    ("w", 7 * 86400.0),
    ("d", 86400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
)
_DURATION = re.compile("".join(rf"(?:(\d+){name})?" for name, _ in _UNITS))


def parse_duration(text: str) -> float:
    """Seconds of a Prometheus duration (``1h30m``, ``90s``, ``0``); ValueError otherwise."""
    text = text.strip()
    if text == "0":
        return 0.0
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * unit for n, (_, unit) in zip(match.groups(), _UNITS, strict=True) if n)


def format_duration(seconds: float) -> str:
    """``seconds`` as the rule files write a ``for``: whole seconds, largest units first, no
    days or longer (``90`` -> ``1m30s``, ``7200`` -> ``2h``, ``0`` -> ``0s``)."""
    left = max(0, round(seconds))
    parts = []
    for name, unit in (("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, unit)
        if count:
            parts.append(f"{count}{name}")
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class RuleLocation:
    """One ``alert:`` rule, where it is written and the settings a suggestion talks about."""

    name: str
    file: Path
    line: int  # 1-based, the line of ``- alert: <name>``
    group: str
    severity: str | None
    for_text: str | None  # as written; None when the rule has no ``for``
    for_seconds: float
    expr: str

    def where(self, root: Path | None = None) -> str:
        """``file:line``, relative to ``root`` when the file is under it."""
        path = self.file
        if root is not None:
            try:
                path = self.file.resolve().relative_to(root.resolve())
            except ValueError:
                pass
        return f"{path}:{self.line}"


def find_rules_dir(start: Path | None = None) -> Path | None:
    """The nearest ``deploy/prometheus/rules`` from ``start`` (default: the working directory)
    upwards, then from this package's location upwards (an editable install run elsewhere)."""
    for origin in (start or Path.cwd(), Path(__file__)):
        origin = origin.resolve()
        for candidate in (origin, *origin.parents):
            if (candidate / RULES_SUBDIR).is_dir():
                return candidate / RULES_SUBDIR
    return None


def _mapping(node: yaml.Node | None) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): value for key, value in node.value if isinstance(key, yaml.ScalarNode)}


def _scalar(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _rules_of(path: Path) -> Iterator[RuleLocation]:
    with path.open(encoding="utf-8") as handle:
        document = yaml.compose(handle, Loader=yaml.SafeLoader)
    if document is None:
        return
    groups = _mapping(document).get("groups")
    if not isinstance(groups, yaml.SequenceNode):
        return
    for group in groups.value:
        fields = _mapping(group)
        rules = fields.get("rules")
        if not isinstance(rules, yaml.SequenceNode):
            continue
        group_name = _scalar(fields.get("name")) or ""
        for rule in rules.value:
            spec = _mapping(rule)
            name = _scalar(spec.get("alert"))
            if name is None:
                continue  # a recording rule
            for_text = _scalar(spec.get("for"))
            try:
                for_seconds = parse_duration(for_text) if for_text else 0.0
            except ValueError:
                for_seconds = 0.0  # promtool reports it; a location is still worth giving
            labels = _mapping(spec.get("labels"))
            yield RuleLocation(
                name=name,
                file=path,
                line=rule.start_mark.line + 1,
                group=group_name,
                severity=_scalar(labels.get("severity")),
                for_text=for_text,
                for_seconds=for_seconds,
                expr=_scalar(spec.get("expr")) or "",
            )


def load_rule_locations(rules_dir: Path) -> dict[str, list[RuleLocation]]:
    """Alert name -> every rule of that name in ``rules_dir``'s rule files (one alert may
    have a rule per severity), in file order. A file that cannot be read or parsed is left
    out: promtool and ``tradeguard rules check`` report it, and the other files still help."""
    found: dict[str, list[RuleLocation]] = {}
    for path in sorted(rules_dir.glob(RULE_FILE_GLOB)):
        try:
            for rule in _rules_of(path):
                found.setdefault(rule.name, []).append(rule)
        except (OSError, yaml.YAMLError):
            continue
    return found


def rule_for(
    locations: Mapping[str, list[RuleLocation]], alertname: str, severity: str | None
) -> RuleLocation | None:
    """The rule that raised ``alertname`` at ``severity``: the one with that severity label
    when the alert has several, else the only one; None when the files have no such alert."""
    rules = locations.get(alertname, [])
    matching = [r for r in rules if r.severity == severity] if len(rules) > 1 else rules
    return matching[0] if matching else None
