"""Some things are defined once: the loopback address, the HTTP readiness check, the Redis
key names.

Two copies of a constant drift apart (one part listening where another no longer looks), so
the package names them in ``tradeguard.net`` only. The bypass sink is the one exception: it is
stdlib-only by design, so that it shares nothing with the responder it stands in for.
"""

from __future__ import annotations

import re
from pathlib import Path

from tradeguard.net import LOOPBACK, http_ok
from tradeguard.process.ports import free_port

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tradeguard"
ALLOWED = {PACKAGE / "net.py", PACKAGE / "stack" / "bypass_sink.py"}


def test_the_loopback_address_is_spelled_in_one_place() -> None:
    spelled = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in ALLOWED
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"[\"']127\.0\.0\.1", line)
    ]
    assert spelled == [], "use tradeguard.net.LOOPBACK"


def test_redis_key_names_come_from_the_key_layout() -> None:
    """Key names are built by ``bus/keys.py`` under the configured prefix; a name spelled out
    elsewhere ignores the prefix and drifts from the layout DESIGN.md documents."""
    spelled = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "config.py"  # DEFAULT_KEY_PREFIX itself
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"[\"']tg:", line)
    ]
    assert spelled == [], "build key names with tradeguard.bus.keys.Keys"


def test_one_readiness_check_definition() -> None:
    defined = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if re.search(r"httpx\.get\([^)]*\)\.status_code == 200", path.read_text())
    ]
    assert defined == ["net.py"]


def test_nothing_listening_is_not_ready() -> None:
    assert not http_ok(f"http://{LOOPBACK}:{free_port()}/healthz")
