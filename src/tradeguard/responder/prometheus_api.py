"""Asking Prometheus' HTTP API, for the console's pages and the alert operations alike.

One place decides what a failed ask says: unreachable, too slow, an error status, a body that
is not JSON (a proxy's error page, the wrong port). Each is one :class:`PrometheusUnavailable`
whose message names the server and can be shown as it is, by a page or a command's error line;
what a good answer must hold is each caller's (the rules API's groups, the query API's
vectors), read from the JSON this returns.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tradeguard.errors import TradeguardError
from tradeguard.redact import redact_url

DEFAULT_TIMEOUT = 5.0
EXCERPT_CHARS = 200  # of an unexpected answer: enough to recognise it, short enough for a line
_SPACE = re.compile(r"\s+")


class PrometheusUnavailable(TradeguardError):
    """Prometheus could not be asked, or its answer is not its API's: unreachable, too slow,
    an error status, not JSON, or JSON of another shape. One line, saying which."""


def one_line(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def excerpt(text: str) -> str:
    return one_line(text)[:EXCERPT_CHARS] or "(empty body)"


class PrometheusAPI:
    """One Prometheus server: ``hint`` ends the message of an unreachable one (where the
    address it was asked at comes from, for the reader to check)."""

    def __init__(
        self, base_url: str, timeout: float = DEFAULT_TIMEOUT, hint: str = "is it running?"
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.hint = hint
        self.who = f"Prometheus at {redact_url(self.base_url)}"

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The JSON body of a 200 answer to ``GET path``; PrometheusUnavailable otherwise."""
        try:
            response = httpx.get(self.base_url + path, params=params, timeout=self.timeout)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise self._failure(exc) from None
        return self._body(response)

    async def get_async(self, path: str, params: dict[str, str] | None = None) -> Any:
        """:meth:`get` for an event loop."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(self.base_url + path, params=params)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise self._failure(exc) from None
        return self._body(response)

    def _failure(self, exc: Exception) -> PrometheusUnavailable:
        if isinstance(exc, httpx.TimeoutException):
            return PrometheusUnavailable(
                f"{self.who} did not answer within {self.timeout:g}s ({type(exc).__name__})"
            )
        if isinstance(exc, httpx.ConnectError):
            why = one_line(str(exc)) or "connection refused"
            return PrometheusUnavailable(f"{self.who} is unreachable ({why}); {self.hint}")
        # ValueError: httpx refuses some malformed URLs (a port that is not a number) with it
        return PrometheusUnavailable(
            f"request to {self.who} failed: {type(exc).__name__}: {one_line(str(exc))}"
        )

    def _body(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            raise PrometheusUnavailable(
                f"{self.who} answered {response.status_code} with something that is not JSON: "
                f"{excerpt(response.text)}"
            ) from None
        if response.status_code != 200:
            detail = body.get("error") if isinstance(body, dict) else None
            shown = one_line(str(detail)) if detail else excerpt(json.dumps(body))
            raise PrometheusUnavailable(f"{self.who} answered {response.status_code}: {shown}")
        return body
