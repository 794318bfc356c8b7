"""The stack's commands: ``up`` (foreground or detached), ``down``, ``status``, ``check``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tradeguard.errors import TradeguardError
from tradeguard.responder.client import ResponderClient
from tradeguard.stack.layout import StackLayout
from tradeguard.stack.processes import same_process
from tradeguard.stack.stack import Stack
from tradeguard.stack.status import StackStatus, read_stack_status, responder_client


class StackError(TradeguardError):
    """The stack cannot do what was asked (already running, not running, ...)."""


def running_layout(run_dir: Path) -> StackLayout | None:
    layout = StackLayout.load(run_dir)
    if layout is None or not layout.supervisor_pid:
        return None
    if not same_process(layout.supervisor_pid, layout.supervisor_started):
        return None
    return layout


def print_urls(console: Console, layout: StackLayout) -> None:
    table = Table("part", "URL", title="tradeguard stack", title_justify="left")
    for name, url in layout.urls().items():
        table.add_row(name, url)
    console.print(table)


def up(
    console: Console,
    run_dir: Path,
    profile: str,
    shared_redis: bool,
    replicas: int,
    workload: float,
    detach: bool,
) -> int:
    if running_layout(run_dir) is not None:
        raise StackError(f"a stack is already running from {run_dir}; `tradeguard down` first")
    if detach:
        return _up_detached(console, run_dir, profile, shared_redis, replicas, workload)
    layout = StackLayout.allocate(run_dir, profile, shared_redis, replicas, workload)
    stack = Stack(layout)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"starting the stack in {layout.run_dir} (profile {profile}) …")
    t0 = time.monotonic()
    stack.start(progress=lambda msg: console.print(f"  {msg}"))
    console.print(f"stack up in {time.monotonic() - t0:.1f}s")
    print_urls(console, layout)
    console.print("Ctrl-C (or `tradeguard down`) stops everything.")
    reported: set[str] = set()
    try:
        while not stop.wait(1.0):
            for name in stack.dead_children():
                if name not in reported:
                    reported.add(name)
                    code = stack.child(name).returncode
                    console.print(
                        f"[red]{name} exited (code {code})[/]; log {stack.child(name).log_path}"
                    )
    finally:
        console.print("stopping the stack …")
        stack.stop()
        console.print("stopped.")
    return 0


def _up_detached(
    console: Console,
    run_dir: Path,
    profile: str,
    shared_redis: bool,
    replicas: int,
    workload: float,
) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "stack.json").unlink(missing_ok=True)
    log = open(run_dir / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child
    argv = [
        sys.executable,
        "-m",
        "tradeguard.cli",
        "up",
        "--run-dir",
        str(run_dir),
        "--profile",
        profile,
        "--replicas",
        str(replicas),
        "--workload",
        str(workload),
    ]
    if not shared_redis:
        argv.append("--redis-per-layer")
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        layout = StackLayout.load(run_dir)
        if layout is not None and layout.ready:
            print_urls(console, layout)
            console.print(
                f"stack running in the background (supervisor pid {proc.pid}); "
                "`tradeguard status`, `tradeguard down`."
            )
            return 0
        if proc.poll() is not None:
            tail = (run_dir / "supervisor.log").read_text(errors="replace").splitlines()[-25:]
            raise StackError("the stack failed to start:\n" + "\n".join(tail))
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise StackError("the stack did not become ready within 120 s; see supervisor.log")


def down(console: Console, run_dir: Path) -> int:
    layout = StackLayout.load(run_dir)
    if layout is None:
        raise StackError(f"no stack state in {run_dir}; nothing to stop")
    sup = layout.supervisor_pid
    if sup and same_process(sup, layout.supervisor_started):
        os.kill(sup, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while same_process(sup, layout.supervisor_started) and time.monotonic() < deadline:
            time.sleep(0.1)
    # Only the processes this stack started: a PID reused by another process is left alone.
    leftovers = [
        name for name, pid in layout.pids.items() if same_process(pid, layout.started.get(name))
    ]
    for name in leftovers:
        try:
            os.killpg(layout.pids[name], signal.SIGTERM)
        except ProcessLookupError:
            pass
    console.print(
        "stack stopped" + (f" (also stopped {', '.join(leftovers)})" if leftovers else "")
    )
    return 0


def status(console: Console, run_dir: Path) -> int:
    layout = running_layout(run_dir)
    if layout is None:
        console.print(f"no running stack in {run_dir}")
        return 1
    st = read_stack_status(layout)
    children = Table("child", "state", title="processes", title_justify="left")
    for name, alive in st.children.items():
        children.add_row(name, "[green]running[/]" if alive else "[red]exited[/]")
    console.print(children)
    if st.prometheus_error:
        console.print(f"[red]{st.prometheus_error}[/]")
    else:
        targets = Table(
            "job", "instance", "health", "error", title="scrape targets", title_justify="left"
        )
        for t in st.targets:
            colour = "green" if t["health"] == "up" else "red"
            targets.add_row(t["job"], t["instance"], f"[{colour}]{t['health']}[/]", t["error"][:60])
        console.print(targets)
        firing = Table(
            "alert", "severity", "labels", title=f"firing ({len(st.firing)})", title_justify="left"
        )
        for a in st.firing:
            labels = a["labels"]
            extra = ", ".join(
                f"{k}={v}"
                for k, v in labels.items()
                if k not in ("alertname", "severity", "component", "service")
            )
            firing.add_row(labels.get("alertname", "?"), labels.get("severity", ""), extra)
        console.print(firing)
    _print_alertmanagers(console, st)
    _print_responder(console, st)
    _print_bypassed(console, st)
    down_targets = [t for t in st.targets if t["health"] != "up"]
    broken_path = st.alert_path.get("state") == "broken"
    problems = st.dead or down_targets or st.prometheus_error or broken_path
    return 1 if problems or not st.cluster_complete else 0


def _print_alertmanagers(console: Console, st: StackStatus) -> None:
    expected = len(st.alertmanagers)
    peers = Table(
        "peer",
        "URL",
        "cluster",
        "members",
        title=f"Alertmanager cluster ({expected} peers)",
        title_justify="left",
    )
    for name, peer in st.alertmanagers.items():
        if not peer.reachable:
            peers.add_row(name, peer.url, "[red]unreachable[/]", "")
            continue
        colour = "green" if peer.members == expected and peer.cluster_status == "ready" else "red"
        peers.add_row(
            name, peer.url, f"[{colour}]{peer.cluster_status}[/]", f"[{colour}]{peer.members}[/]"
        )
    console.print(peers)


def _print_responder(console: Console, st: StackStatus) -> None:
    """The responder's own view: its alert path (the dead man's switch) and outbox, if it
    reports them (older responders answer /healthz with the status only)."""
    if st.responder is None:
        console.print(f"[red]responder: {escape(st.responder_error)}[/]")
        return
    health = escape(str(st.responder.get("status", "?")))
    line = f"responder: [{'green' if health == 'ok' else 'red'}]{health}[/]"
    path = st.alert_path
    if path:
        state = escape(str(path.get("state", "?")))
        colour = {"ok": "green", "broken": "red"}.get(state, "yellow")
        line += f"; alert path [{colour}]{state}[/]"
        if path.get("since"):
            line += f" since {escape(str(path['since']))}"
        if path.get("last_watchdog_at"):
            line += f", last Watchdog {escape(str(path['last_watchdog_at']))}"
        if path.get("timeout_seconds") is not None:
            line += f" (timeout {path['timeout_seconds']}s)"
    outbox = st.outbox
    if outbox:
        line += "; outbox " + ", ".join(
            f"{key} {escape(str(outbox[key]))}"
            for key in ("pending", "held", "dead")
            if key in outbox
        )
    console.print(line)


def _print_bypassed(console: Console, st: StackStatus) -> None:
    if st.bypass_error:
        console.print(f"[red]{st.bypass_error}[/]")
        return
    if not st.bypassed:
        console.print("around the responder (bypass sink): nothing received")
        return
    table = Table(
        "received",
        "status",
        "alert",
        "labels",
        title="around the responder (bypass sink, newest first)",
        title_justify="left",
    )
    for record in st.bypassed:
        labels = record.get("labels")
        if not isinstance(labels, dict):
            labels = {}
        status = str(record.get("status", "?"))
        extra = ", ".join(
            f"{k}={v}"
            for k, v in labels.items()
            if k not in ("alertname", "component", "service", "env", "source")
        )
        table.add_row(  # the file's text is whatever was posted: no markup from it
            escape(str(record.get("received_at", ""))),
            f"[{'red' if status == 'firing' else 'green'}]{escape(status)}[/]",
            escape(str(record.get("alertname", "?"))),
            escape(extra[:80]),
        )
    console.print(table)


def check(console: Console, prometheus_url: str) -> int:
    """Seed 003's verification: every rule file loaded, no rule in error, every target up."""
    problems: list[str] = []
    try:
        rules: dict[str, Any] = httpx.get(f"{prometheus_url}/api/v1/rules", timeout=5).json()
        targets: dict[str, Any] = httpx.get(f"{prometheus_url}/api/v1/targets", timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise StackError(f"cannot reach Prometheus at {prometheus_url}: {exc}") from None
    files = {g["file"] for g in rules["data"]["groups"]}
    n_rules = 0
    for group in rules["data"]["groups"]:
        for rule in group["rules"]:
            n_rules += 1
            if rule.get("health") not in ("ok", "unknown"):
                problems.append(
                    f"rule {rule.get('name')} in {group['file']}: "
                    f"{rule.get('health')} {rule.get('lastError', '')}"
                )
    for t in targets["data"]["activeTargets"]:
        if t["health"] != "up":
            problems.append(
                f"target {t['labels'].get('job')} {t['labels'].get('instance')} "
                f"is {t['health']}: {t.get('lastError', '')}"
            )
    console.print(
        f"{len(files)} rule files, {n_rules} rules loaded; "
        f"{len(targets['data']['activeTargets'])} targets"
    )
    for p in problems:
        console.print(f"[red]✗[/] {p}")
    if not problems:
        console.print("[green]✓ every rule healthy, every target up[/]")
    return 1 if problems else 0


def alerts_test(console: Console, layout: StackLayout, timeout: float) -> int:
    """Post a uniquely named test alert to Alertmanager; wait for firing, then resolved.

    The responder is asked first, with the stack's token: when it is down or refuses the
    token, ResponderUnavailable says why in one line and no test alert is posted, so none is
    left firing for a responder that cannot take it. The same error, worded the same, ends the
    test if the responder goes away (or its token changes) while it runs.
    """
    from tradeguard.stack.render import ensure_token

    with responder_client(layout, ensure_token(layout), min(timeout, 5.0)) as responder:
        responder.history(limit=1)
        return _alerts_test(console, layout, timeout, responder)


def _alerts_test(
    console: Console, layout: StackLayout, timeout: float, responder: ResponderClient
) -> int:
    """The round trip itself, once ``responder`` has answered an authenticated read."""
    from datetime import UTC, datetime, timedelta

    marker = f"test-{int(time.time())}-{os.getpid()}"
    labels = {
        "alertname": "TradeguardTestAlert",
        "severity": "info",
        "component": "tradeguard",
        "service": "responder",
        "instance": marker,
    }
    annotations = {
        "summary": "Test alert from tradeguard alerts test.",
        "description": f"End-to-end check {marker}.",
    }

    def post(ends: datetime | None) -> None:
        """To every peer, as Prometheus does (peers gossip silences and what they notified, not
        alerts); one accepting is enough, so the test also passes with a peer down."""
        body: dict[str, Any] = {"labels": labels, "annotations": annotations}
        if ends is not None:
            body["endsAt"] = ends.isoformat()
        failures = []
        for url in layout.alertmanager_urls.values():
            try:
                reply = httpx.post(f"{url}/api/v2/alerts", json=[body], timeout=5)
            except httpx.HTTPError as exc:
                failures.append(f"{url} unreachable: {exc}")
                continue
            if reply.status_code != 200:
                failures.append(f"{url} refused it: {reply.status_code} {reply.text[:200]}")
        if len(failures) == len(layout.alertmanager_urls):
            raise StackError("no Alertmanager took the test alert: " + "; ".join(failures))

    def wait_for(status: str, since: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = responder.history(alertname="TradeguardTestAlert", limit=500)
            if any(e["status"] == status and e.get("instance") == marker for e in events):
                return time.monotonic() - since
            time.sleep(0.2)
        return None

    t0 = time.monotonic()
    post(None)
    fired = wait_for("firing", t0)
    if fired is None:
        console.print(f"[red]✗ the test alert did not reach the responder within {timeout}s[/]")
        return 1
    console.print(f"[green]✓[/] firing test alert received by the responder after {fired:.1f}s")
    t1 = time.monotonic()
    post(datetime.now(UTC) - timedelta(seconds=1))
    resolved = wait_for("resolved", t1)
    if resolved is None:
        console.print(f"[red]✗ the resolved notice did not arrive within {timeout}s[/]")
        return 1
    console.print(f"[green]✓[/] resolved notice received after {resolved:.1f}s")
    return 0
