"""The responder's HTTP surface: the Alertmanager webhook, the history API, acknowledgements,
the effectiveness report, the remediation audit, health and metrics.

``POST /alertmanager/webhook`` checks, in order and before storing anything: credentials
(401), content type (415), size by ``Content-Length`` and then by the bytes actually read (413),
JSON (400) and the version-4 schema (422). Only a payload that passes all of them reaches the
intake, which stores its events in one transaction, so a rejected delivery leaves no trace in
history. ``POST /api/alerts/ack`` makes the same checks with its own, smaller size limit. The
size limits hold while the body streams in (chunked bodies included), so no request makes the
responder buffer more than its limit. Query strings are parsed strictly: an unknown or repeated
parameter, or a value that is not plain ASCII digits where a number is expected, is a 400
rather than silently ignored or half-understood.

Every client error is a 4xx with a JSON ``{"error": ...}`` body (webhook rejections also get a
log line); a failing history store is a 503, which makes Alertmanager retry the delivery, and
says nothing of where the store is (no paths, hosts or users: the logs have those).

Blocking work (SQL, fsync) runs in the thread pool so one slow store does not stall the event
loop that serves health checks and scrapes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.exposition import CONTENT_TYPE, TextRenderer
from tradeguard.metrics.vocabulary import REMEDIATION_AUDIT_ACTIONS
from tradeguard.responder.acks import AckRequest, store_ack
from tradeguard.responder.auth import Authenticator
from tradeguard.responder.channels import Channel
from tradeguard.responder.console.effectiveness_view import report_file
from tradeguard.responder.console.prometheus import PrometheusReader
from tradeguard.responder.console.routes import Console
from tradeguard.responder.console.runbooks import RunbookLibrary, default_runbooks_dir
from tradeguard.responder.console.session import SessionKeeper
from tradeguard.responder.history.actions import ACTION_OUTCOMES, ActionOutcome, check_outcome
from tradeguard.responder.history.base import (
    MAX_HISTORY_LIMIT,
    AlertHistory,
    HistoryError,
    Occurrence,
)
from tradeguard.responder.outbox import OUTBOX_STATES, OutboxState
from tradeguard.responder.payload import PayloadJSONError, PayloadValidationError, parse_payload
from tradeguard.responder.report import EffectivenessReport, effectiveness
from tradeguard.responder.roster import RosterSource
from tradeguard.responder.runtime import ResponderRuntime
from tradeguard.responder.settings import ResponderSettings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/alertmanager/webhook"
DEFAULT_HISTORY_LIMIT = 50
# Past the size limit the rest of the body is read and discarded (up to this many times the
# limit) before answering 413: closing a socket with unread data makes the kernel send a reset,
# and the sender would see "connection reset" instead of the 413 that explains the problem.
# Only authenticated senders get this far.
DRAIN_FACTOR = 16
ACK_MAX_BYTES = 4096
DEFAULT_REPORT_DAYS = 7
MAX_REPORT_DAYS = 90
# Numbers in query strings and headers: ASCII digits only (str.isdigit() also takes "³" and
# Arabic-Indic digits, which int() then refuses or reads), and short enough to be cheap.
_DIGITS = re.compile(r"[0-9]{1,9}")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
MAX_ALERTNAME_PARAM = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHOWN_NAME = 40  # an unknown parameter's name is echoed at most this long


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """The JSON body of every error the responder returns."""
    headers = extra.pop("headers", None)
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _bad_query(message: str) -> HTTPException:
    """A 400 for a query string (rendered as JSON by ``_http_error``)."""
    return HTTPException(400, message)


def query_params(
    request: Request, single: Collection[str] = (), multi: Collection[str] = ()
) -> dict[str, list[str]]:
    """The query parameters, each name once unless it is in ``multi``; 400 for any other name.

    A misspelt parameter (``limt=5``) silently ignored would answer a question nobody asked,
    and a repeated one (``limit=5&limit=500``) is ambiguous: different parsers take the first or
    the last. Both are refused with the offending names.
    """
    found: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        found.setdefault(name, []).append(value)
    unknown = sorted(n for n in found if n not in single and n not in multi)
    if unknown:
        shown = ", ".join(repr(n[:_SHOWN_NAME]) for n in unknown[:10])
        allowed = ", ".join(sorted([*single, *multi])) or "none"
        raise _bad_query(f"unknown query parameter(s) {shown}; allowed: {allowed}")
    repeated = sorted(n for n, values in found.items() if n in single and len(values) > 1)
    if repeated:
        raise _bad_query(f"query parameter(s) given more than once: {', '.join(repeated)}")
    return found


def int_param(params: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    """``params[name]`` as an integer in ``[low, high]`` written in plain ASCII digits."""
    raw = params.get(name, [str(default)])[0]
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise _bad_query(f"{name} must be an integer from {low} to {high}")
    return int(raw)


def alertname_param(params: dict[str, list[str]]) -> str | None:
    """The ``alertname`` filter (empty: none), at most MAX_ALERTNAME_PARAM characters."""
    value = params.get("alertname", [""])[0]
    if len(value) > MAX_ALERTNAME_PARAM:
        raise _bad_query(f"alertname must be at most {MAX_ALERTNAME_PARAM} characters")
    if _CONTROL.search(value):
        raise _bad_query("alertname must not contain control characters")
    return value or None


def choice_param(params: dict[str, list[str]], name: str, choices: Sequence[str]) -> str | None:
    """``params[name]`` if given (None if not), which must be one of ``choices``; the value is
    not echoed (it may be anything, of any length)."""
    values = params.get(name)
    if values is None:
        return None
    if values[0] not in choices:
        raise _bad_query(f"{name} must be one of {', '.join(choices)}")
    return values[0]


class RequestMetrics:
    """Counts every HTTP request by status class and observes its duration (pure ASGI)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._requests = {c: metrics.http_requests.labels(c) for c in ("2xx", "3xx", "4xx", "5xx")}
        self._duration = metrics.http_duration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app raises before answering, the server answers 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            code_class = f"{status // 100}xx" if 200 <= status < 600 else "5xx"
            self._requests[code_class].inc()
            self._duration.observe(time.perf_counter() - start)


class _Endpoints:
    """The route handlers, bound to one set of collaborators."""

    def __init__(
        self,
        settings: ResponderSettings,
        auth: Authenticator,
        history: AlertHistory,
        runtime: ResponderRuntime,
        metrics: Metrics,
        roster: RosterSource,
    ) -> None:
        self.max_body = settings.max_body_bytes
        self.roster = roster
        self.auth = auth
        self.history = history
        self.runtime = runtime
        self.intake = runtime.intake
        self.metrics = metrics
        self.renderer = TextRenderer()
        self._webhooks = {
            s: metrics.responder_webhooks.labels(s) for s in ("accepted", "duplicate", "rejected")
        }

    # ---- helpers ---------------------------------------------------------------------------
    def _unauthorized(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization")
        if self.auth.check(header):
            return None
        given = "wrong" if header else "missing"
        return error(
            401,
            f"{given} credentials: send the responder's bearer token or basic auth",
            headers={"WWW-Authenticate": self.auth.challenge} if self.auth.enabled else None,
        )

    def _reject(self, request: Request, response: JSONResponse) -> JSONResponse:
        self._webhooks["rejected"].inc()
        client = request.client.host if request.client else "?"
        log.warning(
            "webhook from %s rejected with %d: %s",
            client,
            response.status_code,
            bytes(response.body).decode(errors="replace"),
        )
        return response

    @staticmethod
    async def _drain(chunks: AsyncIterator[bytes], already: int, limit: int) -> None:
        """Read and discard the rest of the body, up to DRAIN_FACTOR times ``limit``.

        ``chunks`` is the body's one stream, possibly half read: Starlette's
        ``request.stream()`` cannot be started twice once the last chunk has arrived.
        """
        budget = limit * DRAIN_FACTOR - already
        try:
            async for chunk in chunks:
                budget -= len(chunk)
                if budget < 0:
                    return
        except ClientDisconnect:
            return

    async def _read_body(self, request: Request, limit: int) -> bytes | None:
        """The body, or None (after draining) as soon as it exceeds ``limit``: counted as it
        streams in, so a chunked body (no Content-Length) is cut off at the limit too."""
        chunks: list[bytes] = []
        size = 0
        stream = request.stream()
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                await self._drain(stream, size, limit)
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _too_big(limit: int) -> JSONResponse:
        return error(413, f"body larger than the limit of {limit} bytes")

    @staticmethod
    def _not_json(request: Request) -> JSONResponse | None:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "application/json":
            return None
        shown = media_type[:_SHOWN_NAME] or "none"
        return error(415, f"content type must be application/json, got {shown!r}")

    async def _body(self, request: Request, limit: int) -> bytes | JSONResponse:
        """The body within ``limit``, or the 400/413 that refuses it (the declared length is
        checked first, so an honest sender of a huge body is told before it sends it all)."""
        declared = request.headers.get("content-length")
        if declared is not None:
            if not _CONTENT_LENGTH.fullmatch(declared):
                return error(400, "invalid Content-Length header")
            if int(declared) > limit:
                await self._drain(request.stream(), 0, limit)
                return self._too_big(limit)
        try:
            body = await self._read_body(request, limit)
        except ClientDisconnect:
            return error(400, "client disconnected before the body ended")
        if body is None:
            return self._too_big(limit)
        return body

    # ---- routes ----------------------------------------------------------------------------
    async def webhook(self, request: Request) -> Response:
        denied = self._unauthorized(request)
        if denied is not None:
            return self._reject(request, denied)
        wrong_type = self._not_json(request)
        if wrong_type is not None:
            return self._reject(request, wrong_type)
        body = await self._body(request, self.max_body)
        if isinstance(body, JSONResponse):
            return self._reject(request, body)
        try:
            payload = parse_payload(body)
        except PayloadJSONError as exc:
            return self._reject(request, error(400, str(exc)))
        except PayloadValidationError as exc:
            return self._reject(request, error(422, str(exc), problems=exc.problems))
        try:
            result = await self.intake.submit(payload)
        except HistoryError as exc:
            log.error("webhook not stored (Alertmanager will retry): %s", exc)
            return error(503, "alert history unavailable; retry later")
        self._webhooks["accepted" if result.accepted else "duplicate"].inc()
        return JSONResponse({"accepted": result.accepted, "duplicates": result.duplicates})

    async def firing(self, request: Request) -> Response:
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        query_params(request)
        try:
            events = await run_in_threadpool(self.history.firing)
        except HistoryError as exc:
            log.error("firing query failed: %s", exc)
            return error(503, "alert history unavailable")
        return JSONResponse({"count": len(events), "alerts": [e.to_json() for e in events]})

    async def history_list(self, request: Request) -> Response:
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        params = query_params(request, single=("limit", "alertname"))
        limit = int_param(params, "limit", DEFAULT_HISTORY_LIMIT, 1, MAX_HISTORY_LIMIT)
        alertname = alertname_param(params)
        try:
            events = await run_in_threadpool(self.history.history, limit, alertname)
        except HistoryError as exc:
            log.error("history query failed: %s", exc)
            return error(503, "alert history unavailable")
        return JSONResponse({"count": len(events), "alerts": [e.to_json() for e in events]})

    async def acknowledge(self, request: Request) -> Response:
        """``POST /api/alerts/ack`` ``{"fingerprint", "by", "false_positive"?, "note"?}``."""
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        wrong_type = self._not_json(request)
        if wrong_type is not None:
            return wrong_type
        body = await self._body(request, ACK_MAX_BYTES)
        if isinstance(body, JSONResponse):
            return body
        try:
            ack = AckRequest.model_validate_json(body)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            if any(e["type"] == "json_invalid" for e in errors):
                return error(400, "body is not valid JSON")
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in errors
            ]
            return error(422, "invalid acknowledgement: " + "; ".join(problems), problems=problems)
        try:
            stored = await store_ack(self.history, ack)
        except HistoryError as exc:
            log.error("acknowledgement not stored: %s", exc)
            return error(503, "alert history unavailable; retry later")
        if stored is None:
            return error(404, f"no alert with fingerprint {ack.fingerprint} has fired")
        log.info("alert %s acknowledged by %s", ack.fingerprint, stored.acked_by)
        return JSONResponse(stored.to_json())

    async def _report(
        self, request: Request
    ) -> tuple[EffectivenessReport, list[Occurrence], int] | Response:
        """The effectiveness report over the request's ``days``, with the occurrences it
        counts; or the response that refuses it (unauthorized, bad input, history down)."""
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        params = query_params(request, single=("days",))
        days = int_param(params, "days", DEFAULT_REPORT_DAYS, 1, MAX_REPORT_DAYS)
        until = datetime.now(UTC)
        since = until - timedelta(days=days)
        try:
            occurrences = await run_in_threadpool(self.history.occurrences, since)
        except HistoryError as exc:
            log.error("report query failed: %s", exc)
            return error(503, "alert history unavailable")
        return effectiveness(occurrences, since, until, self.roster.current()), occurrences, days

    async def report(self, request: Request) -> Response:
        """``GET /api/report?days=7``: the effectiveness report over the last ``days`` days."""
        found = await self._report(request)
        if isinstance(found, Response):
            return found
        return JSONResponse(found[0].to_json())

    async def report_html(self, request: Request) -> Response:
        """``GET /api/report.html?days=7``: the same report as one self-contained HTML file
        (stylesheet and charts inside), for ``tradeguard alerts report --html``."""
        found = await self._report(request)
        if isinstance(found, Response):
            return found
        report, occurrences, days = found
        page = report_file(report, occurrences, days, report.until, self.roster.problem)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def notifications(self, request: Request) -> Response:
        """``GET /api/notifications?limit=50&state=dead``: the delivery outbox, newest first."""
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        params = query_params(request, single=("limit",), multi=("state",))
        limit = int_param(params, "limit", DEFAULT_HISTORY_LIMIT, 1, MAX_HISTORY_LIMIT)
        states: list[OutboxState] = []
        for raw in params.get("state", []):
            if raw not in OUTBOX_STATES:
                return error(400, f"state must be one of {', '.join(OUTBOX_STATES)}")
            if raw not in states:
                states.append(raw)
        try:
            entries = await run_in_threadpool(self.history.outbox_list, limit, states)
            counts = await run_in_threadpool(self.history.outbox_counts)
        except HistoryError as exc:
            log.error("outbox query failed: %s", exc)
            return error(503, "alert history unavailable")
        return JSONResponse(
            {
                "count": len(entries),
                "totals": counts.to_json(),
                "notifications": [e.to_json() for e in entries],
            }
        )

    async def actions(self, request: Request) -> Response:
        """``GET /api/actions?limit=50&action=A&outcome=O&alertname=N``: the remediation audit
        (every decision and its outcome), newest first."""
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        params = query_params(request, single=("limit", "action", "outcome", "alertname"))
        limit = int_param(params, "limit", DEFAULT_HISTORY_LIMIT, 1, MAX_HISTORY_LIMIT)
        action = choice_param(params, "action", REMEDIATION_AUDIT_ACTIONS)
        chosen = choice_param(params, "outcome", ACTION_OUTCOMES)
        outcome: ActionOutcome | None = check_outcome(chosen) if chosen is not None else None
        alertname = alertname_param(params)
        try:
            rows = await run_in_threadpool(
                self.history.list_actions, limit, action, outcome, alertname
            )
        except HistoryError as exc:
            log.error("remediation audit query failed: %s", exc)
            return error(503, "alert history unavailable")
        return JSONResponse({"count": len(rows), "actions": [r.to_json() for r in rows]})

    async def healthz(self, request: Request) -> Response:
        """Liveness of the store, the alert path and the outbox; never paths, hosts or users."""
        alert_path = self.runtime.switch.status().to_json()
        try:  # the counts' query is the store's liveness check too
            counts = await run_in_threadpool(self.history.outbox_counts)
        except HistoryError as exc:
            log.error("health check: %s", exc)
            return JSONResponse(
                {
                    "status": "unavailable",
                    "error": "alert history unavailable",
                    "alert_path": alert_path,
                },
                status_code=503,
            )
        return JSONResponse({"status": "ok", "alert_path": alert_path, "outbox": counts.to_json()})

    async def metrics_page(self, request: Request) -> Response:
        body = self.renderer.render(self.metrics.registry)
        return Response(body, headers={"Content-Type": CONTENT_TYPE})


async def _http_error(request: Request, exc: Exception) -> Response:
    """404/405 and other routing errors as JSON, like every other error."""
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error(500, "internal error")


def create_app(
    settings: ResponderSettings,
    history: AlertHistory,
    channels: Sequence[Channel],
    metrics: Metrics,
) -> Starlette:
    """The responder's ASGI app; ``app.state.runtime`` must be started to store and deliver
    (:class:`~tradeguard.responder.service.ResponderServer` does).

    Raises :class:`~tradeguard.responder.auth.AuthConfigError` when no credentials are
    configured and ``settings.insecure`` is not set: the responder refuses to start open.
    """
    auth = settings.authenticator()
    if not auth.enabled:
        log.warning("responder running WITHOUT authentication (--insecure)")
    runtime = ResponderRuntime(settings, history, channels, metrics)
    roster = runtime.roster
    endpoints = _Endpoints(settings, auth, history, runtime, metrics, roster)
    console = Console(
        history,
        SessionKeeper(auth, timedelta(hours=settings.console_session_hours)),
        RunbookLibrary(settings.runbooks_dir or default_runbooks_dir()),
        PrometheusReader(settings.prometheus_url),
        roster,
        secure_cookie=settings.console_secure_cookie,
    )
    app = Starlette(
        routes=[
            Route(WEBHOOK_PATH, endpoints.webhook, methods=["POST"]),
            Route("/api/alerts/firing", endpoints.firing, methods=["GET"]),
            Route("/api/alerts/history", endpoints.history_list, methods=["GET"]),
            Route("/api/alerts/ack", endpoints.acknowledge, methods=["POST"]),
            Route("/api/report", endpoints.report, methods=["GET"]),
            Route("/api/report.html", endpoints.report_html, methods=["GET"]),
            Route("/api/notifications", endpoints.notifications, methods=["GET"]),
            Route("/api/actions", endpoints.actions, methods=["GET"]),
            Route("/healthz", endpoints.healthz, methods=["GET"]),
            Route("/metrics", endpoints.metrics_page, methods=["GET"]),
            *console.routes(),
        ],
        middleware=[Middleware(RequestMetrics, metrics=metrics)],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.runtime = runtime
    app.state.intake = runtime.intake
    return app
