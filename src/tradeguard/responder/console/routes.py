"""The operator's console: server-rendered pages over the responder's history.

Served by the responder itself (one process, one address, the same credentials), under
``/console/`` and ``/runbooks/``. Pages are HTML rendered here with Jinja2 (autoescaping on),
charts are inline SVG (:mod:`tradeguard.responder.console.svg`), and no page needs
JavaScript: reading works with scripts off, and the only forms (login, acknowledge, log out)
are plain POSTs with a CSRF token. The Content-Security-Policy forbids scripts outright, so an
alert label that got into a page could not run even if escaping failed.

A store that does not answer gives the page with a clear message and a 503, never a
traceback; the API's JSON errors stay the API's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from tradeguard.metrics.vocabulary import REMEDIATION_AUDIT_ACTIONS
from tradeguard.responder.acks import AckRequest, store_ack
from tradeguard.responder.console import shaping, svg
from tradeguard.responder.console.effectiveness_view import effectiveness_context
from tradeguard.responder.console.prometheus import PrometheusReader
from tradeguard.responder.console.runbooks import RunbookLibrary
from tradeguard.responder.console.session import (
    COOKIE,
    ConsoleSession,
    SessionKeeper,
    clean_operator,
)
from tradeguard.responder.durations import span_text
from tradeguard.responder.history import AlertHistory, HistoryError
from tradeguard.responder.history.actions import ACTION_OUTCOMES, check_outcome
from tradeguard.responder.prometheus_api import PrometheusUnavailable
from tradeguard.responder.report import effectiveness
from tradeguard.responder.roster import RosterSource

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
FORM_MAX_BYTES = 16 * 1024
WINDOWS_DAYS = (1, 7, 30, 90)
WINDOWS_HOURS = (1, 6, 24)
HISTORY_ROWS = 200
ACTION_ROWS = 200
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Page = Callable[[Request, ConsoleSession], Awaitable[Response]]


class BadInput(Exception):
    """A query or form value the page cannot use: answered with a 400 page naming it."""


class Console:
    """The console's pages, bound to the responder's history and credentials."""

    def __init__(
        self,
        history: AlertHistory,
        sessions: SessionKeeper,
        runbooks: RunbookLibrary,
        prometheus: PrometheusReader,
        roster: RosterSource,
        secure_cookie: bool = False,
    ) -> None:
        self.history = history
        self.sessions = sessions
        self.runbooks = runbooks
        self.prometheus = prometheus
        self.roster = roster
        self.secure_cookie = secure_cookie
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["severity_rank"] = shaping.severity_rank

    # ---- plumbing ---------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [
            Route("/console", self._home, methods=["GET"]),
            Route("/console/", self._home, methods=["GET"]),
            Route("/console/login", self._login_form, methods=["GET"]),
            Route("/console/login", self._login, methods=["POST"]),
            Route("/console/logout", self._guard(self._logout), methods=["POST"]),
            Route("/console/now", self._guard(self._now), methods=["GET"]),
            Route("/console/ack", self._guard(self._ack), methods=["POST"]),
            Route("/console/history", self._guard(self._history), methods=["GET"]),
            Route("/console/effectiveness", self._guard(self._effectiveness), methods=["GET"]),
            Route("/console/actions", self._guard(self._actions), methods=["GET"]),
            Route("/console/ha", self._guard(self._ha), methods=["GET"]),
            Route("/console/trade", self._guard(self._trade), methods=["GET"]),
            Route("/runbooks", self._guard(self._runbook_index), methods=["GET"]),
            Route("/runbooks/{name}", self._guard(self._runbook), methods=["GET"]),
            Mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]

    def _page(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        status_code: int = 200,
        session: ConsoleSession | None = None,
    ) -> Response:
        context = {"session": session, "path": request.url.path, **context}
        response = self.templates.TemplateResponse(
            request, template, context, status_code=status_code
        )
        response.headers.update(SECURITY_HEADERS)
        return response

    def _problem(
        self, request: Request, session: ConsoleSession | None, status: int, message: str
    ) -> Response:
        return self._page(
            request, "problem.html", {"title": "Problem", "message": message}, status, session
        )

    def _guard(self, page: Page) -> Callable[[Request], Awaitable[Response]]:
        """``page`` for a logged-in operator; anyone else goes to the login form, and comes
        back here after it."""

        async def guarded(request: Request) -> Response:
            session = self.sessions.read(request.cookies.get(COOKIE), datetime.now(UTC))
            if session is None:
                if request.method != "GET":
                    return self._problem(request, None, 403, "Your session has ended: log in.")
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)
            try:
                return await page(request, session)
            except BadInput as exc:
                return self._problem(request, session, 400, str(exc))
            except PrometheusUnavailable as exc:
                return self._problem(request, session, 503, f"No figures now: {exc}.")
            except HistoryError as exc:
                log.error("console page %s: %s", request.url.path, exc)
                return self._problem(
                    request,
                    session,
                    503,
                    "The alert history does not answer; try again shortly. "
                    "Alerts are still received and stored once it is back.",
                )

        return guarded

    async def _form(self, request: Request) -> dict[str, str]:
        """A urlencoded form of at most :data:`FORM_MAX_BYTES`; the first value of each
        field. BadInput for anything else."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            raise BadInput("expected a form (application/x-www-form-urlencoded)")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > FORM_MAX_BYTES:
                    raise BadInput(f"form larger than {FORM_MAX_BYTES} bytes")
        except ClientDisconnect:
            raise BadInput("the form was cut off") from None
        try:
            fields = parse_qs(body.decode(), max_num_fields=20, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise BadInput("the form is not valid UTF-8 or has too many fields") from None
        return {name: values[0] for name, values in fields.items()}

    @staticmethod
    def _query(request: Request, name: str, allowed: tuple[str, ...] | None = None) -> str | None:
        value = request.query_params.get(name) or None
        if value is not None and allowed is not None and value not in allowed:
            raise BadInput(f"{name} must be one of {', '.join(allowed)}")
        if value is not None and (len(value) > 200 or not value.isprintable()):
            raise BadInput(f"{name} is not a usable value")
        return value

    def _days(self, request: Request, default: int = 7) -> int:
        raw = self._query(request, "days", tuple(str(d) for d in WINDOWS_DAYS))
        return int(raw) if raw is not None else default

    # ---- login ------------------------------------------------------------------------------
    async def _home(self, request: Request) -> Response:
        return RedirectResponse("/console/now", status_code=303)

    @staticmethod
    def _next(raw: str | None) -> str:
        """Where to go after login: only a path of this console (no other site, no ``//``)."""
        if raw and raw.startswith(("/console/", "/runbooks")) and "//" not in raw:
            return raw
        return "/console/now"

    async def _login_form(self, request: Request) -> Response:
        return self._page(
            request,
            "login.html",
            {"title": "Log in", "next": self._next(request.query_params.get("next"))},
        )

    async def _login(self, request: Request) -> Response:
        try:
            form = await self._form(request)
        except BadInput as exc:
            return self._problem(request, None, 400, str(exc))
        target = self._next(form.get("next"))
        operator = clean_operator(form.get("operator", ""))
        problem = None
        if operator is None:
            problem = (
                "Give your name (printable, at most 64 characters): acknowledgements carry it."
            )
        elif not self.sessions.credential_ok(form.get("credential", "")):
            client = request.client.host if request.client else "?"
            log.warning("console login refused from %s", client)
            problem = "Wrong credential: use the responder's token (or its basic-auth password)."
        if problem is not None:
            context = {"title": "Log in", "next": target, "problem": problem}
            return self._page(request, "login.html", context, status_code=401)
        assert operator is not None
        cookie, session = self.sessions.issue(operator, datetime.now(UTC))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(self.sessions.lifetime.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=self.secure_cookie,
            path="/",
        )
        log.info("console login: %s", session.operator)
        return response

    async def _logout(self, request: Request, session: ConsoleSession) -> Response:
        form = await self._form(request)
        if not session.csrf_ok(form.get("csrf")):
            return self._problem(request, session, 403, "This form has expired: reload the page.")
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # ---- pages ------------------------------------------------------------------------------
    async def _now(self, request: Request, session: ConsoleSession) -> Response:
        now = datetime.now(UTC)
        events = await run_in_threadpool(self.history.firing)
        keys = [(e.fingerprint, e.starts_at) for e in events]
        acks = await run_in_threadpool(self.history.acks_of, keys)
        actions = await run_in_threadpool(self.history.attempts_of, keys)
        groups = shaping.firing_rows(events, acks, actions, now)
        context = {
            "title": "Now",
            "groups": groups,
            "count": len(events),
            "acked": self._query(request, "acked"),
            "age_text": span_text,
            "runbooks": set(self.runbooks.names()),
        }
        return self._page(request, "now.html", context, session=session)

    async def _ack(self, request: Request, session: ConsoleSession) -> Response:
        form = await self._form(request)
        if not session.csrf_ok(form.get("csrf")):
            return self._problem(request, session, 403, "This form has expired: reload the page.")
        try:
            ack = AckRequest(
                fingerprint=form.get("fingerprint", ""),
                by=session.operator,
                false_positive=form.get("false_positive") == "on",
                note=form.get("note", ""),
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise BadInput(f"acknowledgement refused: {problems}") from None
        stored = await store_ack(self.history, ack)
        if stored is None:
            return self._problem(
                request, session, 404, f"No alert with fingerprint {ack.fingerprint} has fired."
            )
        log.info("alert %s acknowledged in the console by %s", ack.fingerprint, stored.acked_by)
        name = form.get("alertname") or ack.fingerprint
        return RedirectResponse(f"/console/now?acked={quote(name[:100])}", status_code=303)

    async def _history(self, request: Request, session: ConsoleSession) -> Response:
        alertname = self._query(request, "alertname")
        component = self._query(request, "component")
        severity = self._query(request, "severity")
        days = self._days(request)
        until = datetime.now(UTC)
        since = until - timedelta(days=days)
        events = await run_in_threadpool(self.history.history, 1000, alertname)
        occurrences = await run_in_threadpool(self.history.occurrences, since)
        components = {e.alertname: e.component for e in events}
        chosen = [
            e
            for e in events
            if e.received_at >= since
            and (component is None or e.component == component)
            and (severity is None or e.severity == severity)
        ]
        spans = [
            o
            for o in occurrences
            if (alertname is None or o.alertname == alertname)
            and (severity is None or o.severity == severity)
            and (component is None or components.get(o.alertname) == component)
        ]
        context = {
            "title": "History",
            "events": chosen[:HISTORY_ROWS],
            "shown": min(len(chosen), HISTORY_ROWS),
            "total": len(chosen),
            "timeline": svg.timeline(
                shaping.lanes(spans, until), since, until, f"Alerts over the last {days} day(s)"
            ),
            "filters": {"alertname": alertname, "component": component, "severity": severity},
            "components": sorted({c for c in components.values() if c}),
            "alertnames": sorted(components),
            "days": days,
            "windows": WINDOWS_DAYS,
        }
        return self._page(request, "history.html", context, session=session)

    async def _effectiveness(self, request: Request, session: ConsoleSession) -> Response:
        days = self._days(request)
        until = datetime.now(UTC)
        since = until - timedelta(days=days)
        occurrences = await run_in_threadpool(self.history.occurrences, since)
        roster = self.roster.current()
        report = effectiveness(occurrences, since, until, roster)
        context = {
            "title": "Effectiveness",
            "windows": WINDOWS_DAYS,
            **effectiveness_context(report, occurrences, days),
        }
        return self._page(request, "effectiveness.html", context, session=session)

    async def _actions(self, request: Request, session: ConsoleSession) -> Response:
        action = self._query(request, "action", tuple(REMEDIATION_AUDIT_ACTIONS))
        chosen = self._query(request, "outcome", tuple(ACTION_OUTCOMES))
        alertname = self._query(request, "alertname")
        outcome = check_outcome(chosen) if chosen is not None else None
        rows = await run_in_threadpool(
            self.history.list_actions, ACTION_ROWS, action, outcome, alertname
        )
        context = {
            "title": "Actions",
            "rows": rows,
            "filters": {"action": action, "outcome": chosen, "alertname": alertname},
            "actions": sorted(REMEDIATION_AUDIT_ACTIONS),
            "outcomes": ACTION_OUTCOMES,
        }
        return self._page(request, "actions.html", context, session=session)

    def _hours(self, request: Request) -> tuple[int, datetime, datetime]:
        """The chosen window in hours (default 1), and its start and end (now)."""
        raw = self._query(request, "hours", tuple(str(h) for h in WINDOWS_HOURS))
        hours = int(raw) if raw is not None else 1
        until = datetime.now(UTC)
        return hours, until - timedelta(hours=hours), until

    async def _ha(self, request: Request, session: ConsoleSession) -> Response:
        hours, since, until = self._hours(request)
        prom = self.prometheus
        leads = await prom.instant('tradeguard_ha_is_leader{job="engine"}')
        epochs = await prom.instant('tradeguard_ha_epoch{job="engine"}')
        beats = await prom.instant(
            'time() - tradeguard_ha_last_heartbeat_timestamp_seconds{job="engine"}'
        )
        modes = await prom.instant('tradeguard_ha_mode{job="engine"} == 1')
        ups = await prom.instant('up{job="engine"}')
        split = await prom.instant('max(tradeguard_ha_split_brain{job="engine"})')
        changes = await prom.series(
            'sum(increase(tradeguard_ha_leadership_changes_total{job="engine"}[5m]))',
            since,
            until,
            hours * 3600 / 60,
        )
        replicas = shaping.replica_rows(leads, epochs, beats, modes, ups)
        context = {
            "title": "HA",
            "replicas": replicas,
            "leaders": [r.replica for r in replicas if r.leads],
            "split_brain": any(s.value >= 1 for s in split),
            "changes": svg.line_chart(
                [("leadership changes in 5 min", p.points) for p in changes],
                "Leadership changes",
            ),
            "hours": hours,
            "windows": WINDOWS_HOURS,
        }
        return self._page(request, "ha.html", context, session=session)

    async def _trade(self, request: Request, session: ConsoleSession) -> Response:
        hours, since, until = self._hours(request)
        step = hours * 3600 / 120
        prom = self.prometheus
        rate = await prom.series(
            'sum(rate(tradeguard_signals_processed_total{job="engine"}[1m]))', since, until, step
        )
        quantiles = []
        for q in ("0.5", "0.99"):
            found = await prom.series(
                f"histogram_quantile({q}, sum by (le) "
                '(rate(tradeguard_signal_latency_seconds_bucket{job="engine"}[1m])))',
                since,
                until,
                step,
            )
            quantiles += [(f"p{float(q) * 100:g}", s.points) for s in found]
        dropped = await prom.instant(
            "sum by (reason) "
            f'(increase(tradeguard_signals_dropped_total{{job="engine"}}[{hours}h]))'
        )
        context = {
            "title": "Trade path",
            "rate": svg.line_chart(
                [("signals/s", s.points) for s in rate], "Signals handled per second", "/s"
            ),
            "latency": svg.line_chart(quantiles, "Signal latency", " s"),
            "dropped": svg.bar_chart(
                sorted(
                    ((s.labels.get("reason", "?"), round(s.value)) for s in dropped),
                    key=lambda bar: -bar[1],
                ),
                f"Dead-lettered signals by reason, last {hours} h",
            ),
            "hours": hours,
            "windows": WINDOWS_HOURS,
        }
        return self._page(request, "trade.html", context, session=session)

    async def _runbook_index(self, request: Request, session: ConsoleSession) -> Response:
        context = {"title": "Runbooks", "names": self.runbooks.names()}
        return self._page(request, "runbooks.html", context, session=session)

    async def _runbook(self, request: Request, session: ConsoleSession) -> Response:
        name = str(request.path_params["name"]).removesuffix(".md")
        body = await run_in_threadpool(self.runbooks.render, name)
        if body is None:
            where = "" if self.runbooks.directory else " (no runbooks directory is configured)"
            return self._problem(request, session, 404, f"No runbook named {name}{where}.")
        context = {"title": f"Runbook: {name}", "name": name, "body": body}
        return self._page(request, "runbook.html", context, session=session)
