"""The effectiveness report's arithmetic (tradeguard.responder.report)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradeguard.responder.history.base import Ack, Occurrence
from tradeguard.responder.report import effectiveness

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def occurrence(
    name: str, at: timedelta, lasted: timedelta | None, acked_after: timedelta | None, fp: bool
) -> Occurrence:
    start = T0 + at
    ack = Ack("f", start, start + acked_after, "ana", fp, "") if acked_after is not None else None
    return Occurrence(
        "f" + name, name, "critical", start, start, start + lasted if lasted else None, ack
    )


def test_rates_means_and_shares() -> None:
    occurrences = [
        occurrence("A", timedelta(hours=1), timedelta(minutes=10), timedelta(minutes=2), False),
        occurrence("A", timedelta(hours=2), timedelta(minutes=20), timedelta(minutes=4), True),
        occurrence("B", timedelta(hours=3), None, None, False),
        occurrence("C", timedelta(days=3), timedelta(minutes=1), None, False),  # outside
    ]
    report = effectiveness(occurrences, T0, T0 + timedelta(days=1))
    assert report.occurrences == 3
    assert report.per_day == 3 and report.per_shift == 1
    assert report.acknowledged == 2 and report.resolved == 2
    assert report.mtta_seconds == 180 and report.mttr_seconds == 900
    assert report.false_positive_share == 0.5
    assert report.top == [("A", 2), ("B", 1)]
    assert [
        (a.alertname, a.occurrences, a.acknowledged, a.false_positives) for a in report.per_alert
    ] == [("A", 2, 2, 1), ("B", 1, 0, 0)]
    assert report.to_json()["alerts"][1] == {
        "alertname": "B",
        "occurrences": 1,
        "acknowledged": 0,
        "false_positives": 0,
    }


def test_nothing_acknowledged_or_resolved_gives_no_means() -> None:
    report = effectiveness(
        [occurrence("A", timedelta(hours=1), None, None, False)], T0, T0 + timedelta(days=7)
    )
    assert report.mtta_seconds is None and report.mttr_seconds is None
    assert report.false_positive_share is None
    assert report.to_json()["unacknowledged"] == 1
