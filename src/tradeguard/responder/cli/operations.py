"""Seed 003's daily and weekly operations: ``alerts status``, ``performance``, ``summary`` and
``optimize``, from Prometheus' rule API and the responder's history."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from tradeguard.redact import redact_url
from tradeguard.responder.cli.common import (
    _SEVERITY_STYLE,
    DEFAULT_URL,
    MAX_SUMMARY_HOURS,
    DaysOpt,
    TimeoutOpt,
    TokenFileOpt,
    TokenOpt,
    UrlOpt,
    _ask,
    _fail,
    _out,
    alerts_app,
)
from tradeguard.responder.client import ResponderClient
from tradeguard.responder.durations import span_text
from tradeguard.responder.history_window import HistoryWindow, fetch_window
from tradeguard.responder.operations import (
    EventRecord,
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
    days: DaysOpt = 7,
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
