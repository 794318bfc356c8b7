"""A loopback HTTP server that stands in for an outside service (PagerDuty, Slack, a webhook):
it records every POST and answers with the status the test sets."""

from __future__ import annotations

import json
import threading
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
    """Records every POST; answers ``status`` (200 unless the test changes it)."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.status = 200
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.requests.append(Captured(self.path, dict(self.headers), json.loads(raw)))
                self.send_response(sink.status)
                self.send_header("Content-Type", "application/json")
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
