"""Runbook links that open wherever a notification is read.

The shipped rules say ``runbook_url: docs/runbooks/<Alert>.md``: a path in the repository, which
reads well there and opens nowhere else. The console serves each runbook at
``<base>/runbooks/<Alert>``, so with the console's public address as the base a link in Slack,
an e-mail or PagerDuty opens. The local stack writes the absolute links into the rules it
renders; a deployment that mounts the rules as shipped (Docker Compose) gets them from the
responder, which rewrites the link of each notification it sends.
"""

from __future__ import annotations

import re
from dataclasses import replace

from tradeguard.responder.notification import Notification

_NAME = r"[A-Za-z][A-Za-z0-9_]*"
_RELATIVE = re.compile(rf"^docs/runbooks/({_NAME})\.md$")
_RULE_LINE = re.compile(rf"^([ \t]*runbook_url:[ \t]*)docs/runbooks/({_NAME})\.md[ \t]*$", re.M)


def console_runbook(base_url: str, alert: str) -> str:
    return f"{base_url.rstrip('/')}/runbooks/{alert}"


def runbook_link(url: str | None, base_url: str | None) -> str | None:
    """``url`` as a link that opens: a repository path to a runbook becomes the console's page
    for it; any other URL (or no base) is left as it is."""
    if url is None or base_url is None:
        return url
    found = _RELATIVE.match(url.strip())
    return console_runbook(base_url, found.group(1)) if found else url


def with_runbook_link(n: Notification, base_url: str | None) -> Notification:
    link = runbook_link(n.runbook_url, base_url)
    return n if link == n.runbook_url else replace(n, runbook_url=link)


def absolute_runbooks(text: str, base_url: str) -> str:
    """Rule file text with every ``runbook_url: docs/runbooks/<Alert>.md`` line pointing at the
    console's page for it."""
    return _RULE_LINE.sub(lambda m: f"{m.group(1)}{console_runbook(base_url, m.group(2))}", text)
