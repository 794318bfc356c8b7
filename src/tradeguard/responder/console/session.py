"""Who is looking at the console: a signed session cookie, issued for the responder's own
credentials, with a CSRF token for every form.

Why a cookie and not the API's ``Authorization`` header: a browser sends no bearer token by
itself, and a link from Slack or PagerDuty must open a page after one login. The cookie holds
no secret and needs no server-side store (several responder replicas behind one address all
accept it): it is ``operator``, expiry and a random CSRF token, signed with a key derived from
the responder's credential. Changing the credential therefore ends every session. It is
``HttpOnly`` (no script reads it) and ``SameSite=Strict`` (no other site's page sends it);
every form also carries the session's CSRF token, checked in constant time, so a forged
request fails even where a browser ignores SameSite.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from tradeguard.responder.auth import Authenticator

COOKIE = "tradeguard_console"
KEY_CONTEXT = b"tradeguard console session v1"
MAX_OPERATOR_CHARS = 64


@dataclass(frozen=True)
class ConsoleSession:
    operator: str  # who acknowledges, as typed at login
    expires_at: datetime
    csrf: str

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class SessionKeeper:
    """Checks login credentials and issues and reads session cookies."""

    def __init__(self, auth: Authenticator, lifetime: timedelta) -> None:
        self.auth = auth
        self.lifetime = lifetime
        # Without credentials (the explicit insecure mode) sessions still need a signature:
        # a random key, so they last as long as this process.
        material = auth.token or auth.basic_password or secrets.token_hex(32)
        self._key = hmac.new(material.encode(), KEY_CONTEXT, hashlib.sha256).digest()

    def credential_ok(self, credential: str) -> bool:
        """Whether ``credential`` is the responder's bearer token or its basic-auth password
        (any credential in the insecure mode, which has none)."""
        if not self.auth.enabled:
            return True
        credential = credential.strip()
        if not credential:
            return False
        token_ok = self.auth.token is not None and self.auth.check(f"Bearer {credential}")
        basic_ok = False
        if self.auth.basic_user is not None:
            pair = base64.b64encode(f"{self.auth.basic_user}:{credential}".encode()).decode()
            basic_ok = self.auth.check(f"Basic {pair}")
        return token_ok or basic_ok

    def issue(self, operator: str, now: datetime) -> tuple[str, ConsoleSession]:
        """A new session for ``operator`` and its cookie value."""
        session = ConsoleSession(operator, now + self.lifetime, secrets.token_urlsafe(24))
        body = json.dumps(
            {"op": session.operator, "exp": session.expires_at.timestamp(), "csrf": session.csrf},
            separators=(",", ":"),
        ).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{payload}.{self._sign(payload)}", session

    def read(self, cookie: str | None, now: datetime) -> ConsoleSession | None:
        """The session ``cookie`` carries, or None: absent, forged, malformed or expired."""
        if not cookie or "." not in cookie:
            return None
        payload, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            operator, expires, csrf = str(doc["op"]), float(doc["exp"]), str(doc["csrf"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None  # signed by us, so only an older format could get here
        if expires <= now.timestamp():
            return None
        return ConsoleSession(operator, datetime.fromtimestamp(expires, now.tzinfo), csrf)

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def clean_operator(name: str) -> str | None:
    """The operator's name as stored with an acknowledgement, or None when unusable: trimmed,
    printable, at most :data:`MAX_OPERATOR_CHARS` characters."""
    name = " ".join(name.split())
    if not name or len(name) > MAX_OPERATOR_CHARS or not name.isprintable():
        return None
    return name
