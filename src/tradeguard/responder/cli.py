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
import math
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tradeguard.errors import TradeguardError
from tradeguard.metrics.vocabulary import REMEDIATION_AUDIT_ACTIONS, REMEDIATION_OUTCOMES
from tradeguard.net import LOOPBACK
from tradeguard.redact import redact_url
from tradeguard.responder.client import ResponderClient, ResponderUnavailable
from tradeguard.responder.durations import span_or_none, span_text
from tradeguard.responder.history_window import HistoryWindow, fetch_window
from tradeguard.responder.operations import (
    EventRecord,
    MalformedRecord,
    changes_since,
    events_from_json,
    group_firing,
    missing_at_responder,
    occurrences,
    start_of_day,
)
from tradeguard.responder.optimize import (
    ReportTotals,
    Thresholds,
    alert_figures,
    attribute_acks,
    report_totals,
    suggest,
)
from tradeguard.responder.prom_rules import (
    DEFAULT_SLOW_SHARE,
    RuleGroup,
    alerting_rules,
    fetch_rule_groups,
    health_first,
    over_share,
    slowest_groups,
    slowest_rules,
    unhealthy,
)
from tradeguard.responder.prometheus_api import PrometheusUnavailable
from tradeguard.responder.prometheus_url import (
    PROMETHEUS_URL_ENV,
    STACK_RUN_DIR,
    NoPrometheusURL,
    PrometheusTarget,
    resolve_prometheus,
)
from tradeguard.responder.rule_files import find_rules_dir, format_duration, load_rule_locations
from tradeguard.secret_files import replace_private

DEFAULT_URL = f"http://{LOOPBACK}:9466"
MAX_SUMMARY_HOURS = 90 * 24  # the report's longest window

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
    code: int = 1,
) -> _T:
    """One request of a command (or several, made by ``call`` over one client); a responder
    that cannot answer, or answers records of another shape, ends it with one error line and
    exit ``code``."""
    try:
        with _client(url, token, token_file, timeout) as client:
            return call(client)
    except ResponderUnavailable as exc:
        raise _fail(str(exc), code) from None
    except MalformedRecord as exc:
        raise _fail(
            f"the responder at {redact_url(url)} answered an unexpected record: {exc}", code
        ) from None


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


@alerts_app.command("report")
def report_command(
    days: Annotated[int, typer.Option(min=1, max=90, help="How many days back.")] = 7,
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


# ---- daily and weekly operations (seed 003): status, summary, performance, optimize ----------
PrometheusUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--prometheus-url",
        envvar=PROMETHEUS_URL_ENV,
        help="Prometheus' base URL (default: the local stack's, when --run-dir holds one).",
    ),
]
StackDirOpt = Annotated[
    Path,
    typer.Option(
        "--run-dir", help="The local stack's run directory, where its Prometheus is looked up."
    ),
]
OPS_EXIT = 2  # Prometheus or the responder could not be asked, or answered garbage


def _prometheus(
    given: str | None, run_dir: Path, timeout: float
) -> tuple[PrometheusTarget, list[RuleGroup]]:
    """The rule groups of the Prometheus named (or the local stack's); one error line and
    exit 2 when there is none to ask or it cannot answer."""
    try:
        target = resolve_prometheus(given, run_dir)
        return target, fetch_rule_groups(target.url, timeout)
    except (NoPrometheusURL, PrometheusUnavailable) as exc:
        raise _fail(str(exc), OPS_EXIT) from None


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0.0, (now - moment).total_seconds())
    return f"{seconds:.1f}s ago" if seconds < 60 else f"{span_text(seconds)} ago"


def _eval_time(seconds: float) -> str:
    """An evaluation time: rules take microseconds to seconds."""
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f}µs"
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def _interval(seconds: float) -> str:
    return format_duration(seconds) if seconds >= 1 else f"{seconds * 1000:.0f}ms"


_HEALTH_STYLE = {"ok": "green", "err": "bold red", "unknown": "yellow"}
_RULE_STATE_STYLE = {"firing": "bold red", "pending": "yellow", "inactive": "dim"}


@alerts_app.command("status")
def status_command(
    prometheus_url: PrometheusUrlOpt = None,
    run_dir: StackDirOpt = STACK_RUN_DIR,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Prometheus.")] = 5.0,
) -> None:
    """Every alerting rule as Prometheus evaluates it: health, state, last evaluation, error.

    Rules in error come first (a recording rule is listed too when it fails: the alerts built
    on its series are blind). Exit 1 if any rule is not healthy or none is loaded, 2 if
    Prometheus cannot be asked."""
    target, groups = _prometheus(prometheus_url, run_dir, timeout)
    rules = health_first(groups)
    alerting = alerting_rules(groups)
    where = f"Prometheus at {redact_url(target.url)} ({target.source})"
    if not alerting:
        _out().print(f"{where} evaluates no alerting rules: are the rule files loaded?")
        raise typer.Exit(1)
    now = datetime.now(UTC)
    health = Counter(r.health for r in alerting)
    states = Counter(r.state for r in alerting)
    table = Table(
        title=f"{where}: {len(alerting)} alerting rules, "
        + ", ".join(f"{health.get(h, 0)} {h}" for h in ("ok", "err", "unknown"))
        + f"; {states.get('firing', 0)} firing, {states.get('pending', 0)} pending"
    )
    table.add_column("group", overflow="fold")
    table.add_column("rule", overflow="fold")
    for column in ("health", "state", "last evaluation", "took"):
        table.add_column(column, no_wrap=True)
    table.add_column("last error", ratio=1)
    for r in rules:
        state = r.state or "(recording)"
        table.add_row(
            Text(r.group),
            Text(r.name, style="bold"),
            Text(r.health, style=_HEALTH_STYLE.get(r.health, "bold red")),
            Text(state, style=_RULE_STATE_STYLE.get(state, "")),
            _age(r.last_evaluation, now),
            _eval_time(r.evaluation_seconds),
            Text(r.last_error or "-"),
        )
    _out().print(table)
    bad = unhealthy(rules)
    if bad:
        names = ", ".join(f"{r.name} ({r.health})" for r in bad)
        _out().print(Text(f"{len(bad)} rule(s) not healthy: {names}", style="bold red"))
        raise typer.Exit(1)


@alerts_app.command("performance")
def performance_command(
    prometheus_url: PrometheusUrlOpt = None,
    run_dir: StackDirOpt = STACK_RUN_DIR,
    top: Annotated[int, typer.Option(min=1, max=1000, help="How many groups and rules.")] = 10,
    max_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Flag a group whose evaluation takes more than this share of its interval.",
        ),
    ] = DEFAULT_SLOW_SHARE,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Prometheus.")] = 5.0,
) -> None:
    """The slowest rule groups (evaluation time against their interval) and rules.

    Exit 1 if a group's last evaluation took more than --max-share of its interval (its
    evaluations are about to overrun, and Prometheus then skips them), 2 if Prometheus cannot
    be asked."""
    target, groups = _prometheus(prometheus_url, run_dir, timeout)
    where = f"Prometheus at {redact_url(target.url)} ({target.source})"
    if not groups:
        _out().print(f"{where} evaluates no rule groups")
        return
    now = datetime.now(UTC)
    interval_of = {(g.file, g.name): g.interval_seconds for g in groups}
    table = Table(title=f"{where}: the {min(top, len(groups))} slowest of {len(groups)} groups")
    table.add_column("group", overflow="fold")
    table.add_column("file", overflow="fold")
    for column in ("interval", "evaluation", "share of interval", "last evaluation"):
        table.add_column(column, no_wrap=True)
    for g in slowest_groups(groups, top):
        share = g.share
        table.add_row(
            Text(g.name, style="bold"),
            Text(Path(g.file).name),
            _interval(g.interval_seconds),
            _eval_time(g.evaluation_seconds),
            Text(
                "-" if share is None else f"{share:.2%}",
                style="bold red" if share is not None and share > max_share else "",
            ),
            _age(g.last_evaluation, now),
        )
    _out().print(table)
    rules = slowest_rules(groups, top)
    table = Table(title=f"the {len(rules)} slowest rules")
    table.add_column("group", overflow="fold")
    table.add_column("rule", overflow="fold")
    for column in ("type", "evaluation", "share of interval", "health"):
        table.add_column(column, no_wrap=True)
    for r in rules:
        interval = interval_of.get((r.file, r.group), 0.0)
        table.add_row(
            Text(r.group),
            Text(r.name, style="bold"),
            r.kind,
            _eval_time(r.evaluation_seconds),
            f"{r.evaluation_seconds / interval:.2%}" if interval > 0 else "-",
            Text(r.health, style=_HEALTH_STYLE.get(r.health, "bold red")),
        )
    _out().print(table)
    slow = over_share(groups, max_share)
    for g in slow:
        _out().print(
            Text(
                f"slow: group {g.name} ({Path(g.file).name}) took "
                f"{_eval_time(g.evaluation_seconds)} of its {_interval(g.interval_seconds)} "
                f"interval: {g.share or 0.0:.1%}, above {max_share:.0%}",
                style="bold red",
            )
        )
    if slow:
        raise typer.Exit(1)
    worst = slowest_groups(groups, 1)[0]
    _out().print(
        f"no group above {max_share:.0%} of its interval (the slowest, {worst.name}, takes "
        f"{worst.share or 0.0:.2%})"
    )


def _optional_prometheus(
    given: str | None, run_dir: Path, timeout: float
) -> tuple[tuple[PrometheusTarget, list[RuleGroup]] | None, str]:
    """For a command that is useful without Prometheus: its rule groups, or None and why not.

    Prometheus named (option or environment) and not answering ends the command (exit 2), as
    everywhere. One found only through a local stack layout is a guess: a stack stopped long
    ago leaves its layout behind, and its silence is then a note, not a failure."""
    try:
        target = resolve_prometheus(given, run_dir)
    except NoPrometheusURL:
        return None, ""
    try:
        return (target, fetch_rule_groups(target.url, timeout)), ""
    except PrometheusUnavailable as exc:
        if given:
            raise _fail(str(exc), OPS_EXIT) from None
        return None, f"Prometheus not consulted ({target.source}): {exc}"


def _names(counts: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in counts) or "-"


@alerts_app.command("summary")
def summary_command(
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    since_hours: Annotated[
        float | None,
        typer.Option(
            "--since",
            min=0.01,
            max=MAX_SUMMARY_HOURS,
            help="Changes over the last HOURS (default: since UTC midnight).",
        ),
    ] = None,
    prometheus_url: PrometheusUrlOpt = None,
    run_dir: StackDirOpt = STACK_RUN_DIR,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the responder and for Prometheus.")
    ] = 10.0,
) -> None:
    """The day at a glance: what fires now, what started, resolved, was acknowledged today.

    What fires now is grouped by severity and component; the changes are since UTC midnight
    (or over --since HOURS). With a Prometheus (--prometheus-url, or the local stack's) it
    also names the alerts Prometheus fires that never reached the responder. Exit 2 if the
    responder, or a Prometheus named, cannot be asked; a local stack's Prometheus that does
    not answer is a note (the stack may be long gone)."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=since_hours) if since_hours else start_of_day(now)
    days = max(1, math.ceil((now - since) / timedelta(days=1)))
    rules_dir = find_rules_dir()
    names = set(load_rule_locations(rules_dir)) if rules_dir is not None else set()

    def ask(client: ResponderClient) -> tuple[list[EventRecord], HistoryWindow, ReportTotals]:
        firing = events_from_json(client.firing())
        window = fetch_window(client, since, names | {e.alertname for e in firing})
        return firing, window, report_totals(client.report(days=days))

    firing, window, totals = _ask(url, token, token_file, timeout, ask, code=OPS_EXIT)
    prometheus, skipped = _optional_prometheus(prometheus_url, run_dir, timeout)

    out = _out()
    if firing:
        table = Table(title=f"{len(firing)} alert(s) firing now")
        table.add_column("severity", no_wrap=True)
        table.add_column("component", overflow="fold")
        table.add_column("count", justify="right", no_wrap=True)
        table.add_column("alerts", ratio=1)
        for group in group_firing(firing):
            table.add_row(
                Text(group.severity, style=_SEVERITY_STYLE.get(group.severity, "")),
                Text(group.component),
                str(group.count),
                Text(_names(group.alerts)),
            )
        out.print(table)
    else:
        out.print("no alerts firing now")

    changes = changes_since(window.events, since, firing)
    label = "today" if since_hours is None else f"the last {since_hours:g} hour(s)"
    table = Table(title=f"{label}: since {since:%Y-%m-%d %H:%M} UTC", show_header=False)
    table.add_column("change", style="bold", no_wrap=True)
    table.add_column("count", no_wrap=True)
    table.add_column("alerts", ratio=1)
    table.add_row(
        "started firing",
        f"{changes.started_total} ({changes.still_firing} still firing)",
        Text(_names(changes.started)),
    )
    table.add_row("resolved", str(changes.resolved_total), Text(_names(changes.resolved)))
    share = totals.false_positive_share
    table.add_row(
        f"acknowledged (last {days * 24} h)",
        f"{totals.acknowledged} of {totals.occurrences}",
        "the responder counts acknowledgements per occurrence notified in its report's window"
        + ("" if share is None else f"; {share:.0%} marked false positive"),
    )
    out.print(table)
    if not window.complete:
        out.print(
            f"history longer than one page for {', '.join(window.truncated)}: their counts are "
            "lower bounds"
        )
    if skipped:
        out.print(skipped)
    if prometheus is not None:
        target, groups = prometheus
        alerting = alerting_rules(groups)
        firing_there = [
            str(a.labels.get("alertname", r.name))
            for r in alerting
            for a in r.alerts
            if a.state == "firing"
        ]
        pending = sum(1 for r in alerting for a in r.alerts if a.state == "pending")
        in_error = len(unhealthy(alerting))
        out.print(
            f"Prometheus at {redact_url(target.url)} ({target.source}): "
            f"{len(firing_there)} firing, {pending} pending, {in_error} rule(s) not healthy"
        )
        missing = missing_at_responder(firing_there, firing)
        if missing:
            out.print(
                Text(
                    "firing in Prometheus, not at the responder (inhibited, silenced, routed "
                    f"elsewhere or lost): {', '.join(missing)}",
                    style="yellow",
                )
            )


@alerts_app.command("optimize")
def optimize_command(
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    days: Annotated[int, typer.Option(min=1, max=90, help="How many days back.")] = 7,
    rules_dir: Annotated[
        Path | None,
        typer.Option(help="The rule files (default: deploy/prometheus/rules above the cwd)."),
    ] = None,
    flaps: Annotated[
        int, typer.Option(min=1, help="Flapping: fired and resolved more than this many times.")
    ] = Thresholds.flaps,
    min_fired: Annotated[
        int, typer.Option(min=1, help="Never acknowledged: fired at least this many times.")
    ] = Thresholds.unacknowledged,
    false_positive_share: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="False positives: at least this share of the acknowledgements."
        ),
    ] = Thresholds.false_positive_share,
    min_acks: Annotated[
        int, typer.Option(min=1, help="False positives: over at least this many acknowledgements.")
    ] = Thresholds.false_positive_acks,
    long_hours: Annotated[
        float, typer.Option(min=0.01, help="Firing for long: one occurrence at least this long.")
    ] = Thresholds.long_firing_seconds / 3600,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Evidence-based changes to the alert rules, each with its figures and file:line.

    From the alert history of the last --days: alerts that flap (a longer `for`), that nobody
    acknowledges (a lower severity, or removal), that are mostly false positives (a higher
    threshold), that fire for days (not actionable). Exit 2 if the responder cannot be asked.
    """
    thresholds = Thresholds(flaps, min_fired, false_positive_share, min_acks, long_hours * 3600)
    if rules_dir is not None and not rules_dir.is_dir():
        raise _fail(f"--rules-dir {rules_dir} is not a directory", OPS_EXIT)
    rules_dir = rules_dir or find_rules_dir()
    locations = load_rule_locations(rules_dir) if rules_dir is not None else {}

    def ask(client: ResponderClient) -> tuple[ReportTotals, HistoryWindow]:
        totals = report_totals(client.report(days=days))
        return totals, fetch_window(client, totals.since, locations)

    totals, window = _ask(url, token, token_file, timeout, ask, code=OPS_EXIT)
    found = [o for o in occurrences(window.events) if o.notified_at <= totals.until]
    figures = alert_figures(found, totals.until)
    acks = attribute_acks(figures, totals)
    if acks is not None:
        figures = [replace(f, acks=acks.get(f.alertname)) for f in figures]
    suggestions = suggest(figures, locations, thresholds)

    out = _out()
    resolved = sum(f.resolved for f in figures)
    share = totals.false_positive_share
    figures_line = (
        f"over the last {days} day(s), since {totals.since:%Y-%m-%d %H:%M} UTC: "
        f"{len(found)} occurrence(s) of {len(figures)} alert(s), {resolved} resolved, "
        f"{totals.acknowledged} acknowledged"
        + ("" if share is None else f" ({share:.0%} false positive)")
    )
    if not suggestions:
        out.print(f"no suggestions {figures_line}")
    else:
        out.print(figures_line)
        table = Table(title=f"{len(suggestions)} suggestion(s)")
        table.add_column("finding", no_wrap=True)
        table.add_column("alert", overflow="fold")
        table.add_column("rule", overflow="fold")
        table.add_column("evidence", ratio=1)
        table.add_column("suggestion", ratio=2)
        for s in suggestions:
            table.add_row(
                Text(s.kind, style="bold"),
                Text(s.alertname, style="bold"),
                Text(s.rule.where(Path.cwd()) if s.rule is not None else "(no rule file)"),
                Text(s.evidence),
                Text(s.change),
            )
        out.print(table)
    if acks is None:
        out.print(
            "not checked: never-acknowledged and false-positive alerts. The responder reports "
            f"acknowledgements as totals ({totals.acknowledged} of {totals.occurrences} "
            "occurrences) and these cannot be told apart per alert"
            + (
                ""
                if totals.occurrences == len(found)
                else f" (its report counts {totals.occurrences} occurrences, the history "
                f"{len(found)})"
            )
        )
    if rules_dir is None:
        out.print("no rule files found (give --rules-dir): suggestions name no file")
    if not window.complete:
        out.print(
            f"history longer than one page for {', '.join(window.truncated)}: their figures "
            "are lower bounds"
        )


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
    roster_file: Annotated[
        Path | None,
        typer.Option(
            help="The on-call roster (YAML: shifts, rotations, overrides): the report's fatigue "
            "index names the operator on call for each alert. Re-read when it changes."
        ),
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
            roster_file=roster_file,
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
