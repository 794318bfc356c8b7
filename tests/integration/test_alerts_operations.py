"""Seed 003's daily and weekly operations as an operator runs them: ``tradeguard alerts status``,
``summary``, ``performance`` and ``optimize`` in their own processes, against a real Prometheus
loaded with the shipped rule files and a real responder whose history came in through its
webhook; and, against a closed port and a small HTTP server answering garbage, one ``error:``
line and exit 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from responder_harness import TOKEN, Responder, StartResponder, alert, body, payload

from tradeguard.net import LOOPBACK
from tradeguard.process import wait_until
from tradeguard.process.ports import free_port
from tradeguard.process.services import Prometheus
from tradeguard.responder.client import ResponderClient
from tradeguard.responder.events import iso
from tradeguard.rulecheck.paths import RepoPaths, find_repo_root
from tradeguard.stack.layout import StackLayout

REPO = find_repo_root(Path(__file__).parent)
RULES = RepoPaths(REPO).rules_dir
CLI = [sys.executable, "-m", "tradeguard.cli", "alerts"]
WIDE = "400"  # columns: no table cell wraps, so one row is one line of output

# A rule that loads and passes promtool, then fails at every evaluation (two series on the
# right-hand side of a one-to-one match), and one that always fires and reaches no responder.
EXTRA_RULES = {
    "groups": [
        {
            "name": "ops-test",
            "rules": [
                {
                    "alert": "OpsTestBrokenJoin",
                    "expr": 'vector(1) + on() (label_replace(vector(1), "a", "x", "", "") '
                    'or label_replace(vector(1), "a", "y", "", ""))',
                    "labels": {"severity": "warning", "component": "ops"},
                },
                {
                    "alert": "OpsTestAlwaysFiring",
                    "expr": "vector(1)",
                    "labels": {"severity": "warning", "component": "ops"},
                },
            ],
        }
    ]
}


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of an operator's shell with no tradeguard settings but ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGUARD_")}
    env["COLUMNS"] = WIDE
    env.update(extra)
    return env


def tradeguard(*args: str | Path, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=cli_env(**env),
    )


def line_with(text: str, *needles: str) -> str:
    """The one output line holding every needle (a table row), or fail showing the output."""
    lines = [line for line in text.splitlines() if all(n in line for n in needles)]
    assert len(lines) == 1, f"expected one line with {needles}, found {len(lines)} in:\n{text}"
    return lines[0]


def rule_line(file: str, name: str) -> str:
    """``deploy/prometheus/rules/<file>:<line>`` of ``- alert: <name>``, found by reading."""
    lines = (RULES / file).read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if line.strip() == f"- alert: {name}")
    return f"deploy/prometheus/rules/{file}:{number}"


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


# ---- Prometheus with the shipped rules -----------------------------------------------------------
def start_prometheus(workdir: Path, extra_rules: dict[str, Any] | None = None) -> Prometheus:
    """A Prometheus evaluating every shipped rule file (and ``extra_rules``) each second, with no
    targets; returned once every rule has been evaluated."""
    rule_files = [str(RULES / "*.yml")]
    workdir.mkdir(parents=True, exist_ok=True)
    if extra_rules is not None:
        extra = workdir / "extra.rules.yml"
        extra.write_text(yaml.safe_dump(extra_rules))
        rule_files.append(str(extra))
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump({"global": {"evaluation_interval": "1s"}, "rule_files": rule_files})
    )
    prometheus = Prometheus(workdir / "server", config).start()

    def evaluated() -> bool:
        groups = rules_api(prometheus)["data"]["groups"]
        return bool(groups) and all(r["health"] != "unknown" for g in groups for r in g["rules"])

    try:
        wait_until(evaluated, 30, "every rule to be evaluated once")
    except BaseException:
        prometheus.stop()
        raise
    return prometheus


def rules_api(prometheus: Prometheus) -> Any:
    return httpx.get(f"{prometheus.endpoint.url}/api/v1/rules", timeout=5).json()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def broken_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = start_prometheus(tmp_path_factory.mktemp("prometheus-broken"), EXTRA_RULES)
    try:
        yield server
    finally:
        server.stop()


def shipped_alerts() -> list[str]:
    return [
        line.strip().removeprefix("- alert: ")
        for path in sorted(RULES.glob("*.yml"))
        for line in path.read_text().splitlines()
        if line.strip().startswith("- alert: ")
    ]


# ---- the responder's history, through its webhook ------------------------------------------------
def am_alert(
    name: str,
    fingerprint: str,
    starts: datetime,
    ends: datetime | None = None,
    severity: str = "critical",
    component: str = "redis",
) -> dict[str, Any]:
    """One alert of an Alertmanager webhook: firing, or resolved at ``ends``."""
    return alert(
        "resolved" if ends is not None else "firing",
        labels={
            "alertname": name,
            "severity": severity,
            "component": component,
            "instance": f"{LOOPBACK}:9121",
        },
        annotations={"summary": f"{name} fires.", "runbook_url": f"docs/runbooks/{name}.md"},
        startsAt=iso(starts),
        endsAt=iso(ends) if ends is not None else "0001-01-01T00:00:00Z",
        fingerprint=fingerprint,
    )


def deliver(responder: Responder, *alerts: dict[str, Any]) -> None:
    response = responder.post(body(payload(*alerts)))
    assert response.status_code == 200, response.text


def flap(
    responder: Responder,
    name: str,
    fingerprint: str,
    times: int,
    lasted: timedelta,
    first: datetime,
    severity: str = "critical",
    component: str = "redis",
) -> None:
    """``times`` occurrences of one alert, a minute apart, each firing for ``lasted``."""
    starts = [first + timedelta(minutes=i) for i in range(times)]
    for start in starts:
        deliver(responder, am_alert(name, fingerprint, start, None, severity, component))
        deliver(responder, am_alert(name, fingerprint, start, start + lasted, severity, component))


def acknowledge(responder: Responder, fingerprint: str, false_positive: bool) -> None:
    with ResponderClient(responder.url, TOKEN) as client:
        client.acknowledge(fingerprint, "ana", false_positive=false_positive)


def ask_responder(responder: Responder, *args: str | Path, cwd: Path = REPO) -> Any:
    return tradeguard(*args, "--url", responder.url, cwd=cwd, TRADEGUARD_RESPONDER_TOKEN=TOKEN)


# ---- alerts status -------------------------------------------------------------------------------
def test_status_lists_every_shipped_alerting_rule_healthy(
    prometheus: Prometheus, tmp_path: Path
) -> None:
    out = tradeguard("status", "--prometheus-url", prometheus.endpoint.url, "--run-dir", tmp_path)
    assert out.returncode == 0, out.stderr
    names = shipped_alerts()
    assert f"{len(names)} alerting rules, {len(names)} ok, 0 err, 0 unknown" in out.stdout
    for name in set(names):
        assert f" {name} " in out.stdout, name
    watchdog = line_with(out.stdout, " Watchdog ")
    assert "firing" in watchdog and "ago" in watchdog


def test_status_puts_a_failing_rule_first_with_its_error_and_exits_1(
    broken_prometheus: Prometheus, tmp_path: Path
) -> None:
    out = tradeguard(
        "status", "--prometheus-url", broken_prometheus.endpoint.url, "--run-dir", tmp_path
    )
    assert out.returncode == 1, (out.stdout, out.stderr)
    rows = [line for line in out.stdout.splitlines() if line.startswith("│")]
    assert "OpsTestBrokenJoin" in rows[0] and " err " in rows[0]
    assert "many-to-many matching not allowed" in rows[0]
    assert "1 err" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "1 rule(s) not healthy: OpsTestBrokenJoin (err)"
    assert "Traceback" not in out.stderr


def test_status_finds_the_local_stack_or_the_environment(
    prometheus: Prometheus, tmp_path: Path
) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    layout = StackLayout(run_dir=stack, prometheus_port=prometheus.endpoint.port)
    layout.save()
    out = tradeguard("status", "--run-dir", stack)
    assert out.returncode == 0, out.stderr
    assert f"Prometheus at {prometheus.endpoint.url} (the local stack in {stack})" in out.stdout

    nowhere = tmp_path / "none"
    out = tradeguard(
        "status", "--run-dir", nowhere, TRADEGUARD_PROMETHEUS_URL=prometheus.endpoint.url
    )
    assert out.returncode == 0, out.stderr
    assert "(--prometheus-url)" in out.stdout


@pytest.mark.parametrize("command", ["status", "performance"])
def test_without_a_prometheus_the_error_says_how_to_name_one(command: str, tmp_path: Path) -> None:
    line = one_error_line(tradeguard(command, cwd=tmp_path))  # no run/stack there
    assert "--prometheus-url" in line and "TRADEGUARD_PROMETHEUS_URL" in line
    assert "run/stack/stack.json" in line


# ---- alerts performance --------------------------------------------------------------------------
def test_performance_ranks_the_groups_and_flags_those_over_the_share(
    prometheus: Prometheus, tmp_path: Path
) -> None:
    groups = rules_api(prometheus)["data"]["groups"]
    url = prometheus.endpoint.url
    # (90 %, not the default 10 %: a loaded CI host must not make this test fail)
    out = tradeguard(
        "performance",
        "--prometheus-url",
        url,
        "--top",
        "3",
        "--max-share",
        "0.9",
        "--run-dir",
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert f"the 3 slowest of {len(groups)} groups" in out.stdout
    assert "the 3 slowest rules" in out.stdout
    assert "no group above 90% of its interval" in out.stdout

    # Every evaluation takes some time: over a share of 0, every group is flagged, with figures.
    out = tradeguard("performance", "--prometheus-url", url, "--max-share", "0")
    assert out.returncode == 1, (out.stdout, out.stderr)
    flagged = [line for line in out.stdout.splitlines() if line.startswith("slow: group ")]
    assert len(flagged) == len(groups), out.stdout
    assert all("of its 1s interval" in line and "above 0%" in line for line in flagged)


# ---- alerts summary ------------------------------------------------------------------------------
def test_summary_groups_what_fires_and_tells_what_changed(
    start_responder: StartResponder, broken_prometheus: Prometheus, tmp_path: Path
) -> None:
    responder = start_responder()
    now = datetime.now(UTC)
    recent = now - timedelta(minutes=20)
    deliver(
        responder,
        am_alert("RedisDown", "aa01", recent),
        am_alert("RedisNoClients", "aa02", recent),
        am_alert("SignalBacklog", "aa03", recent, severity="warning", component="signal_stream"),
        am_alert("NoLeader", "aa04", now - timedelta(days=2), component="ha_coordination"),
    )
    deliver(
        responder,
        am_alert(
            "SignalBacklog",
            "aa03",
            recent,
            recent + timedelta(minutes=5),
            severity="warning",
            component="signal_stream",
        ),
    )
    acknowledge(responder, "aa01", false_positive=False)

    out = ask_responder(
        responder,
        "summary",
        "--since",
        "1",
        "--prometheus-url",
        broken_prometheus.endpoint.url,
        "--run-dir",
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "3 alert(s) firing now" in out.stdout
    redis = line_with(out.stdout, "RedisDown, RedisNoClients", " 2 ")
    assert "critical" in redis and " redis " in redis and " 2 " in redis
    assert "critical" in line_with(out.stdout, " NoLeader ")
    assert "the last 1 hour(s): since" in out.stdout
    started = line_with(out.stdout, "started firing")
    assert "3 (2 still firing)" in started
    assert "RedisDown, RedisNoClients, SignalBacklog" in started  # not NoLeader: two days old
    assert "SignalBacklog" in line_with(out.stdout, " resolved ")
    assert "1 of 4" in line_with(out.stdout, "acknowledged (last 24 h)")
    prometheus_line = line_with(out.stdout, "Prometheus at", "(--prometheus-url)")
    assert "1 rule(s) not healthy" in prometheus_line
    missing = line_with(out.stdout, "firing in Prometheus, not at the responder")
    assert missing.endswith("OpsTestAlwaysFiring")  # the Watchdog is not news

    today = ask_responder(responder, "summary", "--run-dir", tmp_path)
    assert today.returncode == 0, today.stderr
    assert "today: since " in today.stdout and " 00:00 UTC" in today.stdout


def test_summary_of_a_quiet_day_and_a_stack_long_gone(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    responder = start_responder()
    StackLayout(run_dir=tmp_path, prometheus_port=free_port()).save()  # its Prometheus is gone
    out = ask_responder(responder, "summary", "--run-dir", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "no alerts firing now" in out.stdout
    assert "0 (0 still firing)" in line_with(out.stdout, "started firing")
    assert "0 of 0" in line_with(out.stdout, "acknowledged")
    note = line_with(out.stdout, "Prometheus not consulted (the local stack in")
    assert "is unreachable" in note


# ---- alerts optimize -----------------------------------------------------------------------------
def test_optimize_names_the_rule_and_the_figures_of_each_suggestion(
    start_responder: StartResponder,
) -> None:
    responder = start_responder()
    now = datetime.now(UTC)
    flap(responder, "SignalBacklog", "bb01", 7, timedelta(seconds=20), now - timedelta(hours=3))
    deliver(responder, am_alert("RedisDown", "bb02", now - timedelta(days=2)))  # still firing
    deliver(responder, am_alert("RedisNoClients", "bb03", now - timedelta(minutes=5)))

    out = ask_responder(responder, "optimize", "--rules-dir", RULES)
    assert out.returncode == 0, out.stderr
    assert "9 occurrence(s) of 3 alert(s), 7 resolved, 0 acknowledged" in out.stdout
    backlog = rule_line("signal_stream.rules.yml", "SignalBacklog")
    flapping = line_with(out.stdout, " flapping ", "SignalBacklog")
    assert backlog in flapping
    assert "fired and resolved 7 times; median firing time 20s" in flapping
    assert "set `for: 40s` (now 10s) or longer" in flapping  # the rule's for is 10s
    assert "would have kept 7 of these 7 occurrences quiet" in flapping
    ignored = line_with(out.stdout, " never acknowledged ", "SignalBacklog")
    assert backlog in ignored and "fired 7 times, acknowledged 0 times" in ignored
    assert "lower its severity to warning (now critical)" in ignored
    stuck = line_with(out.stdout, " firing for long ", "RedisDown")
    assert rule_line("redis.rules.yml", "RedisDown") in stuck
    assert "fired for 2d and still fires" in stuck and "not actionable" in stuck
    assert "RedisNoClients" not in out.stdout  # once, five minutes: nothing to say
    assert "not checked" not in out.stdout


def test_optimize_suggests_a_higher_threshold_for_false_positives(
    start_responder: StartResponder,
) -> None:
    responder = start_responder()
    spike = "TradeSlippageSpike"
    for i, false_positive in enumerate([True, True, False, True]):
        start = datetime.now(UTC) - timedelta(hours=5 - i)
        deliver(responder, am_alert(spike, "cc01", start, component="trade_engine"))
        acknowledge(responder, "cc01", false_positive)

    out = ask_responder(responder, "optimize", "--rules-dir", RULES, "--days", "2")
    assert out.returncode == 0, out.stderr
    row = line_with(out.stdout, " false positives ", spike)
    assert rule_line("trade_engine.rules.yml", spike) in row
    assert "3 of 4 acknowledgements (75%) marked false positive" in row
    assert "raise the threshold of `" in row
    assert "4 acknowledged (75% false positive)" in out.stdout


def test_optimize_without_anything_to_change_says_so_with_the_figures(
    start_responder: StartResponder,
) -> None:
    responder = start_responder()
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    flap(responder, "RedisNoClients", "dd01", 2, timedelta(minutes=3), an_hour_ago)
    out = ask_responder(responder, "optimize", "--rules-dir", RULES)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("no suggestions over the last 7 day(s), since "), out.stdout
    assert "2 occurrence(s) of 1 alert(s), 2 resolved, 0 acknowledged" in out.stdout


def test_optimize_knows_whose_acknowledgements_they_were(
    start_responder: StartResponder,
) -> None:
    """The report gives each alert's acknowledgements: the one nobody took is named, the one
    somebody took is not, whatever the totals."""
    responder = start_responder()
    now = datetime.now(UTC)
    flap(responder, "RedisNoClients", "ee01", 5, timedelta(minutes=3), now - timedelta(hours=2))
    flap(responder, "RedisDown", "ee02", 5, timedelta(minutes=3), now - timedelta(hours=1))
    acknowledge(responder, "ee02", false_positive=True)
    out = ask_responder(responder, "optimize", "--rules-dir", RULES)
    assert out.returncode == 0, out.stderr
    never = line_with(out.stdout, "never acknowledged", "RedisNoClients")
    assert "RedisDown" not in never
    assert not any(
        "never acknowledged" in line and "RedisDown" in line for line in out.stdout.splitlines()
    )
    assert "not checked" not in out.stdout
    assert "false positives" not in out.stdout  # one acknowledgement is below --min-acks 3


def test_optimize_reads_a_history_longer_than_one_page(start_responder: StartResponder) -> None:
    """NoLeader flapped early; then RedisDown filled more than a page (1000 events). The newest
    page holds no NoLeader: it is fetched by name, from the rule files' names."""
    responder = start_responder()
    now = datetime.now(UTC)
    flap(responder, "NoLeader", "ff01", 6, timedelta(seconds=40), now - timedelta(days=1))
    first = now - timedelta(hours=12)
    starts = [first + timedelta(seconds=30 * i) for i in range(520)]
    deliver(responder, *(am_alert("RedisDown", "ff02", s) for s in starts))
    deliver(
        responder, *(am_alert("RedisDown", "ff02", s, s + timedelta(seconds=10)) for s in starts)
    )

    out = ask_responder(responder, "optimize", "--rules-dir", RULES)
    assert out.returncode == 0, out.stderr
    leader = line_with(out.stdout, " flapping ", "NoLeader")
    assert "fired and resolved 6 times; median firing time 40s" in leader
    assert rule_line("ha_coordination.rules.yml", "NoLeader") in leader
    assert "fired and resolved" in line_with(out.stdout, " flapping ", "RedisDown")
    assert "history longer than one page for RedisDown" in out.stdout


# ---- unreachable, or answering garbage -----------------------------------------------------------
class Garbage:
    """A loopback HTTP server answering every request with ``answer`` (status, content type,
    body): a proxy's error page, a wrong port, a broken server."""

    def __init__(self) -> None:
        self.answer: tuple[int, str, bytes] = (200, "application/json", b"{}")
        garbage = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                status, content_type, payload = garbage.answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _reply

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def garbage() -> Iterator[Garbage]:
    server = Garbage()
    try:
        yield server
    finally:
        server.stop()


# Wrong for both APIs: Prometheus' groups are not a list; the responder's records lack fields
# (and its report every figure).
WRONG_SHAPE = json.dumps({"status": "success", "data": {"groups": "none"}, "alerts": [{"a": 1}]})
ANSWERS = {
    "500 with JSON": (500, "application/json", b'{"error": "internal error"}'),
    "500 with HTML": (500, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "200 not JSON": (200, "text/plain", b"OK"),
    "200 JSON of another shape": (200, "application/json", WRONG_SHAPE.encode()),
}
COMMANDS = {
    "status": ["status", "--prometheus-url", "{url}"],
    "performance": ["performance", "--prometheus-url", "{url}"],
    "summary": ["summary", "--url", "{url}"],
    "optimize": ["optimize", "--url", "{url}"],
}


def run_all(url: str, cwd: Path, commands: dict[str, list[str]] = COMMANDS) -> dict[str, Any]:
    """Every command at once (each in its own process), pointed at ``url``."""
    env = cli_env(TRADEGUARD_RESPONDER_TOKEN=TOKEN)
    running = {
        name: subprocess.Popen(
            [*CLI, *(arg.format(url=url) for arg in args), "--timeout", "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=env,
        )
        for name, args in commands.items()
    }
    results = {}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=60)
        results[name] = subprocess.CompletedProcess(
            process.args, process.returncode, stdout, stderr
        )
    return results


def test_a_closed_port_is_one_error_line_and_exit_2(tmp_path: Path) -> None:
    url = f"http://{LOOPBACK}:{free_port()}"
    for name, out in run_all(url, tmp_path).items():
        line = one_error_line(out)
        assert "is unreachable" in line and url in line, (name, line)


@pytest.mark.parametrize("answer", list(ANSWERS))
def test_garbage_answers_are_one_error_line_and_exit_2(
    answer: str, garbage: Garbage, tmp_path: Path
) -> None:
    garbage.answer = ANSWERS[answer]
    for name, out in run_all(garbage.url, tmp_path).items():
        line = one_error_line(out)
        assert garbage.url in line, (name, line)
        if answer.startswith("500"):
            assert "answered 500" in line, (name, line)


def test_summary_with_a_prometheus_answering_garbage_is_exit_2(
    start_responder: StartResponder, garbage: Garbage, tmp_path: Path
) -> None:
    responder = start_responder()
    garbage.answer = ANSWERS["200 JSON of another shape"]
    out = ask_responder(
        responder, "summary", "--prometheus-url", garbage.url, "--run-dir", tmp_path
    )
    line = one_error_line(out)
    assert f"Prometheus at {garbage.url} answered something other than the rules API" in line
    assert "data.groups: expected a list, got a string" in line


def test_a_prometheus_without_rules_is_not_a_healthy_one(garbage: Garbage, tmp_path: Path) -> None:
    garbage.answer = (200, "application/json", b'{"status": "success", "data": {"groups": []}}')
    results = run_all(garbage.url, tmp_path, {k: COMMANDS[k] for k in ("status", "performance")})
    assert results["status"].returncode == 1
    assert "evaluates no alerting rules" in results["status"].stdout
    assert results["performance"].returncode == 0
    assert "evaluates no rule groups" in results["performance"].stdout
