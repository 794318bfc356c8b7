"""Render the shipped deploy/ configuration for a local stack, without editing deploy/.

- Prometheus: the shipped prometheus.yml with file_sd paths into the run directory, targets
  for the local ports, and the rule files of the chosen profile (``default`` = the shipped
  rules unchanged; ``fast`` = the same rules with every ``for`` above 30 s capped at 10 s, for
  demos and end-to-end tests that cannot wait minutes).
- Alertmanager: the shipped routing tree, inhibitions and templates, with every receiver
  reduced to the tradeguard responder's webhook on its local port (the native Slack, e-mail
  and PagerDuty receivers stay in the production file), secrets as absolute paths in the run
  directory, and short group timers so a local alert arrives within a second or two.
"""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import yaml

from tradeguard.stack.layout import LOOPBACK, StackLayout

PROFILES = ("default", "fast")
FAST_FOR_CAP_SECONDS = 10
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(text: str) -> float:
    return sum(int(n) * _UNIT[u] for n, u in _DURATION.findall(str(text)))


def render_rules(deploy: Path, out_dir: Path, profile: str) -> list[Path]:
    """Copy (default) or adapt (fast) every rule file into ``out_dir``; return the paths."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sorted((deploy / "prometheus" / "rules").glob("*.rules.yml")):
        dst = out_dir / src.name
        if profile == "default":
            shutil.copyfile(src, dst)
        else:
            doc = yaml.safe_load(src.read_text())
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
    rules = render_rules(deploy, base / "rules", layout.profile)
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
        "alertmanager": [(f"{LOOPBACK}:{layout.alertmanager_port}", {"service": "alertmanager"})],
    }


def ensure_token(layout: StackLayout) -> str:
    """The responder's bearer token for this run (created once, mode 0600)."""
    path = layout.token_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def render_alertmanager(deploy: Path, layout: StackLayout) -> Path:
    """Write alertmanager.yml and its templates under ``<run>/alertmanager``."""
    base = layout.run_dir / "alertmanager"
    base.mkdir(parents=True, exist_ok=True)
    ensure_token(layout)
    shutil.copytree(deploy / "alertmanager" / "templates", base / "templates", dirs_exist_ok=True)
    doc = yaml.safe_load((deploy / "alertmanager" / "alertmanager.yml").read_text())
    global_cfg = doc.setdefault("global", {})
    for key in [k for k in global_cfg if k.startswith(("smtp_", "slack_", "pagerduty_"))]:
        del global_cfg[key]
    doc["templates"] = [str(base / "templates" / "*.tmpl")]
    webhook = {
        "url": f"http://{LOOPBACK}:{layout.responder_port}/alertmanager/webhook",
        "send_resolved": True,
        "max_alerts": 0,
        "http_config": {
            "authorization": {"type": "Bearer", "credentials_file": str(layout.token_file)}
        },
    }
    doc["receivers"] = [
        {"name": r["name"], "webhook_configs": [dict(webhook)]} for r in doc["receivers"]
    ]
    _shorten_timers(doc["route"])
    config = base / "alertmanager.yml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False, width=100))
    return config


def _shorten_timers(route: dict[str, Any], root: bool = True) -> None:
    """Local timers: first notice at once, updates (and resolved notices) within 2 s.

    Set on the root route only; child routes drop their own so they inherit them.
    """
    for key in ("group_wait", "group_interval", "repeat_interval"):
        route.pop(key, None)
    if root:
        route.update({"group_wait": "0s", "group_interval": "2s", "repeat_interval": "1h"})
    for child in route.get("routes", []):
        _shorten_timers(child, root=False)
