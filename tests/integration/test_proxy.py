"""The fault proxy: each mode against a plain echo server, then against a real redis-server."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from tcp_proxy import ProxyMode, TcpProxy

from tradeguard.bus.connection import make_client
from tradeguard.process import wait_until
from tradeguard.process.services import RedisServer


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[TcpProxy]:
    with TcpProxy(echo_port, name="echo") as p:
        yield p


def connect(proxy: TcpProxy, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=timeout)


def roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("closed by the proxy")
        got += chunk
    return got


def test_pass_forwards_both_ways(proxy: TcpProxy) -> None:
    assert proxy.mode is ProxyMode.PASS and proxy.port != 0
    with connect(proxy) as sock:
        assert roundtrip(sock, b"hello") == b"hello"
        big = bytes(range(256)) * 2000  # several chunks each way
        assert roundtrip(sock, big) == big
        wait_until(lambda: proxy.connections == 1, 2, "the link to be registered")
    wait_until(lambda: proxy.connections == 0, 2, "the link to be gone once the client closed")
    assert proxy.bytes_forwarded >= 2 * (5 + len(big))


def test_drop_resets_open_connections_and_refuses_new_ones(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        assert roundtrip(sock, b"before") == b"before"
        proxy.drop()
        with pytest.raises(OSError):  # ECONNRESET (or EPIPE) at once, no timeout needed
            roundtrip(sock, b"after")
    # Refused: the reset may come during the handshake or on the first exchange.
    with pytest.raises(OSError), connect(proxy) as sock:
        roundtrip(sock, b"new")
    assert proxy.refused >= 1
    proxy.pass_through()
    with connect(proxy) as sock:
        assert roundtrip(sock, b"healed") == b"healed"


def test_blackhole_forwards_nothing_then_delivers_what_it_held(proxy: TcpProxy) -> None:
    with connect(proxy, timeout=0.3) as sock:
        assert roundtrip(sock, b"x") == b"x"
        proxy.blackhole()
        sock.sendall(b"held")
        with pytest.raises(TimeoutError):  # silent: only the client's timeout notices
            sock.recv(16)
        with connect(proxy, timeout=0.3) as fresh:  # still accepted, as a kernel would
            fresh.sendall(b"fresh")
            with pytest.raises(TimeoutError):
                fresh.recv(16)
            proxy.pass_through()
            fresh.settimeout(2)
            assert fresh.recv(16) == b"fresh"
        sock.settimeout(2)
        assert sock.recv(16) == b"held"  # delivered in order when the path healed


def test_delay_applies_each_way(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        proxy.delay(0.15)
        assert proxy.delay_seconds == 0.15
        start = time.monotonic()
        assert roundtrip(sock, b"slow") == b"slow"
        took = time.monotonic() - start
        assert 0.3 <= took < 1.5, took
        proxy.set_mode("pass")
        start = time.monotonic()
        assert roundtrip(sock, b"fast") == b"fast"
        assert time.monotonic() - start < 0.15  # no delay left (a delayed one takes 0.3 s)
    with pytest.raises(ValueError):
        proxy.delay(-1)


def test_modes_against_a_real_redis(redis_server: RedisServer) -> None:
    with TcpProxy(redis_server.port, name="redis") as p:
        client = make_client(f"redis://{p.host}:{p.port}/0", socket_timeout=0.3, retries=0)
        assert client.ping()
        p.drop()
        start = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        assert time.monotonic() - start < 0.3  # a reset, not a timeout
        p.blackhole()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        p.delay(0.1)
        start = time.monotonic()
        assert client.ping()
        assert time.monotonic() - start >= 0.2
        p.pass_through()
        assert client.set("k", "v") and client.get("k") == b"v"
        client.close()
    assert p.connections == 0


def test_a_dead_target_resets_the_client(tmp_path: object) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # bound, never listening: connections refused
        # The reset may come during the handshake or on the first exchange.
        with TcpProxy(dead_port, name="dead") as p, pytest.raises(OSError), connect(p) as sock:
            roundtrip(sock, b"anyone?")
