"""URLs as they may be shown: in errors, logs and status output, never with a password.

Database and Redis URLs carry credentials (``redis://:secret@host``, ``postgresql://u:secret@h``,
or ``?password=secret``). Every message that names such a URL shows it through
:func:`redact_url`, so a password never reaches a terminal, a log file or a bug report.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_PARAMS = frozenset({"password", "pass", "passwd", "sslpassword"})


def redact_url(url: str) -> str:
    """``url`` with its password (in the authority or the query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # not a URL we can parse: show nothing of it that may be secret
        return "<unparsable URL>"
    netloc = parts.netloc
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal keeps its brackets
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:{MASK}@{host}{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
