"""The effectiveness report as a page: one shaping for the console's Effectiveness page and
the weekly report file (``tradeguard alerts report --html``), so the two never disagree.

The file is self-contained: its stylesheet is inlined and its charts are inline SVG, so it
opens from a mail attachment or a shared drive with no network and no server behind it.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from tradeguard.responder.console import shaping, svg
from tradeguard.responder.durations import span_or_none
from tradeguard.responder.history.base import Occurrence
from tradeguard.responder.report import EffectivenessReport

HERE = Path(__file__).parent
SHIFTS_SHOWN = 21  # a week of three shifts: beyond that the chart is unreadable


def effectiveness_context(
    report: EffectivenessReport, occurrences: list[Occurrence], days: int
) -> dict[str, Any]:
    """What both renderings of the report show: its figures and their charts."""
    fatigue = report.fatigue
    shifts = [
        (f"{s.label} · {s.operator}" if s.operator else s.label, float(s.alerts))
        for s in fatigue.shifts
    ]
    return {
        "report": report,
        "days": days,
        "fatigue": fatigue,
        "duration_text": span_or_none,
        "per_day": svg.bar_chart(
            shaping.per_day(occurrences, report.since, report.until), "Alerts per day"
        ),
        "per_shift": svg.bar_chart(shifts[-SHIFTS_SHOWN:], "Alerts per shift", label_width=240)
        if len(shifts) <= 3 * SHIFTS_SHOWN
        else None,
        "per_operator": svg.bar_chart(
            [(o.operator, round(o.per_shift, 2)) for o in fatigue.operators],
            "Alerts per shift, by operator",
        )
        if fatigue.operators
        else None,
        "top": svg.bar_chart([(name, float(n)) for name, n in report.top], "Most frequent alerts"),
    }


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


@cache
def _stylesheet() -> str:
    """The console's stylesheet, read once: the file inlines it."""
    return (HERE / "static" / "console.css").read_text(encoding="utf-8")


def report_file(
    report: EffectivenessReport,
    occurrences: list[Occurrence],
    days: int,
    generated_at: datetime,
    roster_problem: str | None = None,
) -> str:
    """The weekly report as one HTML document with its stylesheet and charts inside."""
    css = _stylesheet()
    context = effectiveness_context(report, occurrences, days)
    template = _environment().get_template("report_file.html")
    return template.render(
        **context,
        css=Markup(css),
        generated_at=generated_at,
        roster_problem=roster_problem,
        title=f"Alerting effectiveness, {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}",
    )
