"""The per-process HTTP endpoint: ``/metrics`` plus optional JSON routes.

A small threaded WSGI server from the standard library: scrapes are rare (one a second) and a
full web framework would add start-up time and dependencies to every process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry

from tradeguard.metrics.exposition import CONTENT_TYPE, TextRenderer
from tradeguard.net import LOOPBACK

JsonRoute = Callable[[], Any]
Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class MetricsServer:
    """Serves ``/metrics`` from ``registry`` and each ``json_routes`` path as JSON."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str = LOOPBACK,
        port: int = 0,
        json_routes: dict[str, JsonRoute] | None = None,
        health: Callable[[], str | None] | None = None,
    ) -> None:
        """``health`` returns what is wrong with the process, or None; ``/healthz`` answers
        503 with it."""
        self._registry = registry
        self._health = health or (lambda: None)
        self._renderer = TextRenderer()
        self._routes = dict(json_routes or {})
        self._server = make_server(
            host, port, self._app, _ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.host = host
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def add_route(self, path: str, handler: JsonRoute) -> None:
        self._routes[path] = handler

    def _app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in self._routes:
            try:
                body = json.dumps(self._routes[path](), default=str).encode()
                status = "200 OK"
            except Exception as exc:  # a failing route must not take the endpoint down
                body = json.dumps({"error": str(exc)}).encode()
                status = "500 Internal Server Error"
            start_response(
                status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        if path in ("/metrics", "/"):
            body = self._renderer.render(self._registry)
            start_response(
                "200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
            )
            return [body]
        if path == "/healthz":
            problem = self._health()
            start_response(
                "503 Service Unavailable" if problem else "200 OK",
                [("Content-Type", "text/plain")],
            )
            return [f"{problem}\n".encode() if problem else b"ok\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
