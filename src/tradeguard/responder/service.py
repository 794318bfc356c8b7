"""A running responder: settings → history, channels, app → uvicorn, with one start and one stop.

``start()``/``stop()`` run uvicorn in a background thread, for tests and for the stack, which
hosts several services in one supervisor; ``serve()`` blocks until SIGINT/SIGTERM, for the
``tradeguard responder`` command. The listening socket is bound here, before uvicorn starts, so
port 0 works (the chosen port is known at once) and a port in use is a clear ServiceError.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import uvicorn

from tradeguard.errors import ServiceError
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.process import process_registry
from tradeguard.process.managed import wait_until
from tradeguard.responder.app import create_app
from tradeguard.responder.channels import (
    AppriseChannel,
    Channel,
    ConsoleChannel,
    JsonlChannel,
    read_apprise_urls,
)
from tradeguard.responder.history import AlertHistory, open_history
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
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = settings.port
        self._running = False

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/alertmanager/webhook"

    def _bind(self) -> socket.socket:
        host, port = self.settings.host, self.settings.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this; asyncio sets it only for sockets it knows are TCP,
        # and without it each response's body waits for the client's delayed ACK (~40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ServiceError(
                f"responder cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        sock.listen(128)
        sock.set_inheritable(True)
        return sock

    def start(self, timeout: float = 10.0) -> Self:
        """Listen and serve in a background thread; return once requests are answered."""
        if self._thread is not None and self._thread.is_alive():
            return self
        sock = self._bind()
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,  # leave the process's logging set-up alone
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="responder-http", daemon=True
        )
        self._thread.start()
        thread = self._thread
        try:
            wait_until(
                lambda: server.started or not thread.is_alive(), timeout, "the responder to start"
            )
        except TimeoutError as exc:
            self.stop()
            raise ServiceError(str(exc)) from None
        if not server.started:
            self.stop()
            raise ServiceError("the responder's HTTP server exited during start-up")
        self.runtime.start()
        self._running = True
        log.info("responder listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (in-flight requests get a few seconds), flush the outbox once (held
        notifications included), then close what we opened."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(5)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
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
