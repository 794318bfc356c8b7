"""Charts drawn on the server as inline SVG: no chart library to vendor, no script to run,
nothing fetched from a CDN, and a page that reads the same with JavaScript off.

Two shapes cover the console: bars (alerts per day, per shift, top alerts, slowest rules)
and a timeline (when each alert fired and for how long). Every text goes through
Markup's formatter (escaped): alert names and labels come from outside. Each bar and span has a
``<title>``, which browsers show on hover and screen readers read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup

SEVERITY_CLASS = {"critical": "sev-critical", "warning": "sev-warning", "info": "sev-info"}


@dataclass(frozen=True)
class Span:
    """One firing of one alert: from ``start`` to ``end`` (None: still firing)."""

    start: datetime
    end: datetime | None
    severity: str | None
    title: str


def _t(value: object) -> str:
    """``value`` as chart text: characters XML cannot hold (control characters) shown as
    U+FFFD, so a label never breaks the SVG (escaping is the Markup formatter's)."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in str(value))


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}"


def bar_chart(
    bars: Sequence[tuple[str, float]],
    title: str,
    unit: str = "",
    width: int = 640,
    bar_height: int = 22,
    label_width: int = 200,
) -> Markup:
    """Horizontal bars, one row per ``(label, value)``, scaled to the largest value; a chart
    with no bars says so instead of drawing an empty frame."""
    if not bars:
        return Markup('<p class="empty">{}: nothing in this window.</p>').format(_t(title))
    top = max(value for _, value in bars) or 1.0
    plot = width - label_width - 60
    height = bar_height * len(bars) + 8
    rows = []
    for i, (label, value) in enumerate(bars):
        y = 4 + i * bar_height
        length = max(1.0, plot * value / top) if value > 0 else 0.0
        shown = f"{_fmt(value)}{unit}"
        rows.append(
            Markup(
                "<g><title>{label}: {shown}</title>"
                '<text x="{lx}" y="{ty}" class="label" text-anchor="end">{label}</text>'
                '<rect x="{x}" y="{y}" width="{w:.1f}" height="{h}" class="bar"/>'
                '<text x="{vx:.1f}" y="{ty}" class="value">{shown}</text></g>'
            ).format(
                label=_t(label),
                shown=shown,
                lx=label_width - 6,
                ty=y + bar_height * 0.65,
                x=label_width,
                y=y + 2,
                w=length,
                h=bar_height - 6,
                vx=label_width + length + 4,
            )
        )
    return Markup(
        '<svg class="chart" role="img" viewBox="0 0 {w} {h}" aria-label="{t}">'
        "<title>{t}</title>{rows}</svg>"
    ).format(w=width, h=height, t=_t(title), rows=Markup("").join(rows))


def timeline(
    lanes: Sequence[tuple[str, Sequence[Span]]],
    since: datetime,
    until: datetime,
    title: str,
    width: int = 900,
    lane_height: int = 20,
    label_width: int = 220,
) -> Markup:
    """One lane per alert over ``[since, until]``: a block for each firing, coloured by
    severity, running to the right edge while it still fires."""
    if not lanes:
        return Markup('<p class="empty">{}: nothing fired in this window.</p>').format(_t(title))
    span_seconds = max((until - since).total_seconds(), 1.0)
    plot = width - label_width - 10
    height = lane_height * len(lanes) + 24

    def x_of(moment: datetime) -> float:
        offset = (moment - since).total_seconds() / span_seconds
        return label_width + plot * min(max(offset, 0.0), 1.0)

    parts = []
    for i, (label, spans) in enumerate(lanes):
        y = 4 + i * lane_height
        parts.append(
            Markup('<text x="{x}" y="{y}" class="label" text-anchor="end">{label}</text>').format(
                x=label_width - 6, y=y + lane_height * 0.65, label=_t(label)
            )
        )
        for span in spans:
            left = x_of(span.start)
            right = x_of(span.end or until)
            parts.append(
                Markup(
                    '<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{h}" class="span {cls}">'
                    "<title>{title}</title></rect>"
                ).format(
                    x=left,
                    y=y + 2,
                    w=max(right - left, 2.0),
                    h=lane_height - 6,
                    cls=SEVERITY_CLASS.get(span.severity or "", "sev-other"),
                    title=_t(span.title),
                )
            )
    axis_y = height - 6
    parts.append(
        Markup(
            '<text x="{x0}" y="{y}" class="axis">{a}</text>'
            '<text x="{x1}" y="{y}" class="axis" text-anchor="end">{b}</text>'
        ).format(
            x0=label_width,
            x1=width - 10,
            y=axis_y,
            a=since.strftime("%Y-%m-%d %H:%M UTC"),
            b=until.strftime("%Y-%m-%d %H:%M UTC"),
        )
    )
    return Markup(
        '<svg class="chart timeline" role="img" viewBox="0 0 {w} {h}" aria-label="{t}">'
        "<title>{t}</title>{parts}</svg>"
    ).format(w=width, h=height, t=_t(title), parts=Markup("").join(parts))


LINE_CLASSES = ("line-a", "line-b", "line-c", "line-d")


def line_chart(
    lines: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    title: str,
    unit: str = "",
    width: int = 900,
    height: int = 220,
) -> Markup:
    """Lines over time (``(label, [(unix time, value)])``), sharing one time and value axis
    from 0 to the largest value; a legend names each line with its latest value."""
    drawn = [(label, points) for label, points in lines if points]
    if not drawn:
        return Markup('<p class="empty">{}: no data in this window.</p>').format(_t(title))
    times = [t for _, points in drawn for t, _ in points]
    t0, t1 = min(times), max(times)
    top = max(v for _, points in drawn for _, v in points) or 1.0
    left, right, upper, lower = 60, width - 10, 10, height - 40

    def x_of(t: float) -> float:
        return left + (right - left) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)

    def y_of(v: float) -> float:
        return lower - (lower - upper) * (v / top)

    parts = [
        Markup(
            '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" class="axis-line"/>'
            '<text x="{tx}" y="{ty}" class="axis" text-anchor="end">{top}</text>'
            '<text x="{tx}" y="{b}" class="axis" text-anchor="end">0</text>'
        ).format(l=left, r=right, b=lower, tx=left - 4, ty=upper + 10, top=f"{_fmt(top)}{unit}")
    ]
    for i, (label, points) in enumerate(drawn):
        path = " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in points)
        cls = LINE_CLASSES[i % len(LINE_CLASSES)]
        latest = points[-1][1]
        if len(points) == 1:  # a line of one point draws nothing: show the point
            parts.append(
                Markup('<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="dot {cls}"/>').format(
                    x=x_of(points[0][0]), y=y_of(points[0][1]), cls=cls
                )
            )
        parts.append(
            Markup(
                '<polyline points="{p}" class="line {cls}"><title>{label}</title></polyline>'
                '<text x="{x}" y="{y}" class="legend {cls}">{label}: {latest}</text>'
            ).format(
                p=path,
                cls=cls,
                label=_t(label),
                x=left + 200 * i,
                y=height - 8,
                latest=f"{_fmt(latest)}{unit}",
            )
        )
    return Markup(
        '<svg class="chart" role="img" viewBox="0 0 {w} {h}" aria-label="{t}">'
        "<title>{t}</title>{parts}</svg>"
    ).format(w=width, h=height, t=_t(title), parts=Markup("").join(parts))
