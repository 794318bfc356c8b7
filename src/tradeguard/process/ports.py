"""Free loopback ports for child processes.

A port is free when we look and taken when the child binds it a moment later: in between,
anything else may take it. The kernel hands out its *ephemeral* range (``ip_local_port_range``,
32768-60999 by default) to every outgoing connection and every bind to port 0, so a port picked
from that range can be taken by a Redis client's connection or another process's server in the
meantime (seen: a replica failing with "Address already in use"). Ports are therefore picked at
random below the ephemeral range, where the kernel never assigns one on its own, checked by
binding them, and never handed out twice by this process.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

from tradeguard.net import LOOPBACK

LOWEST = 10_000  # below: well-known and registered service ports
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_issued: set[int] = set()
_lock = threading.Lock()
_random = random.SystemRandom()


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _kernel_pick(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that is free now and that the kernel will not assign by itself."""
    top = _ephemeral_start() - 1
    if top - LOWEST < 1_000:  # an unusual ephemeral range leaves no room: let the kernel pick
        return _kernel_pick(host)
    with _lock:
        for _ in range(200):
            port = _random.randint(LOWEST, top)
            if port not in _issued and _bindable(host, port):
                _issued.add(port)
                return port
    return _kernel_pick(host)


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port`` right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
