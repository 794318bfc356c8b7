"""Per-category throttling (tradeguard.responder.throttle) on a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime

from tradeguard.responder.notification import Notification
from tradeguard.responder.throttle import Throttle, category_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def note(alertname: str, component: str | None, status: str = "firing") -> Notification:
    return Notification(
        status=status,  # type: ignore[arg-type]
        alertname=alertname,
        severity="critical",
        instance="host:1",
        component=component,
        summary="s.",
        description="d",
        runbook_url=None,
        recovered=None,
        fingerprint="ab",
        starts_at=datetime(2026, 1, 1, tzinfo=UTC),
        ends_at=None,
        receiver="r",
    )


def test_categories_follow_the_seed() -> None:
    assert {category_of(c) for c in ("redis", "redis_trade_state", "dragonflydb")} == {"redis"}
    assert {category_of(c) for c in ("trade_engine", "trading_bot")} == {"trade_execution"}
    assert category_of("docker") == "docker"
    assert category_of(None) == "uncategorised"


def test_three_trade_execution_notifications_a_minute_then_held() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    admitted = [throttle.admit(note(f"T{i}", "trade_engine")) for i in range(5)]
    assert [n.alertname if n else None for n in admitted] == ["T0", "T1", "T2", None, None]
    assert throttle.held() == 2
    # Other categories are not affected, and an unlimited one never waits.
    assert all(throttle.admit(note(f"D{i}", "docker")) for i in range(20))
    assert throttle.admit(note("R0", "redis")) is not None


def test_the_next_notification_after_the_window_reports_what_was_held() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    for i in range(5):
        throttle.admit(note(f"T{i}", "trading_bot"))
    clock.now += 59.9
    assert throttle.admit(note("T5", "trade_engine")) is None  # still within the minute
    clock.now += 0.2
    sent = throttle.admit(note("T6", "trade_engine", status="resolved"))
    assert sent is not None and sent.alertname == "T6"
    assert sent.held_back == ("T3 on host:1 firing", "T4 on host:1 firing", "T5 on host:1 firing")
    assert throttle.held() == 0


def test_release_sends_the_newest_held_one_carrying_the_others_once_there_is_room() -> None:
    clock = Clock()
    throttle = Throttle({"redis": 2}, window=10.0, clock=clock)
    for i in range(5):
        throttle.admit(note(f"R{i}", "redis"))
    assert throttle.release() == []  # no room yet
    clock.now += 10.0
    (released,) = throttle.release()
    assert released.alertname == "R4"
    assert released.held_back == ("R2 on host:1 firing", "R3 on host:1 firing")
    assert throttle.release() == [] and throttle.held() == 0


def test_a_long_summary_names_ten_and_counts_the_rest() -> None:
    clock = Clock()
    throttle = Throttle({"redis": 1}, window=10.0, clock=clock)
    for i in range(15):
        throttle.admit(note(f"R{i}", "redis"))
    clock.now += 10.0
    (released,) = throttle.release()
    assert len(released.held_back) == 13
    assert released.headline.endswith("R10 on host:1 firing and 3 more)")
    assert "(+13 held back: R1 on host:1 firing, R2" in released.headline
