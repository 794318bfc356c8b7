"""A typed client for the responder's HTTP API, and the one error every reader of it raises.

The ``tradeguard alerts`` commands, the stack's status and ``alerts test``, and the chaos
runner all read the same API. Each used to make its own httpx calls and word its own failures,
so the same refused token read differently depending on the command. Here the HTTP and its
failures are handled once: every failure becomes :class:`ResponderUnavailable` whose message is
one line (unreachable, too slow, token refused, or an error answer with a short excerpt), ready
for a CLI to print as is. What the user should *do* about it depends on how the responder was
started, which only the caller knows, so the caller passes that as :class:`Hints`.

This module sits in ``responder`` and imports nothing above it (no stack, chaos or CLI).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tradeguard.errors import TradeguardError
from tradeguard.redact import redact_url

DEFAULT_TIMEOUT = 5.0
EXCERPT_CHARS = 200  # of an error answer's body: enough to say why, short enough for one line
_SPACE = re.compile(r"\s+")


class ResponderUnavailable(TradeguardError):
    """The responder could not be used: unreachable, too slow, refused the token, or answered
    with an error. The message is one line saying which (and what to do), never the token."""


@dataclass(frozen=True)
class Hints:
    """What the user is told to do when the responder refuses the token or cannot be reached.

    The defaults suit ``tradeguard alerts ...`` run against a responder started by hand; the
    local stack passes its own (its token lives in the stack's run directory, and a restart of
    the stack is what fixes a mismatch).
    """

    token_label: str = "the credentials"  # "the responder at X refused <token_label> (401)"
    refused: str = "give --token-file or set TRADEGUARD_RESPONDER_TOKEN"
    unreachable: str = "is `tradeguard responder` running, and is --url right?"


@dataclass(frozen=True)
class NotificationPage:
    """One answer of ``/api/notifications``: the newest deliveries and the outbox's totals."""

    rows: list[dict[str, Any]]
    totals: dict[str, int]


class ResponderClient:
    """The responder's HTTP API over one ``httpx.Client`` (connections are reused).

    ``token`` is sent as a bearer token when given (``/healthz`` needs none). ``token_file``
    is only named in the message when the token is refused, so the user knows which file holds
    the wrong one. Safe to share between threads, as ``httpx.Client`` is; close it (or use it
    as a context manager) when done.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        token_file: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        hints: Hints | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_file = token_file
        self.timeout = timeout
        self.hints = hints or Hints()
        self._has_token = bool(token)
        self._who = f"the responder at {redact_url(self.base_url)}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        except httpx.InvalidURL as exc:  # a port that is not a number, ...
            # Not shown: a URL that does not parse may hide a password where none is expected.
            raise ResponderUnavailable(f"the responder URL is not usable: {exc}") from None

    # ---- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ResponderClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- the API ----------------------------------------------------------------------------
    def healthz(self) -> dict[str, Any]:
        """The ``/healthz`` body: ``status``, ``alert_path`` and (when the store answers)
        ``outbox``. A 503 is returned too, not raised: it carries the reason the responder is
        unhealthy, which is what a status page wants to show."""
        return self._request("GET", "/healthz", ok=(200, 503))

    def firing(self) -> list[dict[str, Any]]:
        """The alerts firing now, newest first."""
        return _records(self._request("GET", "/api/alerts/firing"), "alerts")

    def history(self, alertname: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The last ``limit`` stored alert events (firing and resolved), newest first; only
        ``alertname``'s when given."""
        params: dict[str, Any] = {"limit": limit}
        if alertname:
            params["alertname"] = alertname
        return _records(self._request("GET", "/api/alerts/history", params=params), "alerts")

    def notifications(self, limit: int = 50, states: Sequence[str] = ()) -> NotificationPage:
        """The newest ``limit`` notification deliveries (only those in ``states`` when given)
        and the outbox's pending/held/dead totals."""
        params: dict[str, Any] = {"limit": limit}
        if states:
            params["state"] = list(states)
        body = self._request("GET", "/api/notifications", params=params)
        totals = body.get("totals")
        return NotificationPage(
            _records(body, "notifications"), totals if isinstance(totals, dict) else {}
        )

    def actions(
        self,
        limit: int = 50,
        action: str | None = None,
        outcome: str | None = None,
        alertname: str | None = None,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` remediation decisions and their outcomes, newest first (only
        those of ``action``, ``outcome`` and ``alertname`` when given)."""
        params: dict[str, Any] = {"limit": limit}
        for name, value in (("action", action), ("outcome", outcome), ("alertname", alertname)):
            if value:
                params[name] = value
        return _records(self._request("GET", "/api/actions", params=params), "actions")

    def acknowledge(
        self, fingerprint: str, by: str, false_positive: bool = False, note: str = ""
    ) -> dict[str, Any]:
        """Acknowledge the newest occurrence of the alert ``fingerprint``; the stored
        acknowledgement (the first one counts, a later one returns it unchanged)."""
        request: dict[str, Any] = {
            "fingerprint": fingerprint,
            "by": by,
            "false_positive": false_positive,
        }
        if note:
            request["note"] = note
        return self._request("POST", "/api/alerts/ack", json=request)

    def report(self, days: int = 7) -> dict[str, Any]:
        """The effectiveness report over the last ``days`` days (rate, MTTA, MTTR, ...)."""
        return self._request("GET", "/api/report", params={"days": days})

    def report_html(self, days: int = 7) -> str:
        """The same report as one self-contained HTML document (charts inside)."""
        response = self._send("GET", "/api/report.html", params={"days": days})
        if response.status_code != 200 or "text/html" not in response.headers.get(
            "content-type", ""
        ):
            try:
                body = response.json()
            except ValueError:
                body = None
            raise ResponderUnavailable(
                f"{self._who} answered {response.status_code}: {_excerpt(response, body)}"
            )
        return response.text

    # ---- HTTP and its failures --------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """The response to one request, whatever its status but 401/403; ResponderUnavailable
        when nothing answered or the credentials were refused."""
        try:
            response = self._http.request(method, path, params=params, json=json)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ResponderUnavailable(self._failure(exc)) from None
        if response.status_code in (401, 403):
            raise ResponderUnavailable(self._refused(response.status_code))
        return response

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> dict[str, Any]:
        response = self._send(method, path, params=params, json=json)
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if status not in ok or not isinstance(body, dict):
            raise ResponderUnavailable(f"{self._who} answered {status}: {_excerpt(response, body)}")
        return body

    def _refused(self, status: int) -> str:
        reason = f"{self._who} refused {self.hints.token_label} ({status})"
        if self._has_token and self.token_file is not None:
            reason += f": the token in {self.token_file} is not the one it was started with"
        return f"{reason}; {self.hints.refused}"

    def _failure(self, exc: Exception) -> str:
        """One line for a request that got no answer."""
        if isinstance(exc, httpx.TimeoutException):
            return f"{self._who} did not answer within {self.timeout:g}s ({type(exc).__name__})"
        if isinstance(exc, httpx.ConnectError):
            why = _one_line(str(exc)) or "connection refused"
            return f"{self._who} is unreachable ({why}); {self.hints.unreachable}"
        return f"request to {self._who} failed: {type(exc).__name__}: {_one_line(str(exc))}"


def _records(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    records = body.get(key)
    if not isinstance(records, list):
        return []
    return [r for r in records if isinstance(r, dict)]


def _excerpt(response: httpx.Response, body: Any) -> str:
    """The responder's own ``error`` text when it gave one, else the start of the body."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        text = body["error"]
    else:
        text = response.text[:EXCERPT_CHARS]
    return _one_line(text)[:EXCERPT_CHARS] or "(empty body)"


def _one_line(text: str) -> str:
    return _SPACE.sub(" ", text).strip()
