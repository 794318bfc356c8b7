"""Prometheus' rules API read and shaped (tradeguard.responder.prom_rules), and where the
alert operations find Prometheus (tradeguard.responder.prometheus_url)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeguard.responder.prom_rules import (
    RulesShapeError,
    alerting_rules,
    health_first,
    over_share,
    parse_rule_groups,
    slowest_groups,
    slowest_rules,
    unhealthy,
)
from tradeguard.responder.prometheus_url import (
    PROMETHEUS_URL_ENV,
    STACK_RUN_DIR,
    STACK_STATE_FILE,
    NoPrometheusURL,
    resolve_prometheus,
    stack_prometheus_url,
)
from tradeguard.stack import DEFAULT_RUN_DIR
from tradeguard.stack.layout import STATE_FILE, StackLayout

NEVER = "0001-01-01T00:00:00Z"


def rule(name: str, health: str = "ok", state: str = "inactive", **extra: Any) -> dict[str, Any]:
    """An alerting rule as Prometheus 2.42 answers it."""
    return {
        "state": state,
        "name": name,
        "query": "up == 0",
        "duration": 60,
        "keepFiringFor": 0,
        "labels": {"severity": "critical"},
        "annotations": {"summary": "s"},
        "alerts": [],
        "health": health,
        "evaluationTime": 0.0002,
        "lastEvaluation": "2026-12-04T13:50:14.322946484Z",
        "type": "alerting",
        **extra,
    }


def record(name: str, health: str = "ok", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "query": "sum(up)",
        "labels": {},
        "health": health,
        "evaluationTime": 0.0001,
        "lastEvaluation": "2026-12-04T13:50:14Z",
        "type": "recording",
        **extra,
    }


def group(name: str, rules: list[dict[str, Any]], interval: float = 1, took: float = 0.001) -> Any:
    return {
        "name": name,
        "file": f"/etc/prometheus/rules/{name}.rules.yml",
        "rules": rules,
        "interval": interval,
        "limit": 0,
        "evaluationTime": took,
        "lastEvaluation": "2026-12-04T13:50:14.322933735Z",
    }


def answer(*groups: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"groups": list(groups)}}


SAMPLE = answer(
    group(
        "redis",
        [
            rule("RedisDown"),
            rule(
                "RedisMemoryHigh",
                state="firing",
                alerts=[
                    {
                        "labels": {"alertname": "x"},
                        "state": "firing",
                        "activeAt": "2026-12-04T13:00:00Z",
                        "value": "1",
                    }
                ],
            ),
            record("redis:up:sum"),
        ],
        interval=1,
        took=0.05,
    ),
    group(
        "engine",
        [
            rule("EngineDown", health="err", lastError="many-to-many\n matching"),
            rule("EngineSlow", health="unknown", lastEvaluation=NEVER, evaluationTime=0),
            record("engine:broken", health="err", lastError="boom"),
        ],
        interval=30,
        took=6.0,
    ),
)


def test_groups_and_rules_are_read_with_their_figures() -> None:
    groups = parse_rule_groups(SAMPLE)
    assert [g.name for g in groups] == ["redis", "engine"]
    redis, engine = groups
    assert redis.share == pytest.approx(0.05) and engine.share == pytest.approx(0.2)
    firing = redis.rules[1]
    assert firing.state == "firing" and firing.for_seconds == 60
    assert firing.alerts[0].labels == {"alertname": "x"} and firing.alerts[0].state == "firing"
    assert redis.rules[2].kind == "recording" and redis.rules[2].state == ""
    down, slow, _ = engine.rules
    assert down.last_error == "many-to-many matching"  # one line
    assert slow.last_evaluation is None  # Go's zero time means never
    assert [r.name for r in alerting_rules(groups)] == [
        "RedisDown",
        "RedisMemoryHigh",
        "EngineDown",
        "EngineSlow",
    ]


def test_status_order_puts_errors_first_and_keeps_failing_recording_rules() -> None:
    rules = health_first(parse_rule_groups(SAMPLE))
    assert [(r.name, r.health) for r in rules] == [
        ("EngineDown", "err"),
        ("engine:broken", "err"),
        ("EngineSlow", "unknown"),
        ("RedisMemoryHigh", "ok"),  # firing before inactive
        ("RedisDown", "ok"),
    ]
    assert [r.name for r in unhealthy(rules)] == ["EngineDown", "engine:broken", "EngineSlow"]


def test_slowest_groups_rank_by_share_of_interval_and_flag_over_the_share() -> None:
    groups = parse_rule_groups(SAMPLE)
    # engine took 6 s but has 30 s: 20 %; redis 50 ms of 1 s: 5 %
    assert [g.name for g in slowest_groups(groups, 5)] == ["engine", "redis"]
    assert [g.name for g in slowest_groups(groups, 1)] == ["engine"]
    assert [g.name for g in over_share(groups, 0.10)] == ["engine"]
    assert over_share(groups, 0.25) == []
    assert [r.name for r in slowest_rules(groups, 2)] == ["RedisDown", "RedisMemoryHigh"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "expected a JSON object, got a list"),
        ({"status": "error", "error": "bad\nthing"}, "status 'error': bad thing"),
        ({"status": "success"}, "answer.data: missing"),
        ({"status": "success", "data": {"groups": {}}}, "data.groups: expected a list"),
        (answer(group("g", [rule("A")], interval="1m")), "data.groups[0].interval: expected a"),
        (answer(group("g", [rule("A")], interval=True)), "got a boolean"),
        (answer(group("g", [{"name": "A", "type": "alerting"}])), "rules[0].health: missing"),
        (answer(group("g", ["A"])), "data.groups[0].rules[0]: expected an object"),
        (answer(group("g", [rule("A", lastEvaluation="yesterday")])), "not a time"),
        (answer(group("g", [rule("A", labels=[1])])), "labels: expected an object"),
    ],
)
def test_an_answer_of_another_shape_names_the_wrong_field(body: object, says: str) -> None:
    with pytest.raises(RulesShapeError) as caught:
        parse_rule_groups(body)
    assert says in str(caught.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_is_read_or_refused_by_name_never_crashes(body: object) -> None:
    try:
        parse_rule_groups(body)
    except RulesShapeError:
        pass


KEYS = [
    *("status", "data", "groups", "name", "file", "rules", "interval", "health", "type"),
    *("state", "evaluationTime", "lastEvaluation", "duration", "labels", "alerts", "lastError"),
    *("activeAt", "error"),
]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_damaged_real_answer_is_read_or_refused_by_name(data: st.DataObject) -> None:
    """Take the sample apart at a random place and put random JSON there."""
    body: Any = copy.deepcopy(SAMPLE)
    node = body
    for _ in range(data.draw(st.integers(0, 5))):
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            key = data.draw(st.integers(0, len(node) - 1))
        else:
            break
        if isinstance(node[key], dict | list):
            node = node[key]
    if isinstance(node, dict):
        node[data.draw(st.sampled_from(KEYS))] = data.draw(JSON)
    elif isinstance(node, list) and node:
        node[0] = data.draw(JSON)
    try:
        groups = parse_rule_groups(body)
    except RulesShapeError:
        return
    assert all(r.health for g in groups for r in g.rules)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ok", "err", "unknown"]),
            st.sampled_from(["inactive", "pending", "firing"]),
            st.booleans(),
        ),
        max_size=30,
    )
)
def test_status_lists_each_alerting_rule_once_and_never_an_error_after_an_ok(
    specs: list[tuple[str, str, bool]],
) -> None:
    rules = [
        rule(f"r{i}", health, state) if alerting else record(f"r{i}", health)
        for i, (health, state, alerting) in enumerate(specs)
    ]
    listed = health_first(parse_rule_groups(answer(group("g", rules))))
    expected = {f"r{i}" for i, (h, _, alerting) in enumerate(specs) if alerting or h != "ok"}
    assert sorted(r.name for r in listed) == sorted(expected)
    ranks = [{"err": 0, "unknown": 1, "ok": 2}[r.health] for r in listed]
    assert ranks == sorted(ranks)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.001, 600), st.floats(0, 100)), min_size=1, max_size=20),
    st.floats(0, 1),
    st.integers(1, 25),
)
def test_flagged_groups_are_exactly_those_over_the_share(
    specs: list[tuple[float, float]], share: float, top: int
) -> None:
    groups = parse_rule_groups(
        answer(*(group(f"g{i}", [], interval, took) for i, (interval, took) in enumerate(specs)))
    )
    flagged = {g.name for g in over_share(groups, share)}
    assert flagged == {f"g{i}" for i, (iv, took) in enumerate(specs) if took / iv > share}
    ranked = slowest_groups(groups, top)
    assert len(ranked) == min(top, len(groups))
    shares = [g.share for g in ranked]
    assert shares == sorted(shares, reverse=True)


# ---- where Prometheus is ---------------------------------------------------------------------
def test_the_stack_layout_is_read_as_the_stack_writes_it(tmp_path: Path) -> None:
    """The responder may not import the stack; these names are the stack's, spelled again."""
    assert STACK_RUN_DIR == DEFAULT_RUN_DIR and STACK_STATE_FILE == STATE_FILE
    layout = StackLayout.allocate(tmp_path)
    layout.save()
    assert stack_prometheus_url(tmp_path) == layout.prometheus_url
    target = resolve_prometheus(None, tmp_path)
    assert target.url == layout.prometheus_url and str(tmp_path) in target.source


def test_a_given_url_wins_over_the_stack(tmp_path: Path) -> None:
    StackLayout.allocate(tmp_path).save()
    target = resolve_prometheus("http://prom:9090", tmp_path)
    assert target.url == "http://prom:9090" and target.source == "--prometheus-url"


@pytest.mark.parametrize(
    "content",
    [None, "not json", "[]", json.dumps({"prometheus_port": "9090"}), json.dumps({"x": 1})],
)
def test_no_usable_layout_says_how_to_give_the_url(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / STACK_STATE_FILE).write_text(content)
    assert stack_prometheus_url(tmp_path) is None
    with pytest.raises(NoPrometheusURL) as caught:
        resolve_prometheus(None, tmp_path)
    message = str(caught.value)
    assert "--prometheus-url" in message and PROMETHEUS_URL_ENV in message
    assert "\n" not in message
