"""Command-line pieces of the responder: ``tradeguard responder`` and ``tradeguard alerts ...``.

The top-level CLI mounts them (``app.command("responder")(responder_command)`` and
``app.add_typer(alerts_app, name="alerts")``); this module does not import it, so the
responder stays below the CLI in the dependency order. ``python -m tradeguard.responder.cli``
runs the ``alerts`` commands on their own.

The query commands talk to a running responder over its HTTP API rather than opening the
history store, so they work against a PostgreSQL-backed or remote responder alike and need only
the token; they read it through :class:`~tradeguard.responder.client.ResponderClient`, whose
failures are one line each. Every failure is one red line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tradeguard.errors import TradeguardError
from tradeguard.metrics.vocabulary import REMEDIATION_AUDIT_ACTIONS, REMEDIATION_OUTCOMES
from tradeguard.net import LOOPBACK
from tradeguard.responder.client import ResponderClient, ResponderUnavailable

DEFAULT_URL = f"http://{LOOPBACK}:9466"

alerts_app = typer.Typer(
    help="Query the alert responder: what is firing, what happened, who took it, how it went.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
_T = TypeVar("_T")
# Piped output (a script, grep) gets wide lines instead of rich's 80-column default, so names
# are never cut; a terminal, or an explicit COLUMNS, keeps its own width.
PIPED_WIDTH = 200


def _out() -> Console:
    console = Console()
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(width=PIPED_WIDTH)


UrlOpt = Annotated[
    str,
    typer.Option("--url", envvar="TRADEGUARD_RESPONDER_URL", help="The responder's base URL."),
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="TRADEGUARD_RESPONDER_TOKEN_FILE",
        help="File holding the bearer token (else TRADEGUARD_RESPONDER_TOKEN).",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TRADEGUARD_RESPONDER_TOKEN",
        help="Bearer token (prefer --token-file or the environment: ps shows arguments).",
        show_envvar=True,
    ),
]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for the responder.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    """One ``error:`` line, never wrapped (a script greps it; a terminal folds it anyway)."""
    err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
    return typer.Exit(code)


def _token(token: str | None, token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            return token_file.read_text().strip() or None
        except OSError as exc:
            raise ResponderUnavailable(
                f"cannot read token file {token_file}: {exc.strerror or exc}"
            ) from None
    return token.strip() if token else None


def _client(
    url: str, token: str | None, token_file: Path | None, timeout: float
) -> ResponderClient:
    """The client for one command; ResponderUnavailable if the token file cannot be read."""
    return ResponderClient(url, _token(token, token_file), token_file=token_file, timeout=timeout)


def _ask(
    url: str,
    token: str | None,
    token_file: Path | None,
    timeout: float,
    call: Callable[[ResponderClient], _T],
) -> _T:
    """One request of a command; a responder that cannot answer ends it with one error line."""
    try:
        with _client(url, token, token_file, timeout) as client:
            return call(client)
    except ResponderUnavailable as exc:
        raise _fail(str(exc)) from None


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


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


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


@alerts_app.command("report")
def report_command(
    days: Annotated[int, typer.Option(min=1, max=90, help="How many days back.")] = 7,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """How well the alerting works: alert rate, MTTA, MTTR, false positives, top alerts."""
    r = _ask(url, token, token_file, timeout, lambda client: client.report(days=days))
    share = r.get("false_positive_share")
    table = Table(title=f"alerting over the last {days} day(s)", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    table.add_row("alert occurrences", str(r["occurrences"]))
    table.add_row("per day / per 8-hour shift", f"{r['per_day']:.1f} / {r['per_shift']:.1f}")
    table.add_row("acknowledged", f"{r['acknowledged']} (never: {r['unacknowledged']})")
    table.add_row("MTTA (notified -> acknowledged)", _seconds(r.get("mtta_seconds")))
    table.add_row("MTTR (started -> resolved)", _seconds(r.get("mttr_seconds")))
    if "mttr_remediated_seconds" in r:  # a responder older than the split leaves these out
        table.add_row(
            "  healed by an action",
            f"{_seconds(r.get('mttr_remediated_seconds'))} ({r['resolved_remediated']} resolved)",
        )
        table.add_row(
            "  without an action",
            f"{_seconds(r.get('mttr_unremediated_seconds'))} "
            f"({r['resolved_unremediated']} resolved)",
        )
        table.add_row("remediated (an action done)", str(r["remediated_occurrences"]))
    table.add_row("false-positive share", "-" if share is None else f"{share:.0%}")
    top = ", ".join(f"{t['alertname']} ({t['occurrences']})" for t in r.get("top", []))
    table.add_row("most frequent", top or "-")
    _out().print(table)


def responder_command(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (0: any free one).")] = None,
    history_url: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///<path> (default) or postgresql://... (a password: leave it to "
            "~/.pgpass, or give the URL by --history-url-file)"
        ),
    ] = None,
    history_url_file: Annotated[
        Path | None,
        typer.Option(help="File holding the history URL (a Docker secret, a 0600 file)."),
    ] = None,
    jsonl_path: Annotated[
        Path | None, typer.Option(help="Also append each notification to this JSONL file.")
    ] = None,
    apprise_urls_file: Annotated[
        Path | None,
        typer.Option(help="File of apprise URLs (one a line) to notify: Slack, e-mail, ..."),
    ] = None,
    pagerduty_routing_key_file: Annotated[
        Path | None,
        typer.Option(help="File holding a PagerDuty Events API v2 routing key: page criticals."),
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="File holding the bearer token Alertmanager sends.")
    ] = None,
    basic_user: Annotated[str | None, typer.Option(help="Basic-auth user name.")] = None,
    basic_password_file: Annotated[
        Path | None, typer.Option(help="File holding the basic-auth password.")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest webhook body accepted (bytes).")
    ] = None,
    console_output: Annotated[
        bool | None,
        typer.Option("--console/--no-console", help="Print each notification on stdout."),
    ] = None,
    watchdog_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds without a Watchdog alert before the responder reports the alert path "
            "broken through its own channels (default 120; 0 turns the dead man's switch off)."
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Accept requests without credentials.")
    ] = False,
) -> None:
    """Run the alert responder (Alertmanager webhook receiver) until SIGINT/SIGTERM.

    Settings not given here come from TRADEGUARD_RESPONDER_* environment variables.
    """
    from tradeguard.responder.service import ResponderServer, load_responder_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = load_responder_settings(
            host=host,
            port=port,
            history_url=history_url,
            history_url_file=history_url_file,
            jsonl_path=jsonl_path,
            apprise_urls_file=apprise_urls_file,
            pagerduty_routing_key_file=pagerduty_routing_key_file,
            token_file=token_file,
            basic_user=basic_user,
            basic_password_file=basic_password_file,
            max_body_bytes=max_body_bytes,
            console=console_output,
            watchdog_timeout_seconds=watchdog_timeout,
            insecure=insecure or None,
        )
        server = ResponderServer(settings)
    except TradeguardError as exc:
        raise _fail(str(exc), code=2) from None
    stop = _stop_event()
    try:
        server.start()
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    _out().print(
        f"responder: webhook at {server.webhook_url}, history in {server.history!r}", markup=False
    )
    stop.wait()
    server.stop()
    _out().print("responder stopped")


def _stop_event() -> threading.Event:
    """An event set by SIGINT or SIGTERM, installed before the server starts."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


if __name__ == "__main__":
    alerts_app()
