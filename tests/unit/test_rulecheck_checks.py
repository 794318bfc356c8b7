"""The consistency checks on a small synthetic checkout, so their logic is tested apart from the
state of the real rule files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tradeguard.rulecheck.coverage import check_tests
from tradeguard.rulecheck.findings import CheckResult, Finding, Report
from tradeguard.rulecheck.inventory import InventoryRow, check_inventory
from tradeguard.rulecheck.metricnames import check_metrics
from tradeguard.rulecheck.paths import RepoPaths, find_repo_root
from tradeguard.rulecheck.report import render
from tradeguard.rulecheck.routing import (
    RouteExpectation,
    alert_services,
    compare_table_with_inventory,
    expectations_for,
    load_routes_table,
    policy_receivers,
    render_routes_table,
)
from tradeguard.rulecheck.rules import load_rules
from tradeguard.rulecheck.tools import check_promtool_config

INVENTORY = """\
seed,component,alert,intent (the seed's words),severity,action in the seed
002,redis,RedisDown,a Redis instance stops responding,critical,notify
000,redis,RedisMemoryHigh,used_memory > 80%,warning,notify
"""

GOOD_RULES = """\
groups:
  - name: tradeguard.redis
    rules:
      - alert: RedisDown
        expr: up{job="redis"} == 0
        for: 5s
        labels: {severity: critical, component: redis, service: redis}
        annotations:
          summary: A Redis layer is down.
          description: "{{ $labels.layer }} down ({{ $value | humanize }})."
          runbook_url: docs/runbooks/RedisDown.md
          action: restart_redis
      - alert: RedisMemoryHigh
        expr: redis_memory_used_bytes / redis_memory_max_bytes > 0.8 and redis_memory_max_bytes > 0
        for: 30s
        labels: {severity: warning, component: redis, service: redis}
        annotations:
          summary: Redis memory is above 80% of maxmemory.
          description: "{{ $value | humanizePercentage }} used on {{ $labels.instance }}."
          runbook_url: docs/runbooks/RedisMemoryHigh.md
          action: none
"""

GOOD_TESTS = """\
rule_files: [../rules/redis.rules.yml]
evaluation_interval: 1s
tests:
  - interval: 1s
    input_series: []
    alert_rule_test:
      - {eval_time: 10s, alertname: RedisDown, exp_alerts: [{exp_labels: {severity: critical}}]}
      - {eval_time: 1s, alertname: RedisDown}
      - {eval_time: 40s, alertname: RedisMemoryHigh, exp_alerts: [{exp_labels: {}}]}
      - {eval_time: 1s, alertname: RedisMemoryHigh, exp_alerts: []}
"""


@pytest.fixture
def repo(tmp_path: Path) -> RepoPaths:
    """A checkout whose rules, tests and runbooks are all consistent."""
    prom = tmp_path / "deploy" / "prometheus"
    for sub in ("rules", "tests", "exporter-metrics", "targets"):
        (prom / sub).mkdir(parents=True)
    (tmp_path / "deploy" / "alert-inventory.csv").write_text(INVENTORY)
    (prom / "rules" / "redis.rules.yml").write_text(GOOD_RULES)
    (prom / "tests" / "redis.test.yml").write_text(GOOD_TESTS)
    (prom / "exporter-metrics" / "redis.txt").write_text(
        "# comment\nredis_memory_used_bytes\nredis_memory_max_bytes\n"
    )
    runbooks = tmp_path / "docs" / "runbooks"
    runbooks.mkdir(parents=True)
    for alert in ("RedisDown", "RedisMemoryHigh"):
        (runbooks / f"{alert}.md").write_text(f"# {alert}\n")
    return RepoPaths(tmp_path)


def write_rules(repo: RepoPaths, text: str, name: str = "redis.rules.yml") -> None:
    (repo.rules_dir / name).write_text(textwrap.dedent(text))


def messages(findings: list[Finding]) -> list[str]:
    return [f"{f.subject}: {f.message}" for f in findings]


def test_consistent_checkout_has_no_findings(repo: RepoPaths) -> None:
    assert check_inventory(repo) == []
    assert check_tests(repo) == []
    assert check_metrics(repo) == []


def test_inventory_reports_each_broken_convention(repo: RepoPaths) -> None:
    write_rules(
        repo,
        """\
        groups:
          - name: redis
            rules:
              - alert: RedisDown
                expr: up == 0
                labels: {severity: page, component: redis_trade_state}
                annotations:
                  summary: "Redis {{ $labels.layer }} down"
                  description: d
                  runbook_url: https://wiki/RedisDown
                  action: reboot_everything
              - alert: SomethingElse
                expr: up == 0
                labels: {severity: warning, component: redis, service: redis}
                annotations: {summary: S., description: d, runbook_url: x, action: none}
        """,
    )
    found = "\n".join(messages(check_inventory(repo)))
    for expected in (
        "missing label `service`",
        "severity 'page' is not one of",
        "component label 'redis_trade_state' differs from the inventory's 'redis'",
        "group 'redis' should be 'tradeguard.redis'",
        "runbook_url 'https://wiki/RedisDown' should be 'docs/runbooks/RedisDown.md'",
        "action 'reboot_everything' is not a remediation action",
        "summary should be a static sentence ending in a period",
        "no rule with the inventory's severity 'critical'",
        "RedisMemoryHigh: no rule (component redis)",
        "SomethingElse (redis.rules.yml): alert is not in the inventory",
    ):
        assert expected in found


def test_inventory_reports_missing_runbook_and_wrong_file(repo: RepoPaths) -> None:
    (repo.runbooks_dir / "RedisDown.md").unlink()
    (repo.rules_dir / "redis.rules.yml").rename(repo.rules_dir / "misc.rules.yml")
    found = "\n".join(messages(check_inventory(repo)))
    assert "runbook docs/runbooks/RedisDown.md does not exist" in found
    assert "component redis belongs in redis.rules.yml" in found


def test_inventory_reports_unreadable_rule_file(repo: RepoPaths) -> None:
    write_rules(repo, "groups: [\n", name="broken.rules.yml")
    found = messages(check_inventory(repo))
    assert any(m.startswith("broken.rules.yml: cannot read rule file") for m in found)


def test_tests_require_a_firing_and_a_silent_case(repo: RepoPaths) -> None:
    (repo.tests_dir / "redis.test.yml").write_text(
        textwrap.dedent(
            """\
            rule_files: [../rules/redis.rules.yml]
            tests:
              - interval: 1s
                alert_rule_test:
                  - {eval_time: 10s, alertname: RedisDown, exp_alerts: [{exp_labels: {}}]}
                  - {eval_time: 1s, alertname: RedisMemoryHigh}
                  - {eval_time: 1s, alertname: RedisDwon}
            """
        )
    )
    assert messages(check_tests(repo)) == [
        "RedisDown: no alert_rule_test where it stays silent",
        "RedisMemoryHigh: no alert_rule_test where it fires (exp_alerts)",
        "RedisDwon: tested in redis.test.yml but no rule defines it",
    ]


def test_tests_fail_without_test_files(repo: RepoPaths) -> None:
    (repo.tests_dir / "redis.test.yml").unlink()
    assert [f.message for f in check_tests(repo)] == ["no *.test.yml files"]


def test_metrics_accepts_catalog_exporter_builtin_and_recorded_names(repo: RepoPaths) -> None:
    write_rules(
        repo,
        """\
        groups:
          - name: tradeguard.redis
            rules:
              - record: layer:redis_memory:ratio
                expr: redis_memory_used_bytes / redis_memory_max_bytes
              - alert: RedisMemoryHigh
                expr: >
                  layer:redis_memory:ratio > 0.8
                  and on(instance) tradeguard_redis_connection_errors_total >= 0
                  unless ALERTS{alertname="RedisDown"} or scrape_duration_seconds > 1
                labels: {}
                annotations: {}
              - alert: RedisDown
                expr: redis_auth_errors_total > 0 or container_state{state="running"} != 1
                labels: {}
                annotations: {}
        """,
    )
    assert messages(check_metrics(repo)) == [
        "RedisDown (redis.rules.yml): metric `redis_auth_errors_total` is neither in the catalog "
        "nor in exporter-metrics/*.txt nor a Prometheus built-in",
        "RedisDown (redis.rules.yml): metric `container_state` is neither in the catalog "
        "nor in exporter-metrics/*.txt nor a Prometheus built-in",
    ]


def test_metrics_reports_unscannable_expression(repo: RepoPaths) -> None:
    write_rules(
        repo,
        """\
        groups:
          - name: g
            rules:
              - alert: RedisDown
                expr: 'up{job="redis} == 0'
        """,
    )
    assert "cannot scan expression" in messages(check_metrics(repo))[0]


WATCHDOG_ROW = "-,meta,Watchdog,not from a seed: always firing,none,none\n"

WATCHDOG_RULES = """\
groups:
  - name: tradeguard.meta
    rules:
      - alert: Watchdog
        expr: vector(1)
        labels: {severity: none, component: meta, service: prometheus}
        annotations:
          summary: An always-firing alert.
          description: Feeds the dead man's switch.
          runbook_url: docs/runbooks/Watchdog.md
          action: none
"""

WATCHDOG_TESTS = """\
rule_files: [../rules/meta.rules.yml]
tests:
  - interval: 1s
    alert_rule_test:
      - {eval_time: 0s, alertname: Watchdog, exp_alerts: [{exp_labels: {severity: none}}]}
"""


@pytest.fixture
def watchdog_repo(repo: RepoPaths) -> RepoPaths:
    """``repo`` plus the always-firing Watchdog of component meta, tested only firing."""
    with (repo.deploy / "alert-inventory.csv").open("a") as inventory:
        inventory.write(WATCHDOG_ROW)
    write_rules(repo, WATCHDOG_RULES, name="meta.rules.yml")
    (repo.tests_dir / "meta.test.yml").write_text(WATCHDOG_TESTS)
    (repo.runbooks_dir / "Watchdog.md").write_text("# Watchdog\n")
    return repo


def test_watchdog_may_have_severity_none_no_metric_and_no_silent_case(
    watchdog_repo: RepoPaths,
) -> None:
    assert check_inventory(watchdog_repo) == []
    assert check_tests(watchdog_repo) == []
    assert check_metrics(watchdog_repo) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # another component: not the dead man's switch, so every usual rule applies
        ("component: meta", "component: redis"),
        # a condition instead of the constant: it can be silent, so it must be tested silent
        ("expr: vector(1)", "expr: vector(1) > 2"),
    ],
)
def test_watchdog_exception_is_narrow(watchdog_repo: RepoPaths, change: str, expected: str) -> None:
    write_rules(watchdog_repo, WATCHDOG_RULES.replace(change, expected), name="meta.rules.yml")
    found = "\n".join(
        messages(check_inventory(watchdog_repo))
        + messages(check_tests(watchdog_repo))
        + messages(check_metrics(watchdog_repo))
    )
    assert "severity 'none' is not one of critical, warning, info" in found
    assert "Watchdog: no alert_rule_test where it stays silent" in found
    assert "Watchdog (meta.rules.yml): expression selects no metric" in found


def test_severity_none_is_only_for_the_watchdog(repo: RepoPaths) -> None:
    write_rules(repo, GOOD_RULES.replace("severity: warning", "severity: none"))
    assert messages(check_inventory(repo)) == [
        "RedisMemoryHigh (redis.rules.yml): severity 'none' is not one of critical, warning, "
        "info ('none' only for the always-firing Watchdog of component meta)",
        "RedisMemoryHigh: no rule with the inventory's severity 'warning' (rules have none)",
    ]


def test_routing_policy() -> None:
    assert policy_receivers("ha_coordination", "critical") == ("pager", "chat-critical")
    assert policy_receivers("redis", "warning") == ("chat-warnings",)
    assert policy_receivers("system", "critical") == ("pager", "sysadmin-email", "chat-critical")
    assert policy_receivers("system", "warning") == ("sysadmin-email", "chat-warnings")
    assert policy_receivers("docker", "warning") == ("docker-team",)
    assert policy_receivers("trading_bot", "critical") == ("pager", "trading-chat")
    assert policy_receivers("redis", "info") == ("responder",)


def test_routing_policy_for_meta_alerts() -> None:
    # The Watchdog feeds the dead man's switch and goes nowhere else.
    assert policy_receivers("meta", "none", "Watchdog", "prometheus") == ("watchdog",)
    # Alerts about the responder go around it first, then route as usual.
    assert policy_receivers("meta", "critical", "ResponderDown", "responder") == (
        "responder-bypass",
        "pager",
        "chat-critical",
    )
    assert policy_receivers("meta", "warning", "ResponderOutboxBacklog", "responder") == (
        "responder-bypass",
        "chat-warnings",
    )
    assert policy_receivers("meta", "info", "ResponderNote", "responder") == ("responder-bypass",)
    # Other meta alerts, and the responder's service on other components, route as usual.
    assert policy_receivers("meta", "warning", "TargetDown", "prometheus") == ("chat-warnings",)
    assert policy_receivers("redis", "critical", "RedisDown", "responder") == (
        "pager",
        "chat-critical",
    )


def test_routes_table_carries_the_rules_service(watchdog_repo: RepoPaths, tmp_path: Path) -> None:
    rows = [
        InventoryRow("-", "meta", "Watchdog", "", "none", "none"),
        InventoryRow("002", "redis", "RedisDown", "", "critical", ""),
        InventoryRow("-", "meta", "NoRule", "", "warning", "none"),
    ]
    services = alert_services(load_rules(watchdog_repo.rule_files()))
    assert services == {"RedisDown": "redis", "RedisMemoryHigh": "redis", "Watchdog": "prometheus"}
    table = tmp_path / "routes.yml"
    table.write_text(render_routes_table(rows, services))
    loaded = load_routes_table(table)
    assert loaded == expectations_for(rows, services)
    assert [route.labels for route in loaded] == [
        {"alertname": "Watchdog", "component": "meta", "severity": "none", "service": "prometheus"},
        {
            "alertname": "RedisDown",
            "component": "redis",
            "severity": "critical",
            "service": "redis",
        },
        {"alertname": "NoRule", "component": "meta", "severity": "warning"},
    ]
    assert [route.receivers for route in loaded] == [
        ("watchdog",),
        ("pager", "chat-critical"),
        ("chat-warnings",),
    ]


def test_templated_service_is_left_out_of_the_table(repo: RepoPaths) -> None:
    write_rules(repo, GOOD_RULES.replace("service: redis}", "service: '{{ $labels.service }}'}"))
    assert alert_services(load_rules(repo.rule_files())) == {"RedisDown": "", "RedisMemoryHigh": ""}


def test_routes_table_must_match_inventory() -> None:
    rows = [
        InventoryRow("002", "redis", "RedisDown", "", "critical", ""),
        InventoryRow("000", "redis", "RedisMemoryHigh", "", "warning", ""),
    ]
    table = [
        RouteExpectation("RedisDown", "redis", "warning", ("chat-warnings",)),
        RouteExpectation("Extra", "redis", "warning", ("chat-warnings",)),
    ]
    assert messages(compare_table_with_inventory(table, rows)) == [
        "RedisDown: routes.yml has redis/warning; the inventory has redis/critical",
        "RedisMemoryHigh: missing from routes.yml",
        "Extra: in routes.yml but not in the inventory",
    ]


def test_routes_table_must_carry_the_rules_service() -> None:
    rows = [
        InventoryRow("-", "meta", "ResponderDown", "", "critical", "none"),
        InventoryRow("-", "meta", "TargetDown", "", "warning", "none"),
    ]
    table = [
        RouteExpectation("ResponderDown", "meta", "critical", ("pager",), "prometheus"),
        RouteExpectation("TargetDown", "meta", "warning", ("chat-warnings",)),
    ]
    services = {"ResponderDown": "responder", "TargetDown": "prometheus"}
    assert messages(compare_table_with_inventory(table, rows, services)) == [
        "ResponderDown: routes.yml has service 'prometheus'; the rule has 'responder'",
        "TargetDown: routes.yml has service '-'; the rule has 'prometheus'",
    ]
    assert compare_table_with_inventory(table, rows) == []  # without services: not compared


def test_missing_binary_says_run_make_setup(
    repo: RepoPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo.prometheus_dir / "prometheus.yml").write_text("global: {}\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert [f.message for f in check_promtool_config(repo)] == [
        "promtool is not installed; run `make setup`"
    ]


def test_render_lists_failures_under_their_check() -> None:
    report = Report(
        (
            CheckResult("inventory", "all rules conform", ()),
            CheckResult("metrics", "known names", (Finding("metrics", "A", "bad", "out\nput"),)),
        )
    )
    assert render(report).splitlines() == [
        "ok    inventory  all rules conform",
        "FAIL  metrics    1 problem(s)",
        "      - A: bad",
        "            out",
        "            put",
        "2 checks, 1 failed, 1 problem(s)",
    ]
    assert not report.ok


def test_find_repo_root_walks_up(repo: RepoPaths) -> None:
    nested = repo.root / "docs" / "runbooks"
    assert find_repo_root(nested) == repo.root.resolve()
