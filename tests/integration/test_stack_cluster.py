"""The local stack's alert path: two Alertmanager peers in one cluster, Prometheus sending to
both, and the bypass sink that takes the alerts about the responder itself.

One real stack (fast profile) on a copy of deploy/ whose alertmanager.yml carries the
``responder-bypass`` and ``watchdog`` receivers and routes (added here if the shipped file lacks
them). The rendering tests cover the file as shipped, with those routes and without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tradeguard.process import wait_until
from tradeguard.process.services import require_binary
from tradeguard.rulecheck.paths import find_repo_root
from tradeguard.rulecheck.routing import amtool_receivers
from tradeguard.stack.layout import StackLayout
from tradeguard.stack.render import (
    BYPASS_RECEIVER,
    WATCHDOG_RECEIVER,
    WATCHDOG_TIMERS,
    is_watchdog_route,
    render_alertmanager,
)
from tradeguard.stack.stack import FAST_WATCHDOG_TIMEOUT_SECONDS, Stack
from tradeguard.stack.status import read_stack_status

pytestmark = pytest.mark.integration

DEPLOY = find_repo_root(Path(__file__).parent) / "deploy"
PEERS = ("alertmanager-1", "alertmanager-2")
WEBHOOK = "/alertmanager/webhook"


# ---- a deploy/ copy with the bypass and watchdog routes ----------------------------------------
def _routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    return [route, *(r for child in route.get("routes", []) for r in _routes(child))]


def extend_alertmanager_config(path: Path) -> None:
    """Add ``responder-bypass`` and ``watchdog`` (receivers and routes) unless already there,
    as the production file is to carry them: native integrations, production timers."""
    doc = yaml.safe_load(path.read_text())
    names = {r["name"] for r in doc["receivers"]}
    routes = doc["route"].setdefault("routes", [])
    if WATCHDOG_RECEIVER not in names:
        doc["receivers"].append(
            {"name": WATCHDOG_RECEIVER, "webhook_configs": doc["receivers"][0]["webhook_configs"]}
        )
    if not any(is_watchdog_route(r) for r in _routes(doc["route"])[1:]):
        routes.insert(
            0,
            {
                "receiver": WATCHDOG_RECEIVER,
                "matchers": ['alertname="Watchdog"'],
                "group_interval": "10s",
                "repeat_interval": "30s",
            },
        )
    if BYPASS_RECEIVER not in names:
        doc["receivers"].append(
            {
                "name": BYPASS_RECEIVER,
                "pagerduty_configs": [
                    {"routing_key_file": "secrets/pagerduty-routing-key", "send_resolved": True}
                ],
            }
        )
    if not any(r.get("receiver") == BYPASS_RECEIVER for r in _routes(doc["route"])):
        routes.insert(
            0,
            {
                "receiver": BYPASS_RECEIVER,
                "matchers": ['component="meta"', 'service="responder"'],
                "continue": True,
            },
        )
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def strip_alertmanager_config(path: Path) -> None:
    """Remove ``responder-bypass`` and ``watchdog`` (receivers and routes), as before them."""
    doc = yaml.safe_load(path.read_text())
    gone = {BYPASS_RECEIVER, WATCHDOG_RECEIVER}
    doc["receivers"] = [r for r in doc["receivers"] if r["name"] not in gone]
    for route in _routes(doc["route"]):
        route["routes"] = [
            r
            for r in route.get("routes", [])
            if r.get("receiver") not in gone and not is_watchdog_route(r)
        ]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _deploy_copy(tmp_path_factory: pytest.TempPathFactory, change: Any) -> Path:
    deploy = tmp_path_factory.mktemp("deploy") / "deploy"
    shutil.copytree(DEPLOY, deploy)
    change(deploy / "alertmanager" / "alertmanager.yml")
    return deploy


@pytest.fixture(scope="module")
def extended_deploy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _deploy_copy(tmp_path_factory, extend_alertmanager_config)


@pytest.fixture(scope="module")
def stripped_deploy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _deploy_copy(tmp_path_factory, strip_alertmanager_config)


VARIANTS = ["as-shipped", "without-bypass-and-watchdog", "with-bypass-and-watchdog"]


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest, extended_deploy: Path, stripped_deploy: Path) -> Path:
    """A deploy/ directory: the repository's, or a copy without or with the two routes."""
    return {
        "as-shipped": DEPLOY,
        "without-bypass-and-watchdog": stripped_deploy,
        "with-bypass-and-watchdog": extended_deploy,
    }[request.param]


def source_config(deploy: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (deploy / "alertmanager" / "alertmanager.yml").read_text()
    )
    return loaded


def amtool_check(config: Path) -> None:
    run = subprocess.run(
        [require_binary("amtool"), "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def receivers_by_name(config: Path) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in yaml.safe_load(config.read_text())["receivers"]}


# ---- rendering, no processes -----------------------------------------------------------------
def test_rendered_alertmanager_config_routes_the_bypass_to_the_sink(
    tmp_path: Path, variant: Path
) -> None:
    layout = StackLayout.allocate(tmp_path / "run", profile="fast")
    config = render_alertmanager(variant, layout)
    has_bypass = any(r["name"] == BYPASS_RECEIVER for r in source_config(variant)["receivers"])
    amtool_check(config)
    receivers = receivers_by_name(config)
    responder_url = f"{layout.responder_url}{WEBHOOK}"
    sink_url = f"{layout.bypass_sink_url}{WEBHOOK}"
    for name, receiver in receivers.items():
        assert set(receiver) == {"name", "webhook_configs"}, f"{name} keeps a native integration"
        (hook,) = receiver["webhook_configs"]
        expected = sink_url if name == BYPASS_RECEIVER else responder_url
        assert hook["url"] == expected, name
        token = layout.bypass_sink_token_file if name == BYPASS_RECEIVER else layout.token_file
        assert hook["http_config"]["authorization"]["credentials_file"] == str(token)
    assert (BYPASS_RECEIVER in receivers) is has_bypass
    if has_bypass:
        labels = {"alertname": "ResponderDown", "component": "meta", "service": "responder"}
        assert BYPASS_RECEIVER in amtool_receivers(config, {**labels, "severity": "critical"})
        assert layout.bypass_sink_token_file.read_text().strip() != (
            layout.token_file.read_text().strip()
        ), "the sink and the responder must not share a token"


def test_the_watchdog_route_repeats_inside_the_dead_mans_switch(
    tmp_path: Path, variant: Path
) -> None:
    layout = StackLayout.allocate(tmp_path / "run", profile="fast")
    config = render_alertmanager(variant, layout)
    source = source_config(variant)["route"]
    shipped = [r for r in _routes(source)[1:] if is_watchdog_route(r)]
    root = yaml.safe_load(config.read_text())["route"]
    watchdog = [r for r in _routes(root)[1:] if is_watchdog_route(r)]
    assert len(watchdog) == 1, watchdog
    assert {k: watchdog[0][k] for k in WATCHDOG_TIMERS} == WATCHDOG_TIMERS
    assert "group_wait" not in watchdog[0], "inherits the root's 0s: the first notice at once"
    assert (root["group_wait"], root["group_interval"], root["repeat_interval"]) == (
        "0s",
        "2s",
        "1h",
    )
    for route in _routes(root)[1:]:
        if route is not watchdog[0]:
            assert not {"group_wait", "group_interval", "repeat_interval"} & set(route), route
    # The Watchdog reaches the responder (its switch) by the shipped route, else the root's
    # receiver as before: only its timers changed.
    expected = shipped[0]["receiver"] if shipped else root["receiver"]
    assert amtool_receivers(
        config, {"alertname": "Watchdog", "severity": "none", "component": "meta"}
    ) == (expected,)


def test_the_responder_gets_the_fast_watchdog_timeout_only_in_the_fast_profile(
    tmp_path: Path,
) -> None:
    env = "TRADEGUARD_RESPONDER_WATCHDOG_TIMEOUT_SECONDS"
    fast = Stack(StackLayout.allocate(tmp_path / "fast", profile="fast"))
    assert (fast.child("responder").env or {})[env] == str(FAST_WATCHDOG_TIMEOUT_SECONDS)
    default = Stack(StackLayout.allocate(tmp_path / "default", profile="default"))
    assert env not in (default.child("responder").env or {})


# ---- one running stack ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, extended_deploy: Path) -> Iterator[Stack]:
    layout = StackLayout.allocate(tmp_path_factory.mktemp("stack"), profile="fast", replicas=1)
    running = Stack(layout, deploy=extended_deploy).start()
    try:
        yield running
    finally:
        running.stop()


def sink_post(
    layout: StackLayout, body: bytes, token: str | None = None, path: str = WEBHOOK
) -> httpx.Response:
    token = layout.bypass_sink_token_file.read_text().strip() if token is None else token
    return httpx.post(
        f"{layout.bypass_sink_url}{path}",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=5,
    )


def webhook_payload(alertname: str, status: str = "firing") -> dict[str, Any]:
    """An Alertmanager webhook body (version 4), as Alertmanager 0.25 sends it."""
    labels = {"alertname": alertname, "component": "meta", "service": "responder"}
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "test"},
        "startsAt": "2024-05-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2024-05-01T10:05:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": "0123456789abcdef",
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="' + alertname + '"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": BYPASS_RECEIVER,
        "groupLabels": {"alertname": alertname},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "test"},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [alert],
    }


def sink_records(layout: StackLayout, alertname: str) -> list[dict[str, Any]]:
    if not layout.bypass_sink_file.exists():
        return []
    lines = layout.bypass_sink_file.read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["alertname"] == alertname]


def test_the_peers_form_one_cluster_and_prometheus_sends_to_both(stack: Stack) -> None:
    layout = stack.layout
    status = read_stack_status(layout)
    assert list(status.alertmanagers) == list(PEERS)
    for name, peer in status.alertmanagers.items():
        assert (peer.cluster_status, peer.members) == ("ready", 2), (name, peer)
        metrics = httpx.get(f"{peer.url}/metrics", timeout=5).text
        assert "\nalertmanager_cluster_members 2\n" in metrics, name
    active = httpx.get(f"{layout.prometheus_url}/api/v1/alertmanagers", timeout=5).json()
    urls = {m["url"] for m in active["data"]["activeAlertmanagers"]}
    assert urls == {f"{url}/api/v2/alerts" for url in layout.alertmanager_urls.values()}
    assert status.cluster_complete


def test_a_webhook_post_lands_in_the_sink_file_and_in_status(stack: Stack) -> None:
    layout = stack.layout
    name = f"SinkDirect{os.getpid()}"
    reply = sink_post(layout, json.dumps(webhook_payload(name)).encode())
    assert reply.status_code == 200, reply.text
    (record,) = sink_records(layout, name)
    assert record["receiver"] == BYPASS_RECEIVER and record["status"] == "firing"
    assert record["labels"]["service"] == "responder"
    assert record["annotations"] == {"summary": "test"}
    assert record["startsAt"] == "2024-05-01T10:00:00Z"
    assert datetime.fromisoformat(record["received_at"]) > datetime.now(UTC) - timedelta(minutes=1)
    # The path deploy/'s example bypass webhook uses is taken too.
    reply = sink_post(
        layout, json.dumps(webhook_payload(name, "resolved")).encode(), path="/alerts"
    )
    assert reply.status_code == 200, reply.text
    newest = read_stack_status(layout).bypassed
    assert [(r["alertname"], r["status"]) for r in newest[:2]] == [
        (name, "resolved"),
        (name, "firing"),
    ]


@pytest.mark.parametrize(
    ("body", "token", "expected"),
    [
        (b'{"alerts": []}', "wrong-token", 401),
        (b"not json", None, 400),
        (b"\xff\xfe", None, 400),
        (b"[" * 100_000, None, 400),
        (b'{"alerts": "nope"}', None, 400),
        (b'{"alerts": [{"status": "exploded", "labels": {}}]}', None, 400),
        (b'{"alerts": [{"status": "firing", "labels": {"a": 1}}]}', None, 400),
        (b" " * (2 * 1024 * 1024), None, 413),
    ],
    ids=["token", "json", "utf8", "nesting", "alerts", "status", "labels", "size"],
)
def test_bad_input_to_the_sink_gets_a_4xx_and_stores_nothing(
    stack: Stack, body: bytes, token: str | None, expected: int
) -> None:
    layout = stack.layout
    before = layout.bypass_sink_file.read_bytes() if layout.bypass_sink_file.exists() else b""
    try:
        reply = sink_post(layout, body, token)
    except httpx.RemoteProtocolError:  # refused before the whole body was read (size)
        assert expected == 413
    else:
        assert reply.status_code == expected, reply.text
    after = layout.bypass_sink_file.read_bytes() if layout.bypass_sink_file.exists() else b""
    assert after == before
    assert httpx.get(f"{layout.bypass_sink_url}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{layout.bypass_sink_url}/nope", timeout=5).status_code == 404


def test_an_alert_about_the_responder_goes_around_it_once(stack: Stack) -> None:
    layout = stack.layout
    name = f"ResponderBypassCheck{os.getpid()}"
    labels = {"alertname": name, "component": "meta", "service": "responder", "severity": "info"}

    def post(ends: datetime | None = None) -> None:
        body: dict[str, Any] = {"labels": labels}
        if ends is not None:
            body["endsAt"] = ends.isoformat()
        for url in layout.alertmanager_urls.values():  # as Prometheus: to every peer
            reply = httpx.post(f"{url}/api/v2/alerts", json=[body], timeout=5)
            assert reply.status_code == 200, reply.text

    post()
    wait_until(lambda: sink_records(layout, name), 10, f"{name} in the bypass sink's file")
    post(datetime.now(UTC) - timedelta(seconds=1))
    wait_until(
        lambda: any(r["status"] == "resolved" for r in sink_records(layout, name)),
        10,
        f"the resolved {name} in the bypass sink's file",
    )
    # Both peers had the alert; the cluster's shared notification log lets one of them send.
    statuses = sorted(r["status"] for r in sink_records(layout, name))
    assert statuses == ["firing", "resolved"], statuses
    assert all(r["receiver"] == BYPASS_RECEIVER for r in sink_records(layout, name))


def test_status_command_shows_the_cluster_and_what_went_around_the_responder(
    stack: Stack,
) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tradeguard.cli", "status", "--run-dir", str(stack.layout.run_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "Alertmanager cluster (2 peers)" in out.stdout, out.stdout + out.stderr
    for peer in PEERS:
        assert peer in out.stdout
    assert f"ResponderBypassCheck{os.getpid()}" in out.stdout
    assert "responder: ok" in out.stdout
    health = httpx.get(f"{stack.layout.responder_url}/healthz", timeout=5).json()
    if "alert_path" in health:  # a responder with a dead man's switch shows its state
        assert "alert path" in out.stdout
        assert health["alert_path"]["timeout_seconds"] == FAST_WATCHDOG_TIMEOUT_SECONDS


def test_prometheus_keeps_sending_to_the_surviving_peer(stack: Stack) -> None:
    layout = stack.layout
    survivor = layout.alertmanager_urls[PEERS[1]]

    def watchdog_updated_after(moment: datetime) -> bool:
        alerts = httpx.get(f"{survivor}/api/v2/alerts", timeout=2).json()
        return any(
            a["labels"].get("alertname") == "Watchdog"
            and datetime.fromisoformat(a["updatedAt"].replace("Z", "+00:00")) > moment
            for a in alerts
        )

    stack.kill_child(PEERS[0])
    killed_at = datetime.now(UTC)
    try:
        assert not stack.child(PEERS[0]).running
        # Prometheus re-sends every firing alert every 2 s (--rules.alert.resend-delay).
        wait_until(
            lambda: watchdog_updated_after(killed_at),
            15,
            f"Prometheus to send the Watchdog to {PEERS[1]} after {PEERS[0]} was killed",
        )
        assert not read_stack_status(layout).cluster_complete
    finally:
        stack.start_child(PEERS[0])
    wait_until(
        lambda: read_stack_status(layout).cluster_complete,
        15,
        f"{PEERS[0]} to rejoin the cluster",
    )
