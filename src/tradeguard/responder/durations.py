"""How long, for a person: one way to write a duration across the commands and the console.

The two largest units, the smaller dropped when it is zero: ``45s``, ``5m35s``, ``12m``,
``3h20m``, ``2d4h``. Seconds matter under an hour (an MTTA of 1m30s is not one of 2m), and
stop mattering past it.
"""

from __future__ import annotations

NO_VALUE = "—"


def span_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h{rest // 60:02d}m" if rest // 60 else f"{hours}h"
    days, rest = divmod(seconds, 86400)
    return f"{days}d{rest // 3600}h" if rest // 3600 else f"{days}d"


def span_or_none(seconds: float | None, none: str = NO_VALUE) -> str:
    """:func:`span_text`, or ``none`` for a figure there is not (no acknowledgement yet)."""
    return none if seconds is None else span_text(seconds)
