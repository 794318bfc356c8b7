"""``tradeguard alerts report``: the effectiveness report as a table, or as one self-contained
HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tradeguard.responder.cli.common import (
    DEFAULT_URL,
    DaysOpt,
    TimeoutOpt,
    TokenFileOpt,
    TokenOpt,
    UrlOpt,
    _ask,
    _fail,
    _out,
    alerts_app,
    err,
)
from tradeguard.responder.durations import span_or_none
from tradeguard.secret_files import replace_private


@alerts_app.command("report")
def report_command(
    days: DaysOpt = 7,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 10.0,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Write the report as one self-contained HTML file (charts inside, no network "
            "needed to open it) instead of printing it.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """How well the alerting works: alert rate, MTTA, MTTR, false positives, top alerts, and
    the fatigue index (alerts per operator per shift, by the responder's on-call roster)."""
    if html is not None:
        page = _ask(url, token, token_file, timeout, lambda client: client.report_html(days=days))
        try:
            replace_private(html, page)
        except OSError as exc:
            raise _fail(f"cannot write {html}: {exc.strerror or exc}") from None
        err.print(f"wrote the report of the last {days} day(s) to {html} ({len(page)} bytes)")
        return
    r = _ask(url, token, token_file, timeout, lambda client: client.report(days=days))
    share = r.get("false_positive_share")
    table = Table(title=f"alerting over the last {days} day(s)", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    table.add_row("alert occurrences", str(r["occurrences"]))
    table.add_row("per day / per 8-hour shift", f"{r['per_day']:.1f} / {r['per_shift']:.1f}")
    table.add_row("acknowledged", f"{r['acknowledged']} (never: {r['unacknowledged']})")
    table.add_row("MTTA (notified -> acknowledged)", span_or_none(r.get("mtta_seconds"), "-"))
    table.add_row("MTTR (started -> resolved)", span_or_none(r.get("mttr_seconds"), "-"))
    if "mttr_remediated_seconds" in r:  # a responder older than the split leaves these out
        table.add_row(
            "  healed by an action",
            f"{span_or_none(r.get('mttr_remediated_seconds'), '-')} "
            f"({r['resolved_remediated']} resolved)",
        )
        table.add_row(
            "  without an action",
            f"{span_or_none(r.get('mttr_unremediated_seconds'), '-')} "
            f"({r['resolved_unremediated']} resolved)",
        )
        table.add_row("remediated (an action done)", str(r["remediated_occurrences"]))
    table.add_row("false-positive share", "-" if share is None else f"{share:.0%}")
    top = ", ".join(f"{t['alertname']} ({t['occurrences']})" for t in r.get("top", []))
    table.add_row("most frequent", top or "-")
    _fatigue_rows(table, r.get("fatigue"))
    _out().print(table)


def _fatigue_rows(table: Table, fatigue: object) -> None:
    """The fatigue index's rows: one per operator, the most tired first."""
    if not isinstance(fatigue, dict):  # a responder older than the roster
        return
    if not fatigue.get("roster"):
        table.add_row("alerts per operator per shift", "- (no on-call roster configured)")
        return
    operators = [o for o in fatigue.get("operators", []) if isinstance(o, dict)]
    if not operators:
        table.add_row("alerts per operator per shift", "- (nobody on call in the window)")
    for i, o in enumerate(operators):
        busiest = (
            f"; busiest {o['busiest_shift']}: {o['busiest_shift_alerts']}"
            if o.get("busiest_shift")
            else ""
        )
        table.add_row(
            "alerts per operator per shift" if i == 0 else "",
            f"{o['operator']}: {o['alerts_per_shift']:.1f} "
            f"({o['alerts']} in {o['shifts']} shift(s){busiest})",
        )
    if fatigue.get("nobody_on_call"):
        table.add_row("with nobody on call", str(fatigue["nobody_on_call"]))
