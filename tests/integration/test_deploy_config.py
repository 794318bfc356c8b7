"""deploy/: the Prometheus and Alertmanager configuration, the rules and their tests, checked with
the real tools (promtool, amtool) and by starting a real Prometheus and Alertmanager on them.

The consistency checks are the ones ``tradeguard rules check`` runs
(:mod:`tradeguard.rulecheck`); each has its own test here so a failure names what drifted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from http_sink import Sink

from tradeguard.metrics.vocabulary import LAYERS
from tradeguard.process import free_port, wait_until
from tradeguard.process.services import Alertmanager, Prometheus
from tradeguard.rulecheck.coverage import check_tests
from tradeguard.rulecheck.findings import describe
from tradeguard.rulecheck.inventory import InventoryRow, check_inventory, load_inventory
from tradeguard.rulecheck.metricnames import check_metrics
from tradeguard.rulecheck.paths import RepoPaths, find_repo_root
from tradeguard.rulecheck.routing import (
    BYPASS_RECEIVER,
    AmtoolError,
    alert_services,
    amtool_receivers,
    compare_table_with_inventory,
    expectations_for,
    load_routes_table,
)
from tradeguard.rulecheck.rules import load_rules
from tradeguard.rulecheck.tools import (
    check_amtool_config,
    check_promtool_config,
    check_promtool_tests,
    check_rule_file,
)

pytestmark = pytest.mark.integration

PATHS = RepoPaths(find_repo_root(Path(__file__).parent))
INVENTORY = load_inventory(PATHS.inventory)
ROUTES = {route.alertname: route for route in load_routes_table(PATHS.routes_table)}
SERVICES = alert_services(load_rules(PATHS.rule_files()))
LOOPBACK = "127.0.0.1"
RESPONDER_TOKEN = "secrets/responder-token"
RESPONDER_WEBHOOK = "http://127.0.0.1:9466/alertmanager/webhook"

# deploy/README.md, "Scrape jobs": job -> (scrape interval, value of the `service` target label).
SCRAPE_JOBS: dict[str, tuple[str, str]] = {
    "redis": ("1s", "redis"),
    "engine": ("1s", "engine"),
    "coordinator": ("1s", "coordinator"),
    "responder": ("1s", "responder"),
    "duckdb": ("5s", "duckdb"),
    "clickhouse": ("5s", "clickhouse"),
    "node": ("5s", "node"),
    "cadvisor": ("5s", "docker"),
    "docker": ("5s", "docker"),
    "dragonfly": ("5s", "dragonfly"),
    "prometheus": ("5s", "prometheus"),
    "alertmanager": ("5s", "alertmanager"),
}


def _files_or_missing(files: list[Path]) -> list[Path | None]:
    """Parameters for a per-file test: the files, or one None so an empty directory fails."""
    return list(files) or [None]


def _ids(files: list[Path | None]) -> list[str]:
    return [path.name if path else "no-files" for path in files]


# ---- the tools --------------------------------------------------------------------------------
def test_promtool_check_config() -> None:
    findings = check_promtool_config(PATHS)
    assert not findings, describe(findings)


def test_amtool_check_config() -> None:
    findings = check_amtool_config(PATHS)
    assert not findings, describe(findings)


RULE_FILES = _files_or_missing(PATHS.rule_files())
TEST_FILES = _files_or_missing(PATHS.test_files())


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=_ids(RULE_FILES))
def test_promtool_check_rules(rule_file: Path | None) -> None:
    assert rule_file is not None, f"no *.rules.yml files in {PATHS.rules_dir}"
    findings = check_rule_file(rule_file)
    assert not findings, describe(findings)


@pytest.mark.parametrize("test_file", TEST_FILES, ids=_ids(TEST_FILES))
def test_promtool_test_rules(test_file: Path | None) -> None:
    assert test_file is not None, f"no *.test.yml files in {PATHS.tests_dir}"
    findings = check_promtool_tests(PATHS, [test_file])
    assert not findings, describe(findings)


# ---- consistency ------------------------------------------------------------------------------
def test_every_inventory_alert_has_a_conforming_rule() -> None:
    findings = check_inventory(PATHS, INVENTORY)
    assert not findings, describe(findings)


def test_every_alert_has_a_firing_and_a_silent_test() -> None:
    findings = check_tests(PATHS)
    assert not findings, describe(findings)


def test_rules_use_only_known_metric_names() -> None:
    findings = check_metrics(PATHS)
    assert not findings, describe(findings)


def test_routes_table_lists_the_inventory() -> None:
    findings = compare_table_with_inventory(list(ROUTES.values()), INVENTORY, SERVICES)
    assert not findings, describe(findings)


def test_routes_table_is_the_policy_output() -> None:
    """routes.yml is what scripts/gen_routes_table.py writes: regenerate it after a change."""
    assert list(ROUTES.values()) == expectations_for(INVENTORY, SERVICES)


@pytest.mark.parametrize("row", INVENTORY, ids=[row.alert for row in INVENTORY])
def test_alert_routing(row: InventoryRow) -> None:
    expected = ROUTES.get(row.alert)
    assert expected is not None, f"{row.alert} is missing from {PATHS.routes_table}"
    try:
        actual = amtool_receivers(PATHS.alertmanager_config, expected.labels)
    except AmtoolError as exc:
        pytest.fail(str(exc))
    assert actual == expected.receivers, (
        f"{row.alert} ({row.component}, {row.severity}) routed to {actual}, "
        f"routes.yml expects {expected.receivers}"
    )


# ---- the shipped configuration -----------------------------------------------------------------
def test_prometheus_config_follows_the_scrape_contract() -> None:
    config = yaml.safe_load(PATHS.prometheus_config.read_text())
    assert "storage" not in config, "retention is a command-line flag, not a prometheus.yml block"
    assert config["global"]["scrape_interval"] == "5s"
    assert config["global"]["evaluation_interval"] == "1s"
    assert config["global"]["external_labels"] == {"source": "tradeguard", "env": "production"}
    assert config["rule_files"] == ["rules/*.rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(SCRAPE_JOBS)
    for name, (interval, _service) in SCRAPE_JOBS.items():
        job = jobs[name]
        assert job.get("scrape_interval", config["global"]["scrape_interval"]) == interval, name
        assert job["file_sd_configs"] == [{"files": [f"targets/{name}.yml"]}], name


def test_targets_carry_the_contract_labels() -> None:
    for name, (_interval, service) in SCRAPE_JOBS.items():
        groups = yaml.safe_load((PATHS.targets_dir / f"{name}.yml").read_text())
        assert groups, f"targets/{name}.yml is empty"
        for group in groups:
            assert group["labels"]["service"] == service, name
            for target in group["targets"]:
                assert target.startswith(f"{LOOPBACK}:"), f"{name}: {target} is not loopback"
    redis = yaml.safe_load((PATHS.targets_dir / "redis.yml").read_text())
    layers = {group["labels"]["layer"]: group["targets"] for group in redis}
    assert set(layers) == set(LAYERS)
    assert sorted(t for targets in layers.values() for t in targets) == [
        f"{LOOPBACK}:{port}" for port in range(9121, 9125)
    ]


def test_alertmanager_secrets_are_files_not_values() -> None:
    config = yaml.safe_load(PATHS.alertmanager_config.read_text())
    text = PATHS.alertmanager_config.read_text()
    for inline in ("api_url:", "routing_key:", "service_key:", "auth_password:", "credentials:"):
        assert f" {inline}" not in text, f"{inline} set inline; use the *_file form"
    for receiver in config["receivers"]:
        hooks = receiver.get("webhook_configs", [])
        if receiver["name"] == BYPASS_RECEIVER:
            continue  # routes around the responder: test_bypass_receiver_avoids_the_responder
        assert any(
            hook["url"] == RESPONDER_WEBHOOK
            and hook["send_resolved"] is True
            and hook["http_config"]["authorization"]["credentials_file"]
            == "secrets/responder-token"
            for hook in hooks
        ), f"receiver {receiver['name']} does not post to the responder"
    for secret in ("responder-token", "slack-api-url", "pagerduty-routing-key", "smtp-password"):
        assert (PATHS.alertmanager_dir / "secrets" / secret).is_file(), secret


def test_bypass_receiver_avoids_the_responder() -> None:
    """Alerts about the responder must reach people without it: the bypass receiver mails
    on-call and posts to another webhook, never to the responder or with its token."""
    config = yaml.safe_load(PATHS.alertmanager_config.read_text())
    receiver = next(r for r in config["receivers"] if r["name"] == BYPASS_RECEIVER)
    assert receiver.get("email_configs"), "the bypass receiver has no e-mail"
    hooks = receiver.get("webhook_configs", [])
    assert hooks, "the bypass receiver has no webhook of its own"
    responder = urlsplit(RESPONDER_WEBHOOK)
    for hook in hooks:
        url = urlsplit(hook["url"])
        assert (url.hostname, url.port) != (responder.hostname, responder.port), hook["url"]
        auth = hook.get("http_config", {}).get("authorization", {})
        assert auth.get("credentials_file") != RESPONDER_TOKEN, "the responder's token"
        assert hook["send_resolved"] is True


# ---- live: a real Alertmanager and Prometheus on the shipped files ------------------------------
def _absolute_files(node: Any, base: Path) -> Any:
    """``node`` with every relative ``*_file`` value made absolute against ``base``."""
    if isinstance(node, dict):
        return {
            key: str(base / value)
            if key.endswith("_file") and isinstance(value, str) and not Path(value).is_absolute()
            else _absolute_files(value, base)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_absolute_files(item, base) for item in node]
    return node


def _urls(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("url") and isinstance(value, str):
                yield value
            else:
                yield from _urls(value)
    elif isinstance(node, list):
        for item in node:
            yield from _urls(item)


def render_alertmanager(dest: Path, sink_port: int) -> Path:
    """The shipped alertmanager.yml for a test: secret and template paths absolute, and every
    outbound URL (webhooks, keeping their paths, PagerDuty, Slack) on the loopback port
    ``sink_port``."""
    source = PATHS.alertmanager_dir
    config = _absolute_files(yaml.safe_load(PATHS.alertmanager_config.read_text()), source)
    config["templates"] = [str(source / pattern) for pattern in config["templates"]]
    config["global"]["pagerduty_url"] = f"http://{LOOPBACK}:{sink_port}/v2/enqueue"
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"http://{LOOPBACK}:{sink_port}{urlsplit(hook['url']).path}"
    dest.mkdir(parents=True, exist_ok=True)
    slack_url = dest / "slack-api-url"
    slack_url.write_text(f"http://{LOOPBACK}:{sink_port}/slack")
    config["global"]["slack_api_url_file"] = str(slack_url)
    outside = [url for url in _urls(config) if not url.startswith(f"http://{LOOPBACK}:")]
    assert not outside, f"rendered config would send traffic off the machine: {outside}"
    path = dest / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def render_prometheus(dest: Path, dead_port: int, alertmanager_port: int) -> Path:
    """The shipped prometheus.yml with the real rules (absolute glob) and every target on a
    loopback port: the Alertmanager under test for job `alertmanager`, a dead port otherwise.
    Target labels are kept as shipped."""
    config = yaml.safe_load(PATHS.prometheus_config.read_text())
    config["rule_files"] = [str(PATHS.prometheus_dir / pattern) for pattern in config["rule_files"]]
    (dest / "targets").mkdir(parents=True, exist_ok=True)
    for source in sorted(PATHS.targets_dir.glob("*.yml")):
        port = alertmanager_port if source.stem == "alertmanager" else dead_port
        groups = yaml.safe_load(source.read_text())
        for group in groups:
            group["targets"] = [f"{LOOPBACK}:{port}"]
        (dest / "targets" / source.name).write_text(yaml.safe_dump(groups, sort_keys=False))
    path = dest / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def alertmanager(tmp_path: Path, sink: Sink) -> Iterator[Alertmanager]:
    config = render_alertmanager(tmp_path / "alertmanager-config", sink.port)
    server = Alertmanager(tmp_path / "alertmanager", config)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus(tmp_path: Path, alertmanager: Alertmanager) -> Iterator[Prometheus]:
    assert PATHS.rule_files(), f"no *.rules.yml files in {PATHS.rules_dir}"
    config = render_prometheus(
        tmp_path / "prometheus-config", free_port(), alertmanager.endpoint.port
    )
    server = Prometheus(tmp_path / "prometheus", config)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _get(url: str) -> Any:
    response = httpx.get(url, timeout=2.0)
    response.raise_for_status()
    return response.json()


def test_alertmanager_runs_the_shipped_config(alertmanager: Alertmanager) -> None:
    status = _get(f"{alertmanager.endpoint.url}/api/v2/status")
    loaded = yaml.safe_load(status["config"]["original"])
    shipped = yaml.safe_load(PATHS.alertmanager_config.read_text())
    assert [r["name"] for r in loaded["receivers"]] == [r["name"] for r in shipped["receivers"]]
    assert loaded["route"]["group_by"] == ["alertname", "component", "instance"]
    assert len(loaded["inhibit_rules"]) == len(shipped["inhibit_rules"])


def test_prometheus_loads_every_rule_and_target(
    prometheus: Prometheus, alertmanager: Alertmanager
) -> None:
    base = prometheus.endpoint.url

    def rules() -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = _get(f"{base}/api/v1/rules")["data"]["groups"]
        return groups

    def evaluated() -> bool:
        return all(rule["health"] != "unknown" for group in rules() for rule in group["rules"])

    wait_until(evaluated, 30, "every rule to be evaluated once (health no longer 'unknown')")
    groups = rules()
    loaded = {Path(group["file"]).resolve() for group in groups}
    assert loaded == {path.resolve() for path in PATHS.rule_files()}, "rule files not all loaded"
    unhealthy = [
        f"{Path(group['file']).name}: {rule['name']}: {rule['health']} {rule.get('lastError', '')}"
        for group in groups
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert not unhealthy, "rules failing to evaluate:\n" + "\n".join(unhealthy)
    assert all(group["rules"] for group in groups), "a rule group is empty"

    expected_targets = sum(
        len(yaml.safe_load((PATHS.targets_dir / f"{job}.yml").read_text())) for job in SCRAPE_JOBS
    )

    def targets() -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = _get(f"{base}/api/v1/targets")["data"]["activeTargets"]
        return active

    wait_until(
        lambda: len(targets()) == expected_targets,
        30,
        f"{expected_targets} targets discovered from the file_sd files",
    )
    labels = [target["labels"] for target in targets()]
    assert {label["job"] for label in labels} == set(SCRAPE_JOBS)
    for label in labels:
        assert label.get("service") == SCRAPE_JOBS[label["job"]][1], label
    assert sorted(label["layer"] for label in labels if label["job"] == "redis") == sorted(LAYERS)

    am_url = f"{alertmanager.endpoint.url}/api/v2/alerts"

    def alertmanager_discovered() -> bool:
        active = _get(f"{base}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
        return any(entry["url"] == am_url for entry in active)

    wait_until(alertmanager_discovered, 30, f"Prometheus to discover the Alertmanager at {am_url}")


def _alert(alertname: str, severity: str, component: str, **extra: str) -> dict[str, str]:
    return {"alertname": alertname, "severity": severity, "component": component, **extra}


# Inhibition cases: (labels of an alert, whether the others posted with it must mute it). Each
# scenario uses its own instance so the scenarios do not touch each other.
INHIBITION_CASES: list[tuple[dict[str, str], bool]] = [
    # a critical mutes the warning of the same alert and instance, not of another instance
    (_alert("DBSyncLatencyHigh", "critical", "ha_coordination", instance="ha:1"), False),
    (_alert("DBSyncLatencyHigh", "warning", "ha_coordination", instance="ha:1"), True),
    (_alert("DBSyncLatencyHigh", "warning", "ha_coordination", instance="ha:2"), False),
    # RedisDown mutes the stream and state alerts of its layer only
    (_alert("RedisDown", "critical", "redis", layer="signal_stream", instance="r:3"), False),
    (
        _alert("SignalBacklog", "critical", "signal_stream", layer="signal_stream", instance="e"),
        True,
    ),
    (_alert("RedisMemoryHigh", "warning", "redis", layer="trade_state", instance="r:1"), False),
    # TradingBotDown mutes the bot's and the engine's alerts of its instance
    (_alert("TradingBotDown", "critical", "trading_bot", instance="e:2"), False),
    (_alert("TradeExecutionFailures", "critical", "trade_engine", instance="e:2"), True),
    (_alert("HighErrorRate", "critical", "trading_bot", instance="e:3"), False),
    # node_exporter unreachable mutes that host's system alerts
    (_alert("NetworkConnectivityIssue", "critical", "system", instance="host:1"), False),
    (_alert("HighCPUUsage", "warning", "system", instance="host:1"), True),
    (_alert("HighCPUUsage", "warning", "system", instance="host:2"), False),
    # cAdvisor unreachable mutes every container alert
    (_alert("DockerDaemonIssues", "critical", "docker", instance="cadvisor:1"), False),
    (_alert("ContainerFailed", "critical", "docker", name="engine"), True),
    # Dragonfly unreachable mutes its other alerts on that instance
    (_alert("DragonflyDBConnectionFailure", "critical", "dragonflydb", instance="df:1"), False),
    (_alert("DragonflyDBHighLatency", "warning", "dragonflydb", instance="df:1"), True),
    # nothing mutes the dead man's switch
    (_alert("Watchdog", "none", "meta"), False),
]


def test_inhibition_rules(alertmanager: Alertmanager) -> None:
    base = alertmanager.endpoint.url
    alerts = [
        {"labels": {**labels, "service": "test"}, "annotations": {"summary": "inhibition test."}}
        for labels, _ in INHIBITION_CASES
    ]
    httpx.post(f"{base}/api/v2/alerts", json=alerts, timeout=2.0).raise_for_status()

    def key(labels: dict[str, str]) -> tuple[str, ...]:
        return (labels["alertname"], labels["severity"], labels.get("instance", ""))

    expected = {key(labels): muted for labels, muted in INHIBITION_CASES}

    def actual() -> dict[tuple[str, ...], bool]:
        listed = _get(f"{base}/api/v2/alerts")
        return {key(a["labels"]): bool(a["status"]["inhibitedBy"]) for a in listed}

    try:
        wait_until(lambda: actual() == expected, 10, "the inhibition rules to settle")
    except TimeoutError:
        got = actual()
        wrong = [
            f"{k}: inhibited={got.get(k)}, expected {v}"
            for k, v in expected.items()
            if got.get(k) != v
        ]
        pytest.fail("inhibition differs from the policy:\n" + "\n".join(wrong))


def test_critical_alert_reaches_pager_chat_and_responder(
    alertmanager: Alertmanager, sink: Sink
) -> None:
    """A critical alert is delivered, through the shipped templates, to PagerDuty (Events v2),
    Slack and, once per receiver, to the responder's webhook with its bearer token."""
    labels = _alert("RedisNoClients", "critical", "redis", service="redis", instance="r:1")
    annotations = {
        "summary": "A Redis layer has no connected clients.",
        "description": "No client on r:1 for 5s.",
        "runbook_url": "docs/runbooks/RedisNoClients.md",
        "action": "restart_redis",
    }
    alert = {"labels": labels, "annotations": annotations}
    base = alertmanager.endpoint.url
    httpx.post(f"{base}/api/v2/alerts", json=[alert], timeout=2.0).raise_for_status()

    def delivered() -> bool:
        hooks = sink.posted_to("/alertmanager/webhook")
        return (
            bool(sink.posted_to("/v2/enqueue"))
            and bool(sink.posted_to("/slack"))
            and {hook.body["receiver"] for hook in hooks} == {"pager", "chat-critical"}
        )

    wait_until(delivered, 20, "PagerDuty, Slack and two responder webhooks for RedisNoClients")

    secrets = PATHS.alertmanager_dir / "secrets"
    token = (secrets / "responder-token").read_text().strip()
    for hook in sink.posted_to("/alertmanager/webhook"):
        assert hook.headers["Authorization"] == f"Bearer {token}"
        assert hook.body["version"] == "4"
        assert hook.body["alerts"][0]["labels"]["alertname"] == "RedisNoClients"

    event = sink.posted_to("/v2/enqueue")[0].body
    assert event["routing_key"] == (secrets / "pagerduty-routing-key").read_text().strip()
    assert event["event_action"] == "trigger"
    assert event["payload"]["summary"] == (
        "RedisNoClients: A Redis layer has no connected clients. (r:1)"
    )
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["component"] == "redis"

    slack = sink.posted_to("/slack")[0].body
    attachment = slack["attachments"][0]
    assert slack["channel"] == "#tradeguard-critical"
    assert attachment["title"] == "[FIRING:1] RedisNoClients (redis, r:1)"
    assert attachment["color"] == "danger"
    for text in (
        annotations["summary"],
        "remediation: restart_redis",
        "runbook: docs/runbooks/RedisNoClients.md",
    ):
        assert text in attachment["text"]


def test_meta_routes_watchdog_and_responder_bypass(alertmanager: Alertmanager, sink: Sink) -> None:
    """The Watchdog reaches the responder's webhook only (receiver `watchdog`); an alert about
    the responder reaches the bypass sink, without the responder's token, and still pages."""
    watchdog = {
        "labels": {"alertname": "Watchdog", "severity": "none", "component": "meta"},
        "annotations": {"summary": "An always-firing alert."},
    }
    down = {
        "labels": _alert(
            "ResponderDown", "critical", "meta", service="responder", instance="127.0.0.1:9466"
        ),
        "annotations": {"summary": "The alert responder does not answer."},
    }
    base = alertmanager.endpoint.url
    httpx.post(f"{base}/api/v2/alerts", json=[watchdog, down], timeout=2.0).raise_for_status()

    def names(path: str) -> set[tuple[str, str]]:
        return {
            (hook.body["receiver"], hook.body["alerts"][0]["labels"]["alertname"])
            for hook in sink.posted_to(path)
        }

    expected_responder = {
        ("watchdog", "Watchdog"),
        ("pager", "ResponderDown"),
        ("chat-critical", "ResponderDown"),
    }

    def delivered() -> bool:
        return (
            names("/alertmanager/webhook") == expected_responder
            and names("/alerts") == {(BYPASS_RECEIVER, "ResponderDown")}
            and bool(sink.posted_to("/v2/enqueue"))
        )

    wait_until(delivered, 20, "Watchdog to the responder, ResponderDown around it and to the pager")
    for hook in sink.posted_to("/alerts"):
        assert "Authorization" not in hook.headers, "the bypass sink got a bearer token"
    pages = [event.body["payload"]["summary"] for event in sink.posted_to("/v2/enqueue")]
    assert all("Watchdog" not in summary for summary in pages), "the Watchdog paged"
    chats = [post.body["attachments"][0]["title"] for post in sink.posted_to("/slack")]
    assert all("Watchdog" not in title for title in chats), "the Watchdog reached chat"


@pytest.mark.parametrize("profile", ["default", "fast"])
def test_rendered_rules_link_each_runbook_at_the_console(tmp_path: Path, profile: str) -> None:
    """The stack's rules carry absolute runbook links (a path into the repository does not
    open from Slack or PagerDuty), each to a runbook that exists, and still pass promtool."""
    from tradeguard.stack.render import render_rules

    base = "https://ops.example.net:9466/"
    written = render_rules(PATHS.deploy, tmp_path, profile, runbook_base_url=base)
    assert written
    links = []
    for path in written:
        assert not check_rule_file(path), describe(check_rule_file(path))
        for group in yaml.safe_load(path.read_text())["groups"]:
            links += [r["annotations"]["runbook_url"] for r in group["rules"] if "alert" in r]
    assert links
    for link in links:
        assert link.startswith("https://ops.example.net:9466/runbooks/"), link
        name = link.rsplit("/", 1)[1]
        assert (PATHS.root / "docs" / "runbooks" / f"{name}.md").is_file(), link
