"""Which Prometheus the alert operations ask: the one named, else the local stack's.

``--prometheus-url`` (or ``TRADEGUARD_PROMETHEUS_URL``) wins. Without it, a local stack started
by ``tradeguard up`` has written its ports to ``<run dir>/stack.json``, and its Prometheus is the
one a user on this machine means. Neither: a :class:`NoPrometheusURL` that says how to give one.

The responder sits beside the stack in the dependency order and may not import it (the stack
imports the responder's client), so the two fields read here, the file name and the default run
directory are the stack's, spelled again; ``tests/unit/test_alerts_prom_rules.py`` pins them
to ``tradeguard.stack`` so the two cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tradeguard.errors import TradeguardError
from tradeguard.net import LOOPBACK

PROMETHEUS_URL_ENV = "TRADEGUARD_PROMETHEUS_URL"
STACK_RUN_DIR = Path("run/stack")  # tradeguard.stack.DEFAULT_RUN_DIR
STACK_STATE_FILE = "stack.json"  # tradeguard.stack.layout.STATE_FILE
_PORT_FIELD = "prometheus_port"  # StackLayout.prometheus_port


class NoPrometheusURL(TradeguardError):
    """No Prometheus was named and no local stack layout says where one runs."""


@dataclass(frozen=True)
class PrometheusTarget:
    """The Prometheus to ask and where that choice came from (shown with the answer, so a
    user who meant another one sees why this one was asked)."""

    url: str
    source: str  # "--prometheus-url" or "the local stack in run/stack"


def stack_prometheus_url(run_dir: Path) -> str | None:
    """The Prometheus URL the stack layout in ``run_dir`` records, or None if there is no
    readable layout with a Prometheus port in it."""
    try:
        data = json.loads((run_dir / STACK_STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    port = data.get(_PORT_FIELD) if isinstance(data, dict) else None
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        return None
    return f"http://{LOOPBACK}:{port}"


def resolve_prometheus(given: str | None, run_dir: Path = STACK_RUN_DIR) -> PrometheusTarget:
    """``given`` (the option, or its environment variable) if set, else the local stack's."""
    if given:
        return PrometheusTarget(given, "--prometheus-url")
    found = stack_prometheus_url(run_dir)
    if found is not None:
        return PrometheusTarget(found, f"the local stack in {run_dir}")
    raise NoPrometheusURL(
        f"no Prometheus to ask: give --prometheus-url URL or set {PROMETHEUS_URL_ENV} "
        f"(no local stack layout in {run_dir / STACK_STATE_FILE}; `tradeguard up` writes one)"
    )
