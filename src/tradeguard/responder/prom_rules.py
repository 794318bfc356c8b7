"""Prometheus' own view of the rules (``GET /api/v1/rules``), read and shaped for the daily and
weekly alert operations (``tradeguard alerts status|performance|summary``).

The rule files say what should be evaluated; only Prometheus knows whether it is: a rule whose
expression fails at run time (many-to-many matching, a missing function) loads fine, passes
promtool and then never fires. So these commands ask the running server, and trust nothing of
its answer: a 500, a body that is not JSON or JSON of another shape (a proxy's error page, the
wrong port) becomes :class:`PrometheusUnavailable` with one line saying which, never a
traceback or a table of empty rows.

The shaping is pure (:func:`parse_rule_groups`, :func:`health_first`, :func:`slowest_groups`,
...), so it is tested on hand-written answers; :func:`fetch_rule_groups` is the one place
that talks HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tradeguard.errors import TradeguardError
from tradeguard.responder.prometheus_api import (
    DEFAULT_TIMEOUT,
    PrometheusAPI,
    PrometheusUnavailable,
    one_line,
)

RULES_PATH = "/api/v1/rules"
# A group is flagged when one evaluation takes more than this share of its interval: past it,
# a slow TSDB or a heavier query soon makes evaluations overrun and Prometheus skips them.
DEFAULT_SLOW_SHARE = 0.10
HEALTH_ORDER = {"err": 0, "unknown": 1, "ok": 2}  # what needs a look first


class RulesShapeError(TradeguardError):
    """A rules answer that is JSON but not of the rules API's shape; the message names the
    first field that is wrong (``data.groups[3].rules[0].health: missing``)."""


@dataclass(frozen=True)
class ActiveAlert:
    """One alert a rule holds now (pending or firing), with its labels."""

    labels: Mapping[str, str]
    state: str
    active_at: datetime | None


@dataclass(frozen=True)
class Rule:
    """One rule as Prometheus last evaluated it."""

    group: str
    file: str
    name: str
    kind: str  # "alerting" or "recording"
    health: str  # "ok", "err" or "unknown" (not evaluated yet)
    state: str  # "inactive", "pending" or "firing"; "" for a recording rule
    last_evaluation: datetime | None  # None: never evaluated
    evaluation_seconds: float
    last_error: str
    for_seconds: float
    labels: Mapping[str, str]
    alerts: tuple[ActiveAlert, ...]

    @property
    def alerting(self) -> bool:
        return self.kind == "alerting"


@dataclass(frozen=True)
class RuleGroup:
    """One rule group: its interval and how long its last evaluation took."""

    name: str
    file: str
    interval_seconds: float
    evaluation_seconds: float
    last_evaluation: datetime | None
    rules: tuple[Rule, ...]

    @property
    def share(self) -> float | None:
        """The part of the interval one evaluation takes (None without an interval)."""
        if self.interval_seconds <= 0:
            return None
        return self.evaluation_seconds / self.interval_seconds


# ---- reading the answer --------------------------------------------------------------------
def _get(obj: Mapping[str, Any], key: str, kinds: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise RulesShapeError(f"{where}.{key}: missing")
    value = obj[key]
    # bool is an int to Python, but a number field holding true is not a number
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
        raise RulesShapeError(f"{where}.{key}: expected {_names(kinds)}, got {_kind(value)}")
    return value


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _names(kinds: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in _tuple(kinds)))


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _number(obj: Mapping[str, Any], key: str, where: str) -> float:
    """An optional number (an evaluation time, a ``for``): 0 when absent or null."""
    value = obj.get(key)
    if value is None:
        return 0.0
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RulesShapeError(f"{where}.{key}: expected a number, got {_kind(value)}")
    return float(value)


def _optional_time(obj: Mapping[str, Any], key: str, where: str) -> datetime | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RulesShapeError(f"{where}.{key}: expected a string, got {_kind(value)}")
    return _time(value, f"{where}.{key}")


def _time(text: str, where: str) -> datetime | None:
    """An RFC 3339 time; None for Go's zero time, which Prometheus gives for 'never'."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RulesShapeError(f"{where}: not a time: {text[:40]!r}") from None
    return None if moment.year <= 1 else moment


def _strings(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RulesShapeError(f"{where}: expected an object, got {_kind(value)}")
    return {str(k): str(v) for k, v in value.items()}


def _alerts(rule: Mapping[str, Any], where: str) -> tuple[ActiveAlert, ...]:
    alerts = rule.get("alerts")
    if alerts is None:
        return ()
    if not isinstance(alerts, list):
        raise RulesShapeError(f"{where}.alerts: expected a list, got {_kind(alerts)}")
    found = []
    for i, alert in enumerate(alerts):
        at = f"{where}.alerts[{i}]"
        if not isinstance(alert, dict):
            raise RulesShapeError(f"{at}: expected an object, got {_kind(alert)}")
        found.append(
            ActiveAlert(
                labels=_strings(alert.get("labels"), f"{at}.labels"),
                state=str(_get(alert, "state", str, at)),
                active_at=_optional_time(alert, "activeAt", at),
            )
        )
    return tuple(found)


def _rule(raw: object, group: str, file: str, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise RulesShapeError(f"{where}: expected an object, got {_kind(raw)}")
    kind = _get(raw, "type", str, where)
    alerting = kind == "alerting"
    error = raw.get("lastError")
    if error is not None and not isinstance(error, str):
        raise RulesShapeError(f"{where}.lastError: expected a string, got {_kind(error)}")
    return Rule(
        group=group,
        file=file,
        name=_get(raw, "name", str, where),
        kind=kind,
        health=_get(raw, "health", str, where),
        state=_get(raw, "state", str, where) if alerting else "",
        last_evaluation=_optional_time(raw, "lastEvaluation", where),
        evaluation_seconds=_number(raw, "evaluationTime", where),
        last_error=one_line(error or ""),
        for_seconds=_number(raw, "duration", where) if alerting else 0.0,
        labels=_strings(raw.get("labels"), f"{where}.labels"),
        alerts=_alerts(raw, where) if alerting else (),
    )


def parse_rule_groups(body: object) -> list[RuleGroup]:
    """The groups of a ``/api/v1/rules`` answer, in Prometheus' order.

    Raises :class:`RulesShapeError` for anything else, including Prometheus' own error answer
    (``{"status": "error", "error": ...}``), whose message it carries.
    """
    if not isinstance(body, dict):
        raise RulesShapeError(f"expected a JSON object, got {_kind(body)}")
    status = _get(body, "status", str, "answer")
    if status != "success":
        detail = body.get("error")
        raise RulesShapeError(
            f"status {status!r}" + (f": {one_line(str(detail))}" if detail else "")
        )
    data = _get(body, "data", dict, "answer")
    groups = []
    for i, raw in enumerate(_get(data, "groups", list, "data")):
        where = f"data.groups[{i}]"
        if not isinstance(raw, dict):
            raise RulesShapeError(f"{where}: expected an object, got {_kind(raw)}")
        name = _get(raw, "name", str, where)
        file = _get(raw, "file", str, where)
        rules = _get(raw, "rules", list, where)
        groups.append(
            RuleGroup(
                name=name,
                file=file,
                interval_seconds=float(_get(raw, "interval", (int, float), where)),
                evaluation_seconds=_number(raw, "evaluationTime", where),
                last_evaluation=_optional_time(raw, "lastEvaluation", where),
                rules=tuple(
                    _rule(r, name, file, f"{where}.rules[{j}]") for j, r in enumerate(rules)
                ),
            )
        )
    return groups


# ---- asking Prometheus ---------------------------------------------------------------------
def fetch_rule_groups(base_url: str, timeout: float = DEFAULT_TIMEOUT) -> list[RuleGroup]:
    """Every rule group Prometheus at ``base_url`` evaluates; :class:`PrometheusUnavailable`
    (one line) when it cannot be asked or answers anything but the rules API's JSON."""
    api = PrometheusAPI(base_url, timeout, "is it running, and is --prometheus-url right?")
    body = api.get(RULES_PATH)
    try:
        return parse_rule_groups(body)
    except RulesShapeError as exc:
        raise PrometheusUnavailable(
            f"{api.who} answered something other than the rules API ({RULES_PATH}): {exc}"
        ) from None


# ---- shaping -------------------------------------------------------------------------------
def alerting_rules(groups: Iterable[RuleGroup]) -> list[Rule]:
    """Every alerting rule, in Prometheus' order."""
    return [rule for group in groups for rule in group.rules if rule.alerting]


def health_first(groups: Iterable[RuleGroup]) -> list[Rule]:
    """The rules ``alerts status`` lists: every alerting rule, and a recording rule only when
    it is not healthy (an alert built on its series is blind while it fails). Rules in error
    first, then those not evaluated yet, then the healthy ones; within each, firing before
    pending before inactive, then Prometheus' own order."""
    state_order = {"firing": 0, "pending": 1}
    rules = [
        rule for group in groups for rule in group.rules if rule.alerting or rule.health != "ok"
    ]
    order = {id(rule): i for i, rule in enumerate(rules)}
    return sorted(
        rules,
        key=lambda r: (HEALTH_ORDER.get(r.health, 0), state_order.get(r.state, 2), order[id(r)]),
    )


def unhealthy(rules: Iterable[Rule]) -> list[Rule]:
    return [rule for rule in rules if rule.health != "ok"]


def slowest_groups(groups: Sequence[RuleGroup], top: int) -> list[RuleGroup]:
    """The ``top`` groups whose last evaluation took the longest share of their interval
    (evaluation time first where there is no interval), slowest first."""
    return sorted(
        groups,
        key=lambda g: (g.share if g.share is not None else 0.0, g.evaluation_seconds),
        reverse=True,
    )[:top]


def slowest_rules(groups: Iterable[RuleGroup], top: int) -> list[Rule]:
    """The ``top`` rules whose last evaluation took the longest, slowest first."""
    rules = [rule for group in groups for rule in group.rules]
    return sorted(rules, key=lambda r: r.evaluation_seconds, reverse=True)[:top]


def over_share(groups: Iterable[RuleGroup], share: float) -> list[RuleGroup]:
    """The groups whose last evaluation took more than ``share`` of their interval."""
    return [g for g in groups if g.share is not None and g.share > share]
