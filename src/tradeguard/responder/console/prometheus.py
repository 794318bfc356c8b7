"""The console's reads of Prometheus' query API: instant vectors and range matrices.

The HA and trade-path pages show what Prometheus already holds (every replica's heartbeat,
signal rates, latency quantiles) instead of a second set of numbers from the processes: the
console then shows what the alerts see. Every failure (no URL configured, unreachable, an
error answer, a reply of the wrong shape) is one
:class:`~tradeguard.responder.prometheus_api.PrometheusUnavailable` whose message a page can
show as it is; asking is :mod:`tradeguard.responder.prometheus_api`'s, as for the commands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tradeguard.responder.prometheus_api import (
    DEFAULT_TIMEOUT,
    PrometheusAPI,
    PrometheusUnavailable,
)


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix time, value), NaN points left out


class PrometheusReader:
    def __init__(self, base_url: str | None, timeout: float = DEFAULT_TIMEOUT) -> None:
        hint = "is it running, and is TRADEGUARD_RESPONDER_PROMETHEUS_URL right?"
        self.api = PrometheusAPI(base_url, timeout, hint) if base_url else None

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        if self.api is None:
            raise PrometheusUnavailable(
                "no Prometheus is configured for the console (TRADEGUARD_RESPONDER_PROMETHEUS_URL)"
            )
        doc = await self.api.get_async(path, params)
        if not isinstance(doc, dict) or doc.get("status") != "success":
            error = doc.get("error") if isinstance(doc, dict) else None
            raise PrometheusUnavailable(
                f"{self.api.who} refused the query: {error or 'no success status'}"
            )
        data = doc.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            raise PrometheusUnavailable(f"{self.api.who} answered an odd shape")
        return data

    async def instant(self, expr: str) -> list[Sample]:
        """The instant vector ``expr`` evaluates to now."""
        data = await self._get("/api/v1/query", {"query": expr})
        if data.get("resultType") not in ("vector", "scalar"):
            raise PrometheusUnavailable(f"{expr!r} is not an instant vector")
        if data["resultType"] == "scalar":
            return [Sample({}, _number(data["result"][1]))]
        out = []
        for item in data["result"]:
            try:
                out.append(Sample(dict(item["metric"]), _number(item["value"][1])))
            except (KeyError, IndexError, TypeError):
                raise PrometheusUnavailable("Prometheus answered an odd vector") from None
        return out

    async def series(self, expr: str, start: datetime, end: datetime, step: float) -> list[Series]:
        """The range matrix of ``expr`` over ``[start, end]`` every ``step`` seconds."""
        params = {
            "query": expr,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{max(step, 1.0):g}",
        }
        data = await self._get("/api/v1/query_range", params)
        if data.get("resultType") != "matrix":
            raise PrometheusUnavailable(f"{expr!r} is not a range vector")
        out = []
        for item in data["result"]:
            try:
                points = [(float(t), _number(v)) for t, v in item["values"]]
            except (KeyError, TypeError, ValueError):
                raise PrometheusUnavailable("Prometheus answered an odd matrix") from None
            out.append(Series(dict(item["metric"]), [p for p in points if not math.isnan(p[1])]))
        return out


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise PrometheusUnavailable(
            f"Prometheus answered a value that is no number: {text!r}"
        ) from None
