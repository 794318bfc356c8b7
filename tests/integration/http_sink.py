"""A loopback HTTP server that stands in for an outside service (PagerDuty, Slack, a webhook):
it records every POST and answers with the status the test sets."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Captured:
    """One HTTP request the sink received."""

    path: str
    headers: dict[str, str]
    body: Any


class Sink:
    """Records every POST; answers ``status`` (200 unless the test changes it), or first the
    scripted ``(status, headers)`` answers of ``script``, one per request."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.status = 200
        self.script: list[tuple[int, dict[str, str]]] = []
        self.answered: list[tuple[float, int]] = []  # (monotonic time, status) per request
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.requests.append(Captured(self.path, dict(self.headers), json.loads(raw)))
                status, headers = sink.script.pop(0) if sink.script else (sink.status, {})
                sink.answered.append((time.monotonic(), status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def posted_to(self, path: str) -> list[Captured]:
        return [request for request in list(self.requests) if request.path == path]

    def start(self) -> Sink:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
