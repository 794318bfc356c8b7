"""What a running stack is doing: which children live, which targets are up, what fires,
whether the Alertmanager peers form one cluster, what the responder says about its alert path,
and which alerts went around the responder to the bypass sink."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from tradeguard.responder.client import Hints, ResponderClient, ResponderUnavailable
from tradeguard.stack.layout import StackLayout
from tradeguard.stack.processes import same_process


@dataclass
class PeerStatus:
    """One Alertmanager peer as its /api/v2/status describes it."""

    url: str
    reachable: bool = False
    cluster_status: str = ""  # ready, settling, or disabled (clustering off)
    members: int = 0  # cluster members this peer sees, itself included
    error: str = ""


@dataclass
class StackStatus:
    children: dict[str, bool] = field(default_factory=dict)  # name -> running
    targets: list[dict[str, Any]] = field(default_factory=list)
    firing: list[dict[str, Any]] = field(default_factory=list)
    prometheus_error: str = ""
    alertmanagers: dict[str, PeerStatus] = field(default_factory=dict)  # peer name -> status
    bypassed: list[dict[str, Any]] = field(default_factory=list)  # sink records, newest first
    bypass_error: str = ""
    responder: dict[str, Any] | None = None  # the responder's /healthz body
    responder_error: str = ""

    @property
    def dead(self) -> list[str]:
        return [name for name, alive in self.children.items() if not alive]

    @property
    def cluster_complete(self) -> bool:
        """Every peer answers and sees every peer: one cluster, not two lone Alertmanagers
        that would each notify (and, after a partition, never learn what the other sent)."""
        expected = len(self.alertmanagers)
        return all(p.reachable and p.members == expected for p in self.alertmanagers.values())

    @property
    def alert_path(self) -> dict[str, Any]:
        """The responder's verdict on its alert path ({} when it does not report one)."""
        path = (self.responder or {}).get("alert_path")
        return path if isinstance(path, dict) else {}

    @property
    def outbox(self) -> dict[str, Any]:
        """The responder's outbox counts ({} when it does not report them)."""
        counts = (self.responder or {}).get("outbox")
        return counts if isinstance(counts, dict) else {}


def read_alertmanager_peers(layout: StackLayout) -> dict[str, PeerStatus]:
    """Each peer's cluster view, from its own API (a dead peer is unreachable, not an error)."""
    peers = {}
    for name, url in layout.alertmanager_urls.items():
        peer = PeerStatus(url)
        try:
            cluster = httpx.get(f"{url}/api/v2/status", timeout=2).json()["cluster"]
            peer.cluster_status = str(cluster.get("status", ""))
            peer.members = len(cluster.get("peers") or [])
            peer.reachable = True
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            peer.error = f"{type(exc).__name__}: {exc}"
        peers[name] = peer
    return peers


def read_bypassed(path: Path, limit: int = 5) -> list[dict[str, Any]]:
    """The newest ``limit`` records of the bypass sink's file, newest first.

    Reads from the end, so a file that has grown for weeks costs no more than a fresh one; a
    line that does not parse (torn by a crash mid-write) is skipped.
    """
    if limit <= 0:
        return []
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start, data = size, b""
            while start > 0 and data.count(b"\n") <= limit:
                start = max(0, start - 64 * 1024)
                f.seek(start)
                data = f.read(size - start)
    except FileNotFoundError:
        return []
    lines = data.splitlines()
    if start > 0:
        lines = lines[1:]  # begins mid-line
    records: list[dict[str, Any]] = []
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
            if len(records) == limit:
                break
    return records


# How the stack's responder is fixed: its token is generated into the run directory when the
# stack starts, so a refused token means the file changed under a running responder.
STACK_RESPONDER_HINTS = Hints(
    token_label="the stack's token",
    refused="restart the stack (`tradeguard down`, then `tradeguard up`)",
    unreachable="is it running? (`tradeguard status`)",
)


def responder_client(
    layout: StackLayout,
    token: str | None = None,
    timeout: float = 3.0,
    hints: Hints = STACK_RESPONDER_HINTS,
) -> ResponderClient:
    """A client for the stack's responder, whose failures name the stack's token file and
    say how to fix the stack. ``token`` (``render.ensure_token(layout)``) is needed for every
    read but ``/healthz``."""
    return ResponderClient(
        layout.responder_url, token, token_file=layout.token_file, timeout=timeout, hints=hints
    )


def read_responder_health(layout: StackLayout) -> dict[str, Any]:
    """The responder's /healthz body (it needs no token); a 503 still carries its reason.
    ResponderUnavailable when it cannot be read (its hint does not send the reader of
    ``tradeguard status`` back to ``tradeguard status``)."""
    hints = replace(STACK_RESPONDER_HINTS, unreachable="is its process running?")
    with responder_client(layout, timeout=2, hints=hints) as client:
        return client.healthz()


def read_stack_status(layout: StackLayout, bypassed: int = 5) -> StackStatus:
    """Everything ``tradeguard status`` shows; ``bypassed`` is how many sink records to read."""
    status = StackStatus(
        {name: same_process(pid, layout.started.get(name)) for name, pid in layout.pids.items()}
    )
    status.alertmanagers = read_alertmanager_peers(layout)
    try:
        status.bypassed = read_bypassed(layout.bypass_sink_file, bypassed)
    except OSError as exc:
        status.bypass_error = f"cannot read {layout.bypass_sink_file}: {exc}"
    try:
        status.responder = read_responder_health(layout)
    except ResponderUnavailable as exc:
        status.responder_error = f"responder /healthz: {exc}"
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
