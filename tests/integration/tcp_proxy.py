"""A controllable TCP proxy: put it between one client and its server, then break the path.

Fault tests need to cut *one* replica off Redis or the database while the others keep their
paths, switch that in microseconds from the test itself, and do it without root (no netfilter).
So each replica talks to its servers through its own proxy, and the test flips the proxy's mode:

``pass``
    Bytes flow both ways.
``drop``
    Existing connections are reset and new ones are reset as soon as they are accepted, like a
    firewall rule that rejects with a TCP reset: the client learns at once that the path is gone.
``blackhole``
    Connections stay open and new ones are accepted (the kernel completes the handshake before
    the proxy could refuse it anyway), but nothing is forwarded either way: a silent partition
    that only the client's own timeouts can detect. What is sent meanwhile is held and delivered
    in order when the path heals, as TCP retransmission would deliver it; a new connection
    reaches the server only then.
``delay(seconds)``
    Every chunk is delivered ``seconds`` after it arrived, in order, in both directions.

One limit to keep in mind: the proxy's own kernel acknowledges the client's segments and its TCP
keepalive probes, so TCP keepalives and ``tcp_user_timeout`` on the client cannot detect a
blackhole here (on a real network they would). Only application-level timeouts do.

Test-only (DESIGN.md 5), so it lives under tests/ and the tests import it as ``tcp_proxy``.

The proxy runs an asyncio loop in a background thread; every mode change is applied inside that
loop and has taken effect (connections reset, forwarding stopped) when the call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Coroutine
from enum import StrEnum
from typing import Any, Self, TypeVar

from tradeguard.errors import ServiceError
from tradeguard.net import LOOPBACK

log = logging.getLogger(__name__)

CHUNK = 65536
_T = TypeVar("_T")
_EOF = b""


class ProxyMode(StrEnum):
    PASS = "pass"
    DROP = "drop"
    BLACKHOLE = "blackhole"
    DELAY = "delay"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), not a FIN: the peer sees ECONNRESET at once."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One client connection and its connection to the target, with a queue per direction."""

    def __init__(
        self, proxy: TcpProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.client_reader = reader
        self.client_writer = writer
        self.target_writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[Any] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        upward: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        downward: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        tasks: list[asyncio.Task[None]] = []
        try:
            # Read from the client at once (its bytes are held if the path is blackholed) but
            # reach the target only while the path lets packets through.
            tasks.append(loop.create_task(self._read(self.client_reader, upward)))
            await self.proxy._wait_open()
            try:
                target_reader, target_writer = await asyncio.wait_for(
                    asyncio.open_connection(self.proxy.target_host, self.proxy.target_port), 5.0
                )
            except (OSError, TimeoutError):
                _reset(self.client_writer)  # as a router would answer for a closed port
                return
            self.target_writer = target_writer
            tasks.append(loop.create_task(self._read(target_reader, downward)))
            directions = [
                loop.create_task(self._write(upward, target_writer)),
                loop.create_task(self._write(downward, self.client_writer)),
            ]
            tasks += directions
            # The first side to close (after its held bytes went through) ends the link.
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for writer in (self.client_writer, self.target_writer):
                if writer is not None:
                    writer.close()

    async def _read(
        self, reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes]]
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await reader.read(CHUNK)
            except OSError:
                data = _EOF
            queue.put_nowait((loop.time(), data))
            if not data:
                return

    async def _write(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        while True:
            arrived, data = await queue.get()
            await self.proxy._hold(arrived)
            if not data:
                return
            try:
                writer.write(data)
                await writer.drain()
            except OSError:
                return
            self.proxy.bytes_forwarded += len(data)

    def reset(self) -> None:
        """Reset both sides now; held bytes are discarded."""
        for writer in (self.client_writer, self.target_writer):
            if writer is not None:
                _reset(writer)
        if self.task is not None:
            self.task.cancel()


class TcpProxy:
    """Listens on a loopback port and forwards each connection to ``target_host:target_port``."""

    def __init__(
        self,
        target_port: int,
        target_host: str = LOOPBACK,
        listen_port: int = 0,
        name: str = "proxy",
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.name = name
        self.host = LOOPBACK
        self.port = listen_port  # the real one once started, when 0 was asked for
        self.accepted = 0  # connections accepted, all modes
        self.refused = 0  # connections reset on accept because the mode was drop
        self.bytes_forwarded = 0
        self._mode = ProxyMode.PASS
        self._delay = 0.0
        self._links: set[_Link] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._changed: asyncio.Event | None = None  # set (and replaced) on every mode change

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        """Bind the listening port and start forwarding (mode ``pass``)."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # reported to start() below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"proxy-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure or not ready.is_set():
            self._thread.join(1)
            self._thread = self._loop = None
            raise ServiceError(f"proxy {self.name} could not listen: {failure or 'timed out'}")
        return self

    async def _listen(self) -> None:
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Reset every connection, stop listening and end the loop thread."""
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(RuntimeError, TimeoutError):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._thread = self._loop = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [link.task for link in self._links if link.task is not None]
        for link in list(self._links):
            link.reset()
        if tasks:  # let them unwind, so none is left pending when the loop closes
            await asyncio.wait(tasks, timeout=2)
        self._links.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- modes -----------------------------------------------------------------------------
    @property
    def mode(self) -> ProxyMode:
        return self._mode

    @property
    def delay_seconds(self) -> float:
        return self._delay if self._mode is ProxyMode.DELAY else 0.0

    @property
    def connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._links)

    def pass_through(self) -> None:
        """Heal the path: forward everything, held bytes first."""
        self._set(ProxyMode.PASS, 0.0)

    def drop(self) -> None:
        """Reset every open connection and every new one until the mode changes."""
        self._set(ProxyMode.DROP, 0.0)

    def blackhole(self) -> None:
        """Keep connections, forward nothing either way until the mode changes."""
        self._set(ProxyMode.BLACKHOLE, 0.0)

    def delay(self, seconds: float) -> None:
        """Deliver every chunk ``seconds`` after it arrived."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0, got {seconds}")
        self._set(ProxyMode.DELAY, float(seconds))

    def set_mode(self, mode: ProxyMode | str, seconds: float = 0.0) -> None:
        """Any mode by name; ``seconds`` is the delay of ``delay``."""
        self._set(ProxyMode(mode), float(seconds))

    def _set(self, mode: ProxyMode, delay: float) -> None:
        if self._loop is None:
            raise ServiceError(f"proxy {self.name} is not running")
        self._call(self._apply(mode, delay))

    async def _apply(self, mode: ProxyMode, delay: float) -> None:
        self._mode, self._delay = mode, delay
        if mode is ProxyMode.DROP:
            for link in list(self._links):
                link.reset()
        self._wake()

    # ---- inside the loop -------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def _wake(self) -> None:
        """Tell every waiting writer that the mode changed."""
        old, self._changed = self._changed, asyncio.Event()
        if old is not None:
            old.set()

    async def _wait_changed(self, timeout: float | None) -> None:
        changed = self._changed
        assert changed is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)

    async def _wait_open(self) -> None:
        """Until the path lets packets through (any mode but blackhole; drop resets us)."""
        while self._mode is ProxyMode.BLACKHOLE:
            await self._wait_changed(None)

    async def _hold(self, arrived: float) -> None:
        """Until a chunk that arrived at ``arrived`` (loop time) may be delivered."""
        loop = asyncio.get_running_loop()
        while True:
            if self._mode is ProxyMode.BLACKHOLE:
                await self._wait_changed(None)
                continue
            remaining = arrived + self.delay_seconds - loop.time()
            if remaining <= 0:
                return
            await self._wait_changed(remaining)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._mode is ProxyMode.DROP:
            self.refused += 1
            _reset(writer)
            return
        link = _Link(self, reader, writer)
        link.task = asyncio.current_task()
        self._links.add(link)
        try:
            await link.run()
        except asyncio.CancelledError:
            pass  # reset by drop() or stop()
        except Exception:  # one broken link must not take the proxy down
            log.exception("proxy %s: link failed", self.name)
        finally:
            self._links.discard(link)

    def __repr__(self) -> str:
        return (
            f"<TcpProxy {self.name} {self.host}:{self.port} -> "
            f"{self.target_host}:{self.target_port} {self._mode.value}>"
        )
