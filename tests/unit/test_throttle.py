"""Per-category throttling (tradeguard.responder.throttle) on a clock the test moves."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from tradeguard.responder.notification import HELD_BACK_KEPT, Notification
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


def test_three_trade_execution_notifications_a_minute_per_channel() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    for _ in range(3):
        assert throttle.has_room("chat", "trade_execution")
        throttle.record("chat", "trade_execution")
    assert not throttle.has_room("chat", "trade_execution")
    assert throttle.has_room("mail", "trade_execution"), "another channel has its own window"
    assert throttle.has_room("chat", "redis")
    assert throttle.has_room("chat", "docker"), "a category without a limit is never full"
    clock.now += 59.9
    assert not throttle.has_room("chat", "trade_execution")
    clock.now += 0.2
    assert throttle.has_room("chat", "trade_execution")


def test_deliveries_recorded_from_the_outbox_after_a_restart_count_in_the_window() -> None:
    clock = Clock()
    throttle = Throttle({"redis": 2}, window=10.0, clock=clock)
    throttle.record("chat", "redis", at=clock.now - 2)
    throttle.record("chat", "redis", at=clock.now - 9)  # out of order, as a query returns them
    assert not throttle.has_room("chat", "redis")
    clock.now += 1.5
    assert throttle.has_room("chat", "redis")


def test_a_summary_carries_what_was_held_and_its_highest_severity() -> None:
    warning = replace(note("W", "trade_engine"), severity="warning")
    held = [note("C1", "trade_engine"), replace(note("I", "trade_engine"), severity="info")]
    summary = warning.carrying(held)
    assert summary.severity == "critical"
    assert summary.held_back == ("C1 on host:1 firing", "I on host:1 firing")
    assert summary.headline.startswith("FIRING [critical] W on host:1")
    assert summary.headline.endswith("(+2 held back: C1 on host:1 firing, I on host:1 firing)")
    assert warning.carrying([]) is warning


def test_a_long_summary_names_ten_and_counts_the_rest() -> None:
    held = [note(f"R{i}", "redis") for i in range(13)]
    released = note("R14", "redis").carrying(held)
    assert len(released.held_back) == 13
    assert released.headline.endswith("R9 on host:1 firing and 3 more)")
    assert "(+13 held back: R0 on host:1 firing, R1" in released.headline


def test_held_lists_are_capped_but_counted() -> None:
    held = [note(f"R{i}", "redis") for i in range(HELD_BACK_KEPT + 50)]
    released = note("last", "redis").carrying(held)
    assert len(released.held_back) == HELD_BACK_KEPT
    assert released.held_back_total == HELD_BACK_KEPT + 50
    assert f"(+{HELD_BACK_KEPT + 50} held back:" in released.headline


def test_a_notification_survives_the_outbox_round_trip() -> None:
    original = replace(note("A", "redis"), labels={"alertname": "A", "x": "ü"})
    assert Notification.from_json(original.to_json()) == original
