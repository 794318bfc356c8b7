"""A running responder: settings → history, channels, app → uvicorn, with one start and one stop.

``start()``/``stop()`` run uvicorn in a background thread, for tests and for the stack, which
hosts several services in one supervisor; ``serve()`` blocks until SIGINT/SIGTERM, for the
``tradeguard responder`` command. The socket is bound before uvicorn starts (http_server), so
port 0 works (the chosen port is known at once) and a port in use is a clear ServiceError.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.process import process_registry
from tradeguard.responder.app import create_app
from tradeguard.responder.channels import (
    AppriseChannel,
    Channel,
    ConsoleChannel,
    JsonlChannel,
    read_apprise_urls,
)
from tradeguard.responder.history import AlertHistory, open_history
from tradeguard.responder.http_server import BackgroundHTTPServer
from tradeguard.responder.pagerduty import PagerDutyChannel, read_routing_key
from tradeguard.responder.runtime import ResponderRuntime
from tradeguard.responder.settings import ResponderSettings, load_responder_settings

log = logging.getLogger(__name__)

__all__ = ["ResponderServer", "ResponderSettings", "default_channels", "load_responder_settings"]


def default_channels(settings: ResponderSettings) -> list[Channel]:
    """The channels the settings ask for: console, a JSONL file, apprise URLs, PagerDuty
    (ConfigError for an unreadable or empty secret file or a URL apprise does not understand)."""
    channels: list[Channel] = []
    if settings.console:
        channels.append(ConsoleChannel())
    if settings.jsonl_path is not None:
        channels.append(JsonlChannel(settings.jsonl_path))
    if settings.apprise_urls_file is not None:
        channels.append(AppriseChannel(read_apprise_urls(settings.apprise_urls_file)))
    if settings.pagerduty_routing_key_file is not None:
        key = read_routing_key(settings.pagerduty_routing_key_file)
        channels.append(PagerDutyChannel(key, settings.pagerduty_url))
    return channels


class ResponderServer:
    """The responder process's parts, started and stopped together.

    ``history``, ``channels`` and ``metrics`` default to what ``settings`` describe; a history
    passed in is the caller's to close, one opened here is closed by :meth:`stop`.
    Construction fails (AuthConfigError, ConfigError, HistoryError) before anything listens.
    """

    def __init__(
        self,
        settings: ResponderSettings,
        history: AlertHistory | None = None,
        channels: Sequence[Channel] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics(process_registry())
        self.metrics.process_memory_budget.set(settings.memory_budget_bytes)
        self._owns_history = history is None
        self.history = history if history is not None else open_history(settings.history_url)
        try:
            self.channels = list(channels) if channels is not None else default_channels(settings)
            self.app = create_app(settings, self.history, self.channels, self.metrics)
        except BaseException:
            if self._owns_history:
                self.history.close()
            raise
        self.runtime: ResponderRuntime = self.app.state.runtime
        self._http = BackgroundHTTPServer(
            self.app, settings.host, settings.port, "responder", "responder-http"
        )
        self.port = settings.port
        self._running = False

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/alertmanager/webhook"

    def start(self, timeout: float = 10.0) -> Self:
        """Listen and serve in a background thread; return once requests are answered."""
        if self._http.running:
            return self
        self._http.port = self.settings.port
        self._http.start(timeout)
        self.port = self._http.port
        self.runtime.start()
        self._running = True
        log.info("responder listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (in-flight requests get a few seconds), flush the outbox once (held
        notifications included), then close what we opened."""
        self._http.stop(timeout)
        if self._running:
            self.runtime.stop(timeout)
            self._running = False
        if self._owns_history:
            self.history.close()

    def serve(self, stop: threading.Event | None = None) -> None:
        """Run in the foreground until ``stop`` is set, or SIGINT/SIGTERM when none is given."""
        if stop is None:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
