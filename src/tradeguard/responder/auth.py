"""Who may post alerts and read history: a bearer token or HTTP basic credentials.

Alertmanager's ``http_config`` sends either (``authorization: {credentials_file}`` or
``basic_auth: {password_file}``). Secrets come from files (or, for the token, the
``TRADEGUARD_RESPONDER_TOKEN`` environment variable), never from the command line where ``ps``
would show them. Comparisons are constant-time. A responder without credentials would let
anyone on the host inject alerts that trigger remediation, so it refuses to start unless
``insecure`` is set explicitly.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from pathlib import Path

from tradeguard import secret_files
from tradeguard.errors import ConfigError


class AuthConfigError(ConfigError):
    """Credentials are missing or unreadable: the responder must not start."""


@dataclass(frozen=True, repr=False)
class Authenticator:
    """Checks an ``Authorization`` header against the configured credentials.

    Either credential is enough when both are configured. With neither, every request passes:
    that is the explicit ``insecure`` mode, which :func:`build_authenticator` refuses to
    produce unless asked.
    """

    token: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.basic_user is not None

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of a 401, naming the accepted scheme(s)."""
        schemes = []
        if self.token is not None:
            schemes.append('Bearer realm="tradeguard-responder"')
        if self.basic_user is not None:
            schemes.append('Basic realm="tradeguard-responder", charset="UTF-8"')
        return ", ".join(schemes)

    def check(self, authorization: str | None) -> bool:
        """True if ``authorization`` (the raw header, or None) carries valid credentials."""
        if not self.enabled:
            return True
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and self.token is not None:
            return hmac.compare_digest(credentials.encode(), self.token.encode())
        if scheme == "basic" and self.basic_user is not None and self.basic_password is not None:
            return self._check_basic(credentials, self.basic_user, self.basic_password)
        return False

    @staticmethod
    def _check_basic(credentials: str, user: str, password: str) -> bool:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except ValueError:  # not base64 (binascii.Error), not UTF-8, or not ASCII at all
            return False
        given_user, sep, given_password = decoded.partition(":")
        if not sep:
            return False
        # Both compared every time (no short-circuit), so timing reveals neither.
        user_ok = hmac.compare_digest(given_user.encode(), user.encode())
        password_ok = hmac.compare_digest(given_password.encode(), password.encode())
        return user_ok & password_ok

    def __repr__(self) -> str:
        kinds = [k for k, v in (("bearer", self.token), ("basic", self.basic_user)) if v]
        return f"<Authenticator {'+'.join(kinds) or 'insecure'}>"


def build_authenticator(
    *,
    token: str | None = None,
    token_file: Path | None = None,
    basic_user: str | None = None,
    basic_password_file: Path | None = None,
    insecure: bool = False,
) -> Authenticator:
    """Load the configured credentials; AuthConfigError if none is configured and not insecure.

    ``token_file`` wins over ``token`` (the environment value) when both are given.
    """
    if token_file is not None:
        token = secret_files.read_secret(token_file, "bearer token", AuthConfigError)
    elif token is not None:
        token = token.strip()
        if not token:
            raise AuthConfigError("TRADEGUARD_RESPONDER_TOKEN is set but empty")
    password: str | None = None
    if basic_user is not None or basic_password_file is not None:
        if not basic_user or basic_password_file is None:
            raise AuthConfigError(
                "basic auth needs both basic_user and basic_password_file "
                "(TRADEGUARD_RESPONDER_BASIC_USER, TRADEGUARD_RESPONDER_BASIC_PASSWORD_FILE)"
            )
        password = secret_files.read_secret(
            basic_password_file, "basic-auth password", AuthConfigError
        )
    auth = Authenticator(token=token, basic_user=basic_user or None, basic_password=password)
    if not auth.enabled and not insecure:
        raise AuthConfigError(
            "the responder has no credentials configured: set TRADEGUARD_RESPONDER_TOKEN_FILE "
            "(or TRADEGUARD_RESPONDER_TOKEN, or basic auth), or pass --insecure to accept "
            "unauthenticated alerts on purpose"
        )
    return auth
