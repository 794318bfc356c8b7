"""A webhook sink for the alerts that must not depend on the responder.

Alerts about the responder itself (``component="meta", service="responder"``) go to the
``responder-bypass`` receiver: a responder that is down, stuck or losing its outbox cannot be
trusted to report that about itself. In production that receiver reaches people directly; in
the local stack it posts here, and ``tradeguard status`` reads what arrived.

Deliberately small and independent of the responder's code (standard library only): whatever
breaks the responder must not break this. Each alert of an Alertmanager webhook POST becomes one
JSON line in the output file, written and fsynced before the 200, so an alert Alertmanager
considers delivered is on disk. Bad input is answered with a 4xx, never a crash.

    python -m tradeguard.stack.bypass_sink --port 9467 --out run/bypass.jsonl --token-file tok
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WEBHOOK_PATH = "/alertmanager/webhook"  # what the local stack renders, as for the responder
# Also taken: the path deploy/alertmanager/alertmanager.yml's example bypass webhook posts to.
WEBHOOK_PATHS = (WEBHOOK_PATH, "/alerts")
HEALTH_PATH = "/healthz"
DEFAULT_MAX_BODY = 1024 * 1024
ALERT_STATUSES = ("firing", "resolved")


class BadPayload(ValueError):
    """The body is not an Alertmanager webhook payload; the message says what is wrong."""


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadPayload(f"{what} must be an object of strings")
    return value


def alert_lines(payload: Any, received_at: str) -> list[dict[str, Any]]:
    """One record per alert of an Alertmanager webhook payload (version 4), validated first.

    The whole payload is checked before anything is written: a half-stored batch would be
    retried by Alertmanager and stored twice.
    """
    if not isinstance(payload, dict):
        raise BadPayload("the body must be a JSON object")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise BadPayload("`alerts` must be a list")
    receiver = payload.get("receiver", "")
    if not isinstance(receiver, str):
        raise BadPayload("`receiver` must be a string")
    records = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise BadPayload(f"alerts[{i}] must be an object")
        status = alert.get("status")
        if status not in ALERT_STATUSES:
            raise BadPayload(f"alerts[{i}].status must be one of {ALERT_STATUSES}")
        labels = _str_map(alert.get("labels"), f"alerts[{i}].labels")
        times = {key: alert.get(key) for key in ("startsAt", "endsAt")}
        if any(value is not None and not isinstance(value, str) for value in times.values()):
            raise BadPayload(f"alerts[{i}].startsAt/endsAt must be strings")
        records.append(
            {
                "received_at": received_at,
                "receiver": receiver,
                "status": status,
                "alertname": labels.get("alertname", ""),
                "labels": labels,
                "annotations": _str_map(alert.get("annotations"), f"alerts[{i}].annotations"),
                **times,
            }
        )
    return records


class AlertFile:
    """Appends JSON lines durably; one writer at a time, so lines never interleave."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
        with self._lock:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:  # the new directory entry must survive a crash too
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)


class SinkServer(ThreadingHTTPServer):
    """The HTTP server, carrying what every request handler needs."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        out: AlertFile,
        token: str | None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        super().__init__(address, SinkHandler)
        self.out = out
        self.token = token
        self.max_body = max_body


class SinkHandler(BaseHTTPRequestHandler):
    """GET /healthz and POST /alertmanager/webhook; everything else is a 4xx."""

    server: SinkServer
    timeout = 10  # a client that stops sending mid-request must not hold a thread for ever
    protocol_version = "HTTP/1.1"

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: HTTPStatus, reason: str) -> None:
        # The request body may be unread: close rather than parse leftovers as a next request.
        self.close_connection = True
        self._reply(status, {"status": "error", "error": reason})

    def do_GET(self) -> None:
        if self.path != HEALTH_PATH:
            self._refuse(HTTPStatus.NOT_FOUND, f"no such path; POST {WEBHOOK_PATH}")
            return
        self._reply(HTTPStatus.OK, {"status": "ok"})

    def do_POST(self) -> None:
        if self.path not in WEBHOOK_PATHS:
            self._refuse(HTTPStatus.NOT_FOUND, f"no such path; POST {WEBHOOK_PATH}")
            return
        if not self._authorised():
            self._refuse(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
            return
        try:
            length = int(length_header)
        except ValueError:
            self._refuse(HTTPStatus.BAD_REQUEST, "Content-Length is not a number")
            return
        if length < 0 or length > self.server.max_body:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
            return
        try:
            payload = json.loads(self.rfile.read(length))
            records = alert_lines(payload, datetime.now(UTC).isoformat())
        except (ValueError, RecursionError) as exc:  # bad JSON (or nested past the parser's
            # depth), bad UTF-8, or not an Alertmanager payload (BadPayload)
            self._refuse(HTTPStatus.BAD_REQUEST, str(exc)[:200])
            return
        try:
            self.server.out.append(records)
        except OSError as exc:  # a 5xx makes Alertmanager retry, which is what we want
            self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot store: {exc}")
            return
        self._reply(HTTPStatus.OK, {"status": "ok", "stored": len(records)})

    def _other_method(self) -> None:
        self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "only GET /healthz and POST the webhook")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other_method

    def do_HEAD(self) -> None:
        """A probe's HEAD /healthz: the GET's status without its body."""
        if self.path != HEALTH_PATH:
            self._other_method()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _authorised(self) -> bool:
        if self.server.token is None:
            return True
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.server.token.encode()
        )

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tradeguard.stack.bypass_sink",
        description=(
            "Receive Alertmanager webhook posts for the alerts that route around the responder "
            f"(receiver responder-bypass). POST {WEBHOOK_PATH} (or /alerts) appends one JSON "
            "line per alert (received_at, receiver, status, alertname, labels, annotations, "
            f"startsAt, endsAt) to --out, fsynced before the reply; GET {HEALTH_PATH} answers "
            "200 while it runs. Bad input gets a 4xx and stores nothing."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file to append to")
    parser.add_argument(
        "--token-file",
        type=Path,
        help="file holding the bearer token every POST must carry; without it, no check",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY,
        help=f"larger bodies are refused with 413 (default {DEFAULT_MAX_BODY})",
    )
    args = parser.parse_args(argv)
    if args.token_file is not None:
        try:
            args.token = args.token_file.read_text().strip()
        except OSError as exc:
            parser.error(f"cannot read --token-file: {exc}")
        if not args.token:
            parser.error(f"--token-file {args.token_file} is empty")
    else:
        args.token = None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = SinkServer(
            (args.host, args.port), AlertFile(args.out), args.token, args.max_body_bytes
        )
    except OSError as exc:
        print(f"bypass sink: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"bypass sink on http://{args.host}:{args.port}{WEBHOOK_PATH} -> {args.out}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
