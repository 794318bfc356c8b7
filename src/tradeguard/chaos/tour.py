"""The demo tour: a stack under a steady workload, a sequence of scenarios, a final table.

Each scenario is injected once its predecessor has fired and been undone; resolutions are
awaited in the background (some rules look back over a 1-5 minute window), bounded by
``resolve_cap``. At the end every published signal is checked against the broker's book and
the result stream: none may be lost or executed twice.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from tradeguard.bus.commands import turn_off, turn_on
from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.bus.signal_stream import SignalStream
from tradeguard.chaos.audit import Audit, RunRecords, audit, drain
from tradeguard.chaos.runner import (
    ResponderView,
    ScenarioResult,
    finish_resolution,
    run_scenario,
    view_for,
)
from tradeguard.chaos.scenarios import SCENARIOS, Scenario, burst_ids, leader_of
from tradeguard.config import Layer
from tradeguard.engine.generator import GeneratorConfig, SignalGenerator
from tradeguard.process import wait_until
from tradeguard.stack.layout import StackLayout
from tradeguard.stack.render import ensure_token
from tradeguard.stack.stack import Stack
from tradeguard.stack.status import read_stack_status


@dataclass(frozen=True)
class WithoutRemediation:
    """A healing scenario run again with its action turned off at run time."""

    firing_for: float  # seconds from the firing notice to a person's undo, still firing then
    resolved_after: float | None  # seconds from that undo to the resolved notice


def _healed_by(result: ScenarioResult) -> str | None:
    """The healing action, and the alert that asked for it when that was another one."""
    if result.healed_by is None or result.healed_for in (None, result.alert):
        return result.healed_by
    return f"{result.healed_by} (for {result.healed_for})"


def _off_cell(off: WithoutRemediation | None) -> str:
    if off is None:
        return "—"
    after = f"{off.resolved_after:.1f}s" if off.resolved_after is not None else "not"
    return f"firing {off.firing_for:.0f}s, resolved {after} after a person acted"


def _table(
    results: list[ScenarioResult],
    pending: str,
    audit_: Audit | None,
    resolve_cap: float = 0.0,
    compared: dict[str, WithoutRemediation] | None = None,
) -> Table:
    columns = ["scenario", "expected alert", "fired after", "resolved after", "healed by"]
    if compared is not None:
        columns.append("remediation off")
    table = Table(
        *columns,
        "notifications",
        "signals lost",
        "signals duplicated",
        title="tradeguard chaos tour",
        title_justify="left",
    )
    for r in results:
        fired = f"{r.fired_after:.1f}s" if r.fired_after is not None else "[red]not caught[/]"
        healed = (
            _healed_by(r)
            or (f"{r.contained_by} (contained)" if r.contained_by else None)
            or (f"gave up on {r.gave_up_on}" if r.gave_up_on else "—")
        )
        if r.healed_after is not None:
            resolved = f"{r.healed_after:.1f}s"
        elif r.resolved_after is not None:
            resolved = f"{r.resolved_after:.1f}s"
        elif r.caught and audit_ is not None:
            resolved = f"[yellow]> {resolve_cap:.0f}s[/]"
        elif r.caught:
            resolved = "[yellow]waiting[/]"
        else:
            resolved = "—"
        lost = str(len(audit_.lost)) if audit_ else "…"
        dup = str(len(audit_.duplicated)) if audit_ else "…"
        cells = [r.name, r.alert, fired, resolved, healed]
        if compared is not None:
            cells.append(_off_cell(compared.get(r.name)))
        table.add_row(*cells, str(r.notifications), lost, dup)
    if pending:
        table.add_row(pending, "…", "[cyan]running[/]", *[""] * (len(columns) - 3), "", "", "")
    return table


def without_remediation(
    stack: Stack, scenario: Scenario, view: ResponderView, healed: ScenarioResult, cap: float
) -> WithoutRemediation | None:
    """``scenario`` again with its action off (the operator's run-time switch): it stays
    firing for longer than it took to heal, until the runner undoes it as a person would."""
    assert scenario.heals_with is not None and healed.healed_after is not None
    redis = make_client(stack.layout.redis_url(Layer.SIGNAL_STREAM))
    turn_off(redis, Keys(), scenario.heals_with)
    try:
        off = run_scenario(
            stack, scenario, view, heal_timeout=healed.healed_after + 15, resolve_timeout=cap
        )
    finally:
        turn_on(redis, Keys(), scenario.heals_with)
    if not off.caught or off.healed_by is not None or off.undone_at is None:
        return None
    return WithoutRemediation(off.undone_at - off.fired_at, off.resolved_after)


def run_tour(
    console: Console,
    run_dir: Path,
    scenarios: list[str],
    rate: float,
    resolve_cap: float,
    min_duration: float = 0.0,
    compare_remediation: bool = False,
) -> int:
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        from tradeguard.errors import ConfigError

        raise ConfigError(f"unknown scenarios {unknown}; see `tradeguard chaos list`")
    if not console.is_terminal:
        console.width = max(console.width, 180)  # the final table is the point of the demo
    layout = StackLayout.allocate(run_dir, profile="fast", replicas=2)
    stack = Stack(layout)
    console.print(
        f"[bold]tradeguard demo[/]: starting the stack in {layout.run_dir} "
        "(profile fast: rule `for` above 30 s capped at 10 s) …"
    )
    t0 = time.monotonic()
    stack.start(progress=lambda m: console.print(f"  {m}"))
    console.print(f"stack up in {time.monotonic() - t0:.1f}s")
    for name, url in layout.urls().items():
        console.print(f"  {name:20s} {url}")
    gen = SignalGenerator(
        SignalStream(make_client(layout.redis_url(Layer.SIGNAL_STREAM), socket_timeout=1), Keys()),
        GeneratorConfig(rate=rate, seed=11),
    )
    gen.start()
    view = ResponderView(layout.responder_url, ensure_token(layout))
    console.print("waiting until Prometheus scrapes every target …")
    wait_until(lambda: _all_targets_up(layout), 60, "every scrape target up")
    results: list[ScenarioResult] = []
    compared: dict[str, WithoutRemediation] | None = {} if compare_remediation else None
    started = time.monotonic()
    resolvers: list[threading.Thread] = []
    final: Audit | None = None
    try:
        with Live(_table(results, "", None), console=console, refresh_per_second=2) as live:
            for name in scenarios:
                scenario = SCENARIOS[name]
                live.update(_table(results, name, None, compared=compared))
                result = run_scenario(stack, scenario, view, wait_resolved=False)
                results.append(result)
                if compared is not None and result.healed_after is not None:
                    pending = f"{name} (remediation off)"
                    live.update(_table(results, pending, None, compared=compared))
                    off = without_remediation(stack, scenario, view, result, resolve_cap)
                    if off is not None:
                        compared[name] = off
                if result.caught and result.healed_after is None:  # healed: resolved already
                    t = threading.Thread(
                        target=finish_resolution,
                        args=(result, view_for(stack, scenario, view), resolve_cap),
                        daemon=True,
                    )
                    t.start()
                    resolvers.append(t)
                live.update(_table(results, "", None, compared=compared))
            while any(t.is_alive() for t in resolvers) or time.monotonic() - started < min_duration:
                live.update(_table(results, "", None, compared=compared))
                time.sleep(0.5)
            report = gen.stop()  # waits for the publish in flight, which the audit must see
            published = report.published + burst_ids(stack)
            with RunRecords.of(layout) as records:
                drain(records, published)
                final = audit(records, published, report.indeterminate)
            live.update(_table(results, "", final, resolve_cap, compared))
    finally:
        gen.stop()
        stack.stop()
    assert final is not None
    caught = sum(r.caught for r in results)
    if not console.is_terminal:
        console.print()  # a live view written to a file or pipe ends without a line break
    console.print(
        f"{caught}/{len(results)} scenarios caught; {final.published} signals "
        f"published, {final.executed} executed, {final.dropped} expired (dead-lettered), "
        f"{len(final.lost)} lost, "
        f"{len(final.duplicated)} executed twice, {len(final.unexpected)} unexpected; "
        f"publish errors surfaced to the caller: {gen.report.errors}"
    )
    for r in results:
        if r.healed_by is not None:
            console.print(
                f"{r.name}: healed by {_healed_by(r)} {r.healed_after:.1f}s after it fired, "
                "nobody undoing the fault"
            )
        if r.gave_up_on is not None:
            console.print(
                f"{r.name}: remediation gave up on {r.gave_up_on} after {r.attempts} attempt(s), "
                f"{r.gave_up_after:.1f}s after it fired (RemediationExhausted)"
            )
        if r.healed_by is None and r.caught and r.resolved_after is None:
            notes = "; ".join(SCENARIOS[r.name].notes) or "still firing"
            console.print(f"{r.name}: not resolved within {resolve_cap:.0f}s of the undo ({notes})")
        if r.error:
            console.print(f"[red]{r.name}: {r.error}[/]")
    ok = caught == len(results) and not (final.lost or final.duplicated or final.unexpected)
    return 0 if ok else 1


def _all_targets_up(layout: StackLayout) -> bool:
    targets = read_stack_status(layout).targets
    return bool(targets) and all(t["health"] == "up" for t in targets)


__all__ = ["audit", "leader_of", "run_tour"]
