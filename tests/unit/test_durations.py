"""One way to write a duration for a person, in the commands and the console."""

from __future__ import annotations

import pytest

from tradeguard.responder.durations import span_or_none, span_text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "0s"),
        (0, "0s"),
        (44.6, "45s"),
        (90, "1m30s"),
        (720, "12m"),
        (3600, "1h"),
        (12000, "3h20m"),
        (3 * 86400, "3d"),
        (2 * 86400 + 4 * 3600 + 59, "2d4h"),
    ],
)
def test_the_two_largest_units_the_smaller_dropped_when_zero(seconds: float, text: str) -> None:
    assert span_text(seconds) == text


def test_a_missing_figure_reads_as_a_dash() -> None:
    assert span_or_none(None) == "—" and span_or_none(None, "-") == "-"
    assert span_or_none(61) == "1m01s"
