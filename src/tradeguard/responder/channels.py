"""Where notifications go: the ``Channel`` protocol, the two embedded channels and apprise.

The console channel is the default a person watching a terminal sees; the JSONL channel is the
machine-readable record tests and scripts read (and what the end-to-end tests assert on). Both
are local and dependency-free. :class:`AppriseChannel` reaches chat, e-mail, webhooks and the
rest through apprise URLs taken from configuration (a file, like Alertmanager's secrets), never
from code. PagerDuty is its own channel (:mod:`tradeguard.responder.pagerduty`): apprise's
plugin can only trigger, never resolve.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.text import Text

from tradeguard.errors import ConfigError, TradeguardError
from tradeguard.responder.events import iso
from tradeguard.responder.notification import Notification


class ChannelError(TradeguardError):
    """A channel could not deliver a notification; the message names the channel.

    ``retry_after`` is the wait the far end asked for (a 429's ``Retry-After``), if any;
    ``permanent`` means retrying the same notification cannot succeed (the far end refused it
    as malformed), so the outbox stops trying at once instead of at its deadline.
    """

    def __init__(
        self, message: str, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class Channel(Protocol):
    """Delivers notifications somewhere; raises :class:`ChannelError` when it cannot.

    ``accepts`` says whether the channel wants a notification at all (the pager takes only
    criticals): a notification a channel does not accept gets no outbox entry for it, so it is
    never counted as sent there. A channel with ``is_pager`` set is never throttled.
    """

    name: str
    is_pager: bool

    def accepts(self, notification: Notification) -> bool: ...

    def send(self, notification: Notification) -> None: ...


class _TakesEverything:
    """The default for channels that want every notification and are not a pager."""

    is_pager = False

    def accepts(self, notification: Notification) -> bool:
        return True


_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


class ConsoleChannel(_TakesEverything):
    """One line per event on a terminal: status, severity, alert, instance, summary.

    Label and annotation text is inserted as plain text, never as rich markup, so an alert
    whose summary contains ``[brackets]`` prints as written.
    """

    name = "console"

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(highlight=False)
        self._lock = threading.Lock()

    def render(self, n: Notification) -> Text:
        line = Text()
        if n.status == "firing":
            line.append("FIRING  ", style="bold red")
        else:
            line.append("RESOLVED", style="bold green")
        line.append(f" {n.severity:<8}", style=_SEVERITY_STYLE.get(n.severity, ""))
        line.append(f" {n.alertname}", style="bold")
        if n.instance:
            line.append(f" {n.instance}", style="dim")
        if n.status == "resolved" and n.recovered:
            line.append(f"  {n.recovered}")
        elif n.summary:
            line.append(f"  {n.summary}")
        if n.remediation:
            line.append(f"  {n.remediation}", style="italic")
        if n.on_call:
            line.append(f"  on call: {n.on_call}")
        if n.held_back:
            line.append(n.held_back_text, style="dim")
        return line

    def send(self, notification: Notification) -> None:
        try:
            with self._lock:
                self._console.print(self.render(notification), soft_wrap=True)
        except (OSError, ValueError) as exc:  # closed or broken stream
            raise ChannelError(f"console channel: {exc}") from exc


def notification_record(n: Notification, sent_at: datetime | None = None) -> dict[str, Any]:
    """The JSON object the JSONL channel writes for ``n``."""
    return {
        "sent_at": iso(sent_at or datetime.now(UTC)),
        "status": n.status,
        "severity": n.severity,
        "alertname": n.alertname,
        "instance": n.instance,
        "component": n.component,
        "summary": n.summary,
        "recovered": n.recovered,
        "remediation": n.remediation,
        "on_call": n.on_call,
        "message": n.headline,
        "fingerprint": n.fingerprint,
        "starts_at": iso(n.starts_at),
        "ends_at": iso(n.ends_at) if n.ends_at else None,
        "receiver": n.receiver,
        "runbook_url": n.runbook_url,
        "labels": dict(n.labels),
        "held_back": list(n.held_back),
        "held_back_count": n.held_back_total,
    }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JsonlChannel(_TakesEverything):
    """Appends one JSON object per notification to a file, fsync'd before ``send`` returns.

    A notification reported as sent is on disk: a crash right after cannot lose it. Each
    record is written with a single ``write`` on an ``O_APPEND`` descriptor, so concurrent
    writers (threads or processes) never interleave within a line.
    """

    def __init__(self, path: Path | str, name: str = "jsonl") -> None:
        self.path = Path(path)
        self.name = name
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        line = json.dumps(notification_record(notification), ensure_ascii=False) + "\n"
        data = line.encode()
        try:
            with self._lock:
                created = not self.path.exists()
                if created:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    written = os.write(fd, data)
                    if written != len(data):
                        raise OSError(f"short write ({written} of {len(data)} bytes)")
                    os.fsync(fd)
                finally:
                    os.close(fd)
                if created:  # the new directory entry must survive a crash too
                    _fsync_dir(self.path.parent)
        except OSError as exc:
            raise ChannelError(f"jsonl channel {self.path}: {exc}") from exc


class AppriseChannel(_TakesEverything):
    """Sends each notification to every configured apprise URL (Slack, e-mail, Telegram, ...).

    Title: the notification's headline; body: the description (or what recovered), what
    remediation did, the runbook and what throttling held back. The notification type follows
    status and severity, so services that colour by type show a resolved notice green and a
    critical red.
    """

    name = "apprise"

    def __init__(self, urls: list[str]) -> None:
        import apprise

        self._apprise = apprise.Apprise()
        for index, url in enumerate(urls):
            if not self._apprise.add(url):
                # Never echo the URL: it usually holds a token.
                raise ConfigError(f"apprise URL #{index + 1} is not a URL apprise understands")
        self._types = {
            "critical": apprise.NotifyType.FAILURE,
            "warning": apprise.NotifyType.WARNING,
        }
        self._resolved = apprise.NotifyType.SUCCESS
        self._default = apprise.NotifyType.INFO

    def body(self, n: Notification) -> str:
        lines = [n.recovered if n.status == "resolved" and n.recovered else n.description]
        if n.remediation:
            lines.append(n.remediation)
        if n.on_call:
            lines.append(f"On call: {n.on_call}")
        if n.runbook_url:
            lines.append(f"Runbook: {n.runbook_url}")
        if n.held_back:
            lines.append(f"Held back by throttling:{n.held_back_text.removeprefix(' ')}")
        return "\n".join(line for line in lines if line)

    def send(self, notification: Notification) -> None:
        kind = (
            self._resolved
            if notification.status == "resolved"
            else self._types.get(notification.severity, self._default)
        )
        try:
            delivered = self._apprise.notify(
                title=notification.headline, body=self.body(notification), notify_type=kind
            )
        except Exception as exc:  # a plugin bug must read as a failed delivery, not a crash
            raise ChannelError(f"apprise channel: {exc}") from exc
        if not delivered:
            raise ChannelError("apprise channel: at least one URL did not take the notification")


def read_apprise_urls(path: Path) -> list[str]:
    """One apprise URL per line; blanks and ``#`` comments skipped."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"apprise URL file {path}: {exc.strerror or exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
