"""Bring a running local stack onto the restored configuration, and prove that it took.

``tradeguard up`` renders deploy/ into the run directory (:mod:`tradeguard.stack.render`); a
restore renders it again from the restored deploy dir, with the stack's own layout (ports,
profile), removes rendered rule files and templates whose source is gone (Prometheus loads the
rule files it is told to, but Alertmanager loads every template matching its glob), and asks
each server to reload (``POST /-/reload``; the stack starts Prometheus with
``--web.enable-lifecycle``, and Alertmanager always serves it; a stack started before that
flag is given SIGHUP, Prometheus's other way to reload).

Proof, not hope: a reload counts only when the server's own metrics say the last reload
succeeded *after* the request (``*_config_last_reload_successful`` is 1 and its success
timestamp is not older than the request), and when Prometheus's ``/api/v1/rules`` lists
exactly the restored rule files, groups and rules.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tradeguard.configbackup.errors import ReloadError
from tradeguard.process import wait_until
from tradeguard.stack.layout import StackLayout
from tradeguard.stack.processes import same_process

RELOAD_TIMEOUT = 30.0  # a reload re-reads every rule file; on a loaded host it takes seconds
CONFIRM_TIMEOUT = 15.0
RuleSet = dict[tuple[str, str], list[str]]  # (rule file name, group) -> rule names


@dataclass(frozen=True)
class ReloadReport:
    prometheus: str  # one line on what Prometheus loaded
    alertmanagers: tuple[str, ...]  # one line per peer


def rerender(deploy: Path, layout: StackLayout) -> Path:
    """Render deploy/ into the stack's run directory again; the rendered prometheus.yml."""
    from tradeguard.stack.render import render_alertmanager, render_prometheus

    config = render_prometheus(deploy, layout)
    render_alertmanager(deploy, layout)
    base = layout.run_dir
    _prune(base / "prometheus" / "rules", deploy / "prometheus" / "rules", "*.rules.yml")
    _prune(base / "alertmanager" / "templates", deploy / "alertmanager" / "templates", "*")
    return config


def _prune(rendered: Path, source: Path, pattern: str) -> None:
    """Remove rendered files whose source file no longer exists."""
    for path in rendered.glob(pattern):
        if path.is_file() and not (source / path.name).exists():
            path.unlink()


def reload_stack(
    deploy: Path, layout: StackLayout, say: Callable[[str], None] = lambda _m: None
) -> ReloadReport:
    """Re-render, reload both servers and confirm; ReloadError naming what did not take."""
    config = rerender(deploy, layout)
    say(f"  re-rendered {layout.run_dir / 'prometheus'} and {layout.run_dir / 'alertmanager'}")
    expected = rendered_rules(config)
    # Each server is asked even when another failed, so one answer names every problem.
    done: list[str] = []
    failed: list[str] = []
    servers: list[Callable[[], str]] = [
        functools.partial(reload_prometheus, layout, expected),
        *(
            functools.partial(reload_alertmanager, peer, url)
            for peer, url in layout.alertmanager_urls.items()
        ),
    ]
    for reload in servers:
        try:
            done.append(reload())
        except ReloadError as exc:
            failed.append(str(exc))
    if failed:
        raise ReloadError("; ".join(failed) + (f" (reloaded: {'; '.join(done)})" if done else ""))
    return ReloadReport(done[0], tuple(done[1:]))


def rendered_rules(config: Path) -> RuleSet:
    """The rule set ``config`` (a rendered prometheus.yml) loads, as names."""
    doc = yaml.safe_load(config.read_text())
    rules: RuleSet = {}
    for name in doc.get("rule_files") or []:
        path = Path(name)
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups") or []:
            rules[(path.name, str(group["name"]))] = [
                str(r.get("alert") or r.get("record")) for r in group.get("rules") or []
            ]
    return rules


def _metrics(url: str) -> dict[str, float]:
    """The unlabelled samples of ``url``'s /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def _post_reload(url: str) -> httpx.Response:
    try:
        return httpx.post(f"{url}/-/reload", timeout=RELOAD_TIMEOUT)
    except httpx.HTTPError as exc:
        raise ReloadError(f"cannot reach {url} to reload it: {exc}") from None


def _confirm(what: str, url: str, prefix: str, since: float) -> None:
    """Until ``url``'s metrics say the last reload succeeded at or after ``since``."""
    seen: dict[str, float] = {}

    def reloaded() -> bool:
        seen.clear()
        seen.update(_metrics(url))
        if seen.get(f"{prefix}_config_last_reload_successful") == 0:
            return True  # failed: no point waiting, reported below
        stamp = seen.get(f"{prefix}_config_last_reload_success_timestamp_seconds", 0.0)
        return stamp >= math.floor(since)

    try:
        wait_until(reloaded, CONFIRM_TIMEOUT, f"{what} to report the reload", interval=0.2)
    except TimeoutError as exc:
        raise ReloadError(f"{exc} ({url}/metrics)") from None
    if seen.get(f"{prefix}_config_last_reload_successful") != 1:
        raise ReloadError(
            f"{what} says its last reload failed ({prefix}_config_last_reload_successful is "
            f"{seen.get(f'{prefix}_config_last_reload_successful')}); see its log"
        )


def reload_prometheus(layout: StackLayout, expected: RuleSet) -> str:
    url = layout.prometheus_url
    since = time.time()
    reply = _post_reload(url)
    if reply.status_code == 403:  # lifecycle API off: a stack started before it was turned on
        _sighup(layout, "prometheus")
    elif reply.status_code != 200:
        raise ReloadError(
            f"Prometheus refused the reload ({reply.status_code}): {reply.text.strip()[:300]}"
        )
    _confirm("Prometheus", url, "prometheus", since)
    loaded: RuleSet = {}

    def rules_match() -> bool:
        loaded.clear()
        loaded.update(_loaded_rules(url))
        return loaded == expected

    try:
        wait_until(rules_match, CONFIRM_TIMEOUT, "Prometheus to list the restored rules", 0.2)
    except TimeoutError:
        raise ReloadError(
            "Prometheus reloaded, but its /api/v1/rules differs from the restored rules: "
            + _rule_difference(expected, loaded)
        ) from None
    count = sum(len(r) for r in expected.values())
    return (
        f"Prometheus reloaded: {len(expected)} rule groups, {count} rules, as restored "
        "(prometheus_config_last_reload_successful 1)"
    )


def _loaded_rules(url: str) -> RuleSet:
    body: dict[str, Any] = httpx.get(f"{url}/api/v1/rules", timeout=5).json()
    return {
        (Path(group["file"]).name, group["name"]): [r["name"] for r in group["rules"]]
        for group in body["data"]["groups"]
    }


def _rule_difference(expected: RuleSet, loaded: RuleSet) -> str:
    missing = sorted(f"{f}:{g}" for f, g in expected.keys() - loaded.keys())
    extra = sorted(f"{f}:{g}" for f, g in loaded.keys() - expected.keys())
    differ = sorted(
        f"{f}:{g}" for f, g in expected.keys() & loaded.keys() if expected[(f, g)] != loaded[(f, g)]
    )
    parts = [
        f"{label} {', '.join(names)}"
        for label, names in (
            ("missing", missing),
            ("unexpected", extra),
            ("other rules in", differ),
        )
        if names
    ]
    return "; ".join(parts) or "(it could not be read)"


def _sighup(layout: StackLayout, child: str) -> None:
    pid = layout.pids.get(child, 0)
    if not same_process(pid, layout.started.get(child)):
        raise ReloadError(f"{child} of the stack in {layout.run_dir} is not running")
    os.kill(pid, signal.SIGHUP)


def reload_alertmanager(peer: str, url: str) -> str:
    since = time.time()
    reply = _post_reload(url)
    if reply.status_code != 200:
        raise ReloadError(
            f"{peer} refused the reload ({reply.status_code}): {reply.text.strip()[:300]}"
        )
    _confirm(peer, url, "alertmanager", since)
    return f"{peer} reloaded (alertmanager_config_last_reload_successful 1)"
