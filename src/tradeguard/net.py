"""The loopback address and the HTTP readiness check, defined once.

Everything tradeguard starts for itself (Redis, exporters, Prometheus, Alertmanager, the
responder, the engines' /metrics) listens on the loopback address only, and a service counts as
ready when an HTTP GET of its health URL answers 200 within half a second.
"""

from __future__ import annotations

import httpx

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_SECONDS = 0.5


def http_ok(url: str, timeout: float = READY_TIMEOUT_SECONDS) -> bool:
    """``url`` answers 200 now (False for any other status, a timeout or a refused connection)."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
