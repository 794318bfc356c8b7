"""Render the shipped deploy/ configuration for a local stack, without editing deploy/.

- Prometheus: the shipped prometheus.yml with file_sd paths into the run directory, targets
  for the local ports, and the rule files of the chosen profile (``default`` = the shipped
  rules unchanged; ``fast`` = the same rules with every ``for`` above 30 s capped at 10 s, for
  demos and end-to-end tests that cannot wait minutes).
- Alertmanager: the shipped routing tree, inhibitions and templates, with every receiver
  reduced to the tradeguard responder's webhook on its local port (the native Slack, e-mail
  and PagerDuty receivers stay in the production file), except ``responder-bypass``: it exists
  to reach someone when the responder itself is in trouble, so locally it posts to the stack's
  bypass sink (:mod:`tradeguard.stack.bypass_sink`) and never to the responder. Secrets are
  absolute paths in the run directory; group timers are short so a local alert arrives within
  a second or two, and the ``Watchdog`` route repeats every few seconds, well inside the
  responder's dead man's switch timeout.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from tradeguard.net import LOOPBACK
from tradeguard.responder.runbook_links import absolute_runbooks
from tradeguard.secret_files import ensure_secret
from tradeguard.stack.layout import StackLayout

PROFILES = ("default", "fast")
FAST_FOR_CAP_SECONDS = 10
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# Receivers and routes the production file may carry (each optional: rendering works either way).
BYPASS_RECEIVER = "responder-bypass"
WATCHDOG_RECEIVER = "watchdog"
WATCHDOG_ALERT = "Watchdog"
# Root timers: first notice at once, updates and resolved notices within 2 s.
LOCAL_TIMERS = {"group_wait": "0s", "group_interval": "2s", "repeat_interval": "1h"}
# The Watchdog always fires, so only repeat notices keep the responder's dead man's switch fed.
# With a 2 s group interval a 5 s repeat goes out every 6 s: three chances inside the fast
# profile's 20 s switch timeout. (The root's 1 h repeat would starve the switch after one.)
WATCHDOG_TIMERS = {"group_interval": "2s", "repeat_interval": "5s"}
_WATCHDOG_MATCHER = re.compile(rf"""^\s*alertname\s*=\s*(["']?){WATCHDOG_ALERT}\1\s*$""")


def duration_seconds(text: str) -> float:
    return sum(int(n) * _UNIT[u] for n, u in _DURATION.findall(str(text)))


def render_rules(
    deploy: Path, out_dir: Path, profile: str, runbook_base_url: str | None = None
) -> list[Path]:
    """Copy (default) or adapt (fast) every rule file into ``out_dir``, with absolute runbook
    links when ``runbook_base_url`` is given; return the paths."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sorted((deploy / "prometheus" / "rules").glob("*.rules.yml")):
        dst = out_dir / src.name
        text = src.read_text()
        if runbook_base_url is not None:
            text = absolute_runbooks(text, runbook_base_url)
        if profile == "default":
            dst.write_text(text)
        else:
            doc = yaml.safe_load(text)
            for group in doc.get("groups", []):
                for rule in group.get("rules", []):
                    if "for" in rule and duration_seconds(rule["for"]) > 30:
                        rule["for"] = f"{FAST_FOR_CAP_SECONDS}s"
            dst.write_text(yaml.safe_dump(doc, sort_keys=False, width=100))
        written.append(dst)
    return written


def _targets(addresses: list[tuple[str, dict[str, str]]]) -> list[dict[str, Any]]:
    return [{"targets": [addr], "labels": labels} for addr, labels in addresses]


def render_prometheus(deploy: Path, layout: StackLayout) -> Path:
    """Write prometheus.yml, its targets and rules under ``<run>/prometheus``."""
    base = layout.run_dir / "prometheus"
    targets_dir = base / "targets"
    targets_dir.mkdir(parents=True, exist_ok=True)
    rules = render_rules(deploy, base / "rules", layout.profile, layout.runbook_base_url)
    doc = yaml.safe_load((deploy / "prometheus" / "prometheus.yml").read_text())
    doc["global"]["external_labels"] = {"source": "tradeguard", "env": "local"}
    doc["rule_files"] = [str(p) for p in rules]
    for am in doc["alerting"]["alertmanagers"]:
        am["file_sd_configs"] = [{"files": [str(targets_dir / "alertmanager.yml")]}]
    local = local_targets(layout)
    for job in doc["scrape_configs"]:
        name = job["job_name"]
        path = targets_dir / f"{name}.yml"
        path.write_text(yaml.safe_dump(_targets(local.get(name, [])), sort_keys=False))
        job["file_sd_configs"] = [{"files": [str(path)]}]
    config = base / "prometheus.yml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False, width=100))
    return config


def local_targets(layout: StackLayout) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Job name -> (address, target labels) of every scrape target the local stack runs."""
    return {
        "redis": [
            (f"{LOOPBACK}:{port}", {"layer": layer, "service": "redis"})
            for layer, port in layout.exporter_ports.items()
        ],
        "engine": [
            (f"{LOOPBACK}:{port}", {"service": "engine", "replica": replica})
            for replica, port in layout.engine_ports.items()
        ],
        "responder": [(f"{LOOPBACK}:{layout.responder_port}", {"service": "responder"})],
        "node": [(f"{LOOPBACK}:{layout.node_port}", {"service": "node"})],
        "prometheus": [(f"{LOOPBACK}:{layout.prometheus_port}", {"service": "prometheus"})],
        # Both peers: this file is also Prometheus's Alertmanager discovery, so every peer
        # scraped is a peer alerts are sent to.
        "alertmanager": [
            (f"{LOOPBACK}:{port}", {"service": "alertmanager"})
            for port in layout.alertmanager_ports.values()
        ],
    }


def ensure_token(layout: StackLayout) -> str:
    """The responder's bearer token for this run (created once, mode 0600)."""
    return ensure_secret(layout.token_file)


def ensure_bypass_token(layout: StackLayout) -> str:
    """The bypass sink's own token: a leaked sink token must not let anyone post to the
    responder, nor the other way round."""
    return ensure_secret(layout.bypass_sink_token_file)


def _webhook(url: str, token_file: Path) -> dict[str, Any]:
    return {
        "url": url,
        "send_resolved": True,
        "max_alerts": 0,
        "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}},
    }


def render_alertmanager(deploy: Path, layout: StackLayout) -> Path:
    """Write alertmanager.yml and its templates under ``<run>/alertmanager``."""
    base = layout.run_dir / "alertmanager"
    base.mkdir(parents=True, exist_ok=True)
    ensure_token(layout)
    ensure_bypass_token(layout)
    shutil.copytree(deploy / "alertmanager" / "templates", base / "templates", dirs_exist_ok=True)
    doc = yaml.safe_load((deploy / "alertmanager" / "alertmanager.yml").read_text())
    global_cfg = doc.setdefault("global", {})
    for key in [k for k in global_cfg if k.startswith(("smtp_", "slack_", "pagerduty_"))]:
        del global_cfg[key]
    doc["templates"] = [str(base / "templates" / "*.tmpl")]
    responder = _webhook(f"{layout.responder_url}/alertmanager/webhook", layout.token_file)
    bypass = _webhook(
        f"{layout.bypass_sink_url}/alertmanager/webhook", layout.bypass_sink_token_file
    )
    doc["receivers"] = [
        {
            "name": r["name"],
            # Copies, so the YAML has no anchors: each receiver reads on its own.
            "webhook_configs": [
                copy.deepcopy(bypass if r["name"] == BYPASS_RECEIVER else responder)
            ],
        }
        for r in doc["receivers"]
    ]
    _shorten_timers(doc["route"])
    _ensure_watchdog_route(doc["route"])
    config = base / "alertmanager.yml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False, width=100))
    return config


def is_watchdog_route(route: dict[str, Any]) -> bool:
    """The route that carries the always-firing Watchdog: by receiver name or by its matcher
    (``matchers: ['alertname="Watchdog"']`` in any quoting, or the older ``match:`` map)."""
    if route.get("receiver") == WATCHDOG_RECEIVER:
        return True
    if (route.get("match") or {}).get("alertname") == WATCHDOG_ALERT:
        return True
    return any(_WATCHDOG_MATCHER.match(str(m)) for m in route.get("matchers") or [])


def _routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    """``route`` and every route below it."""
    return [route, *(r for child in route.get("routes") or [] for r in _routes(child))]


def _ensure_watchdog_route(root: dict[str, Any]) -> None:
    """Give the Watchdog its short repeat even when the shipped tree has no route for it.

    Without one the Watchdog takes the root's 1 h repeat and the responder's dead man's switch
    (20 s in the fast profile) trips after the first notice. The added route sends it to the
    root's receiver, where it lands anyway when nothing else matches; ``continue`` keeps every
    other route it may match, so only its timers change.
    """
    if any(is_watchdog_route(r) for r in _routes(root)[1:]):
        return
    root.setdefault("routes", []).insert(
        0,
        {
            "receiver": root["receiver"],
            "matchers": [f'alertname="{WATCHDOG_ALERT}"'],
            "continue": True,
            **WATCHDOG_TIMERS,
        },
    )


def _shorten_timers(route: dict[str, Any], root: bool = True) -> None:
    """Local timers: first notice at once, updates (and resolved notices) within 2 s.

    Set on the root route only; child routes drop their own so they inherit them, except the
    Watchdog route, which keeps a short repeat (:data:`WATCHDOG_TIMERS`).
    """
    for key in ("group_wait", "group_interval", "repeat_interval"):
        route.pop(key, None)
    if root:
        route.update(LOCAL_TIMERS)
    elif is_watchdog_route(route):
        route.update(WATCHDOG_TIMERS)
    for child in route.get("routes", []):
        _shorten_timers(child, root=False)
