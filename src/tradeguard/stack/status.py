"""What a running stack is doing: which children live, which targets are up, what fires."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import httpx

from tradeguard.stack.layout import StackLayout


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); read its state to tell.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class StackStatus:
    children: dict[str, bool] = field(default_factory=dict)  # name -> running
    targets: list[dict[str, Any]] = field(default_factory=list)
    firing: list[dict[str, Any]] = field(default_factory=list)
    prometheus_error: str = ""

    @property
    def dead(self) -> list[str]:
        return [name for name, alive in self.children.items() if not alive]


def read_stack_status(layout: StackLayout) -> StackStatus:
    status = StackStatus({name: pid_alive(pid) for name, pid in layout.pids.items()})
    try:
        targets = httpx.get(f"{layout.prometheus_url}/api/v1/targets", timeout=2).json()
        status.targets = [
            {
                "job": t["labels"].get("job"),
                "instance": t["labels"].get("instance"),
                "health": t.get("health"),
                "error": t.get("lastError", ""),
            }
            for t in targets["data"]["activeTargets"]
        ]
        alerts = httpx.get(f"{layout.prometheus_url}/api/v1/alerts", timeout=2).json()
        status.firing = [a for a in alerts["data"]["alerts"] if a.get("state") == "firing"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        status.prometheus_error = f"Prometheus unreachable: {exc}"
    return status
