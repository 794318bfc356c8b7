"""The responder's records on the terminal: what fires, the history, the delivery outbox, the
remediation audit, and acknowledging."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from tradeguard.metrics.vocabulary import REMEDIATION_AUDIT_ACTIONS, REMEDIATION_OUTCOMES
from tradeguard.responder.cli.common import (
    _SEVERITY_STYLE,
    DEFAULT_URL,
    TimeoutOpt,
    TokenFileOpt,
    TokenOpt,
    UrlOpt,
    _ask,
    _fail,
    _out,
    _when,
    alerts_app,
)


@alerts_app.command("firing")
def firing_command(
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """List the alerts firing now, newest first."""
    alerts = _ask(url, token, token_file, timeout, lambda client: client.firing())
    if not alerts:
        _out().print("no alerts firing")
        return
    table = Table(title=f"{len(alerts)} alert(s) firing")
    # Names and addresses are folded, never cut with an ellipsis: they are what one copies.
    table.add_column("since (UTC)", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    for column in ("alert", "instance", "component"):
        table.add_column(column, overflow="fold")
    table.add_column("summary", ratio=1)
    for a in alerts:
        severity = a.get("severity") or "-"
        table.add_row(
            _when(a.get("starts_at")),
            Text(severity, style=_SEVERITY_STYLE.get(severity, "")),
            Text(a.get("alertname", "?"), style="bold"),
            Text(a.get("instance") or "-"),
            Text(a.get("component") or "-"),
            Text(a.get("annotations", {}).get("summary", "")),
        )
    _out().print(table)


@alerts_app.command("history")
def history_command(
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many events.")] = 50,
    alertname: Annotated[str | None, typer.Option(help="Only this alert.")] = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """List the last stored alert events (firing and resolved), newest first."""
    events = _ask(
        url,
        token,
        token_file,
        timeout,
        lambda client: client.history(alertname=alertname, limit=limit),
    )
    if not events:
        _out().print("no alert events stored" + (f" for {alertname}" if alertname else ""))
        return
    table = Table(title=f"last {len(events)} alert event(s)")
    for column in ("received (UTC)", "status", "severity"):
        table.add_column(column, no_wrap=True)
    for column in ("alert", "instance"):
        table.add_column(column, overflow="fold")
    for column in ("started", "ended"):
        table.add_column(column, no_wrap=True)
    for e in events:
        status = e.get("status", "?")
        severity = e.get("severity") or "-"
        table.add_row(
            _when(e.get("received_at")),
            Text(status.upper(), style="red" if status == "firing" else "green"),
            Text(severity, style=_SEVERITY_STYLE.get(severity, "")),
            Text(e.get("alertname", "?"), style="bold"),
            Text(e.get("instance") or "-"),
            _when(e.get("starts_at")),
            _when(e.get("ends_at")),
        )
    _out().print(table)


_STATE_STYLE = {
    "sent": "green",
    "merged": "dim",
    "pending": "yellow",
    "held": "cyan",
    "dead": "bold red",
}
NOTIFICATION_STATES = ("pending", "held", "sent", "merged", "dead")


@alerts_app.command("notifications")
def notifications_command(
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many deliveries.")] = 50,
    state: Annotated[
        list[str] | None,
        typer.Option(
            help="Only deliveries in this state (repeatable): pending (waiting or retrying), "
            "held (throttled), sent, merged (reported inside another's summary), dead (given "
            "up)."
        ),
    ] = None,
    failures: Annotated[
        bool, typer.Option("--failures", help="Only deliveries that failed at least once.")
    ] = False,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """List notification deliveries per channel, newest first: what went out, what waits,
    what failed and why."""
    for name in state or []:
        if name not in NOTIFICATION_STATES:
            raise _fail(f"--state must be one of {', '.join(NOTIFICATION_STATES)}, got {name!r}")
    page = _ask(
        url,
        token,
        token_file,
        timeout,
        lambda client: client.notifications(limit=limit, states=state or ()),
    )
    rows = page.rows
    if failures:
        rows = [r for r in rows if r.get("last_error") or r.get("state") == "dead"]
    totals = page.totals
    summary = ", ".join(f"{totals.get(k, 0)} {k}" for k in ("pending", "held", "dead"))
    if not rows:
        _out().print(f"no notification deliveries to show (outbox: {summary})")
        return
    table = Table(title=f"last {len(rows)} deliveries (outbox: {summary})")
    for column in ("created (UTC)", "channel", "state", "tries"):
        table.add_column(column, no_wrap=True)
    table.add_column("alert", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("last error / next try", ratio=1)
    for r in rows:
        st = r.get("state", "?")
        severity = r.get("severity") or "-"
        note = r.get("last_error") or ""
        if st == "pending" and r.get("attempts"):
            note = f"{note} (next try {_when(r.get('next_attempt_at'))})"
        elif st == "merged" and r.get("carried_by"):
            note = f"reported in the summary of #{r['carried_by']}"
        table.add_row(
            _when(r.get("created_at")),
            Text(r.get("channel", "?")),
            Text(st, style=_STATE_STYLE.get(st, "")),
            str(r.get("attempts", 0)),
            Text(r.get("alertname", "?"), style="bold"),
            r.get("status", "?"),
            Text(severity, style=_SEVERITY_STYLE.get(severity, "")),
            Text(note),
        )
    _out().print(table)


_OUTCOME_STYLE = {
    "done": "green",
    "pending": "yellow",
    "dry_run": "cyan",
    "not_applicable": "dim",
    "refused": "red",
    "failed": "bold red",
    "timed_out": "bold red",
    "exhausted": "bold red",
}


def _took(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


@alerts_app.command("actions")
def actions_command(
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many decisions.")] = 50,
    action: Annotated[
        str | None,
        typer.Option(help=f"Only this action: {', '.join(REMEDIATION_AUDIT_ACTIONS)}."),
    ] = None,
    outcome: Annotated[
        str | None,
        typer.Option(help=f"Only this outcome: {', '.join(REMEDIATION_OUTCOMES)}."),
    ] = None,
    alertname: Annotated[str | None, typer.Option(help="Only for this alert.")] = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """List remediation decisions, newest first: which alert, which action on which target,
    who decided, why, and what came of it."""
    if action is not None and action not in REMEDIATION_AUDIT_ACTIONS:
        raise _fail(
            f"--action must be one of {', '.join(REMEDIATION_AUDIT_ACTIONS)}, got {action!r}"
        )
    if outcome is not None and outcome not in REMEDIATION_OUTCOMES:
        raise _fail(f"--outcome must be one of {', '.join(REMEDIATION_OUTCOMES)}, got {outcome!r}")
    rows = _ask(
        url,
        token,
        token_file,
        timeout,
        lambda client: client.actions(
            limit=limit, action=action, outcome=outcome, alertname=alertname
        ),
    )
    if not rows:
        _out().print("no remediation decisions recorded")
        return
    table = Table(title=f"last {len(rows)} remediation decision(s)")
    table.add_column("decided (UTC)", no_wrap=True)
    table.add_column("alert", overflow="fold")
    table.add_column("action", overflow="fold")
    table.add_column("target", overflow="fold")
    table.add_column("try", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("took", no_wrap=True)
    table.add_column("by", overflow="fold")
    table.add_column("reason / detail", ratio=1)
    for r in rows:
        result = r.get("outcome", "?")
        why = " / ".join(str(t) for t in (r.get("reason"), r.get("detail")) if t)
        table.add_row(
            _when(r.get("decided_at")),
            Text(r.get("alertname", "?"), style="bold"),
            Text(r.get("action", "?")),
            Text(r.get("target") or "-"),
            str(r.get("attempt", "?")),
            r.get("verdict", "?"),
            Text(result, style=_OUTCOME_STYLE.get(result, "")),
            _took(r.get("duration_seconds")),
            Text(r.get("decided_by", "?")),
            Text(why),
        )
    _out().print(table)


@alerts_app.command("ack")
def ack_command(
    fingerprint: Annotated[str, typer.Argument(help="The alert's fingerprint (alerts firing).")],
    by: Annotated[str, typer.Option(help="Who takes charge (name or handle).")],
    false_positive: Annotated[
        bool, typer.Option("--false-positive", help="Mark it a false positive: nothing was wrong.")
    ] = False,
    note: Annotated[str, typer.Option(help="A word for the next person.")] = "",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Acknowledge an alert's newest occurrence (the first acknowledgement counts for MTTA)."""
    ack = _ask(
        url,
        token,
        token_file,
        timeout,
        lambda client: client.acknowledge(
            fingerprint, by, false_positive=false_positive, note=note
        ),
    )
    verdict = " as a false positive" if ack.get("false_positive") else ""
    _out().print(
        f"acknowledged {ack['fingerprint']} (started {_when(ack.get('starts_at'))}) "
        f"by {ack['acked_by']} at {_when(ack.get('acked_at'))}{verdict}"
    )
