"""An ASGI app served by uvicorn from a background thread, on a socket bound here.

The responder and the benchmark's HTTP floor both serve through this, so the floor the
responder is measured against can never differ from it in socket options or server settings.
Binding before uvicorn starts makes port 0 work (the chosen port is known at once) and turns a
port in use into a clear ServiceError.
"""

from __future__ import annotations

import socket
import threading

import uvicorn
from starlette.types import ASGIApp

from tradeguard.errors import ServiceError
from tradeguard.process.managed import wait_until


def bind_tcp(host: str, port: int, what: str = "server") -> socket.socket:
    """A listening TCP socket with Nagle's algorithm off (ServiceError if it cannot bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; asyncio sets it only for sockets it knows are TCP,
    # and without it each response's body (uvicorn sends head, then body) waits for the
    # client's delayed ACK (~40 ms on Linux).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = exc.strerror or exc
        raise ServiceError(f"{what} cannot listen on {host}:{port}: {why}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class BackgroundHTTPServer:
    """uvicorn serving ``app`` on ``host:port`` from a thread named ``thread_name``; ``what``
    names the server in errors."""

    def __init__(self, app: ASGIApp, host: str, port: int, what: str, thread_name: str) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.what = what
        self.thread_name = thread_name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        """Listen and serve; return once requests are answered (ServiceError otherwise)."""
        sock = bind_tcp(self.host, self.port, self.what)
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
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self.thread_name, daemon=True
        )
        self._thread = thread
        thread.start()
        try:
            wait_until(
                lambda: server.started or not thread.is_alive(),
                timeout,
                f"the {self.what} to start",
            )
        except TimeoutError as exc:
            self.stop()
            raise ServiceError(str(exc)) from None
        if not server.started:
            self.stop()
            raise ServiceError(f"the {self.what}'s HTTP server exited during start-up")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving; in-flight requests get ``timeout`` seconds, then are cut off."""
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
