"""Alertmanager time intervals as AlertmanagerConfig's ``muteTimeIntervals``.

Routes name an interval both to mute and to activate themselves, and the CRD keeps all of them
in one list whatever the use. A time zone (``location``) cannot be carried: the CRD has no field
for it and evaluates intervals in UTC, so a translated interval would fire at other hours;
that stops the export rather than shifting anyone's quiet hours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradeguard.k8sexport.errors import ExportError
from tradeguard.k8sexport.fields import as_str, reject_unknown

INTERVAL_FIELDS = frozenset({"times", "weekdays", "days_of_month", "months", "years"})


def _day_range(value: Any, where: str) -> dict[str, int]:
    """``"1:5"``, ``"-3:-1"`` or ``"7"`` as ``{start, end}``."""
    text = str(value)
    first, _, last = text.partition(":")
    try:
        start = int(first)
        end = int(last) if last else start
    except ValueError:
        raise ExportError(f"{where}: {text!r} is not a day of month or a range of them") from None
    return {"start": start, "end": end}


def _interval(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise ExportError(f"{where}: must be a map")
    if "location" in item:
        raise ExportError(
            f"{where}.location: AlertmanagerConfig time intervals have no time zone; they are "
            "evaluated in UTC, so translating would shift the interval"
        )
    reject_unknown(item, INTERVAL_FIELDS, where)
    out: dict[str, Any] = {}
    if "times" in item:
        times = item["times"]
        if not isinstance(times, list):
            raise ExportError(f"{where}.times: must be a list")
        out["times"] = []
        for n, span in enumerate(times):
            span_where = f"{where}.times[{n}]"
            if not isinstance(span, Mapping) or set(span) != {"start_time", "end_time"}:
                raise ExportError(f"{span_where}: wants start_time and end_time")
            out["times"].append(
                {
                    "startTime": as_str(span["start_time"], f"{span_where}.start_time"),
                    "endTime": as_str(span["end_time"], f"{span_where}.end_time"),
                }
            )
    for key in ("weekdays", "months", "years"):
        if key in item:
            values = item[key]
            if not isinstance(values, list):
                raise ExportError(f"{where}.{key}: must be a list")
            out[key] = [str(v) for v in values]  # go-yaml reads `1` as "1" here too
    if "days_of_month" in item:
        days = item["days_of_month"]
        if not isinstance(days, list):
            raise ExportError(f"{where}.days_of_month: must be a list")
        out["daysOfMonth"] = [
            _day_range(d, f"{where}.days_of_month[{n}]") for n, d in enumerate(days)
        ]
    return out


def time_intervals(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``time_intervals`` and the older ``mute_time_intervals``, both as the CRD's
    ``muteTimeIntervals`` (routes name them for muting and for activating alike)."""
    out: list[dict[str, Any]] = []
    for key in ("time_intervals", "mute_time_intervals"):
        items = config.get(key) or []
        if not isinstance(items, list):
            raise ExportError(f"{key}: must be a list")
        for n, item in enumerate(items):
            where = f"{key}[{n}]"
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise ExportError(f"{where}: wants a name")
            reject_unknown(item, frozenset({"name", "time_intervals"}), where)
            spans = item.get("time_intervals") or []
            if not isinstance(spans, list):
                raise ExportError(f"{where}.time_intervals: must be a list")
            out.append(
                {
                    "name": item["name"],
                    "timeIntervals": [
                        _interval(s, f"{where}.time_intervals[{i}]") for i, s in enumerate(spans)
                    ],
                }
            )
    return out
