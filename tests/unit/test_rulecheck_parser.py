"""The PromQL metric-name scanner behind the metrics consistency check.

Each case is an expression shape the rules use (or a trap: strings, matchers, durations,
grouping labels that look like metric names) with the exact names it must report.
"""

from __future__ import annotations

import pytest

from tradeguard.rulecheck.promql import PromQLSyntaxError, metric_names

CASES: list[tuple[str, list[str]]] = [
    ("up", ["up"]),
    ('up{job="redis"} == 0', ["up"]),
    # label matchers: names, regexes, and strings containing braces, quotes and operators
    ('up{job=~"redis|engine", layer!="a}b{c", x!~"y\\"z"} == 0', ["up"]),
    ("up{job='single quoted } brace'}", ["up"]),
    ("up{job=`raw ${x} string`}", ["up"]),
    # range vectors, offsets, durations with several units, @ modifiers
    (
        "rate(tradeguard_signals_dropped_total[5m] offset 1h30m)",
        ["tradeguard_signals_dropped_total"],
    ),
    ("increase(a_total[1m] @ 1609746000) > 3", ["a_total"]),
    ("increase(a_total[1m] @ start()) - b offset -5m", ["a_total", "b"]),
    # subqueries
    ("max_over_time(rate(x_total[1m])[10m:30s])", ["x_total"]),
    # aggregations with grouping before and after the body; the labels are not metrics
    (
        "sum by (instance, layer) (rate(redis_commands_total[1m]))",
        ["redis_commands_total"],
    ),
    ("sum(rate(redis_commands_total[1m])) without (cmd)", ["redis_commands_total"]),
    ("SUM BY (job) (up)", ["up"]),
    ('count_values("version", build_version)', ["build_version"]),
    ("topk(3, foo) / bottomk(2, bar)", ["foo", "bar"]),
    ("quantile(0.9, latency)", ["latency"]),
    # histogram_quantile over buckets with le in the grouping
    (
        "histogram_quantile(0.95, sum by (le, instance) "
        "(rate(tradeguard_order_duration_seconds_bucket[5m]))) > 5",
        ["tradeguard_order_duration_seconds_bucket"],
    ),
    # vector matching: on/ignoring/group_left/group_right label lists
    (
        "redis_memory_used_bytes / on(instance) group_left(layer) redis_memory_max_bytes > 0.8"
        " and on(instance) redis_memory_max_bytes > 0",
        ["redis_memory_used_bytes", "redis_memory_max_bytes"],
    ),
    ("a * ignoring(code) group_right b", ["a", "b"]),
    ("a * on() group_left c", ["a", "c"]),
    ("a unless on (instance) b or c", ["a", "b", "c"]),
    # bool modifier and set operators, case-insensitively
    ("a > bool 1 AND b OR c UNLESS d", ["a", "b", "c", "d"]),
    ("atan2(a, b) + (a atan2 b)", ["a", "b"]),
    # numbers: floats, exponents, hex, Inf/NaN, leading dot
    (
        "x > 1e3 and y < 2.5E-3 or z == 0x1F and w != .5 or v > Inf or u != NaN",
        ["x", "y", "z", "w", "v", "u"],
    ),
    # function arguments that are strings
    (
        'label_replace(up, "dst", "$1", "instance", "(.*):.*")',
        ["up"],
    ),
    ('label_join(up, "foo", ",", "a", "b")', ["up"]),
    # functions with no metric
    ("time() - 60", []),
    ("vector(1)", []),
    ('absent(up{job="engine"})', ["up"]),
    # recording-rule style names with colons
    ("job:tradeguard_signals:rate5m > 10", ["job:tradeguard_signals:rate5m"]),
    # __name__ matchers select a metric; regex ones cannot be resolved and are ignored
    ('{__name__="redis_up", layer="trade_state"} == 0', ["redis_up"]),
    ('{__name__=~"redis_.*"}', []),
    # comments and multi-line expressions
    ("# a comment mentioning not_a_metric\nup # trailing comment_metric\n== 0", ["up"]),
    (
        "(\n  time() - tradeguard_ha_heartbeat_timestamp_seconds\n) > 60\n",
        ["tradeguard_ha_heartbeat_timestamp_seconds"],
    ),
    # a name used twice is reported once, in order of first use
    ("a / (a + b)", ["a", "b"]),
    # the stream-lag approximation from the design brief
    (
        "(redis_stream_last_generated_id - on(instance, stream) group_right "
        "redis_stream_group_last_delivered_id) / 1000 > 30",
        ["redis_stream_last_generated_id", "redis_stream_group_last_delivered_id"],
    ),
    # keyword-like prefixes are still metric names
    (
        "bytes_total + order_count + sum_total + on_off",
        ["bytes_total", "order_count", "sum_total", "on_off"],
    ),
]


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_metric_names(expr: str, expected: list[str]) -> None:
    assert metric_names(expr) == expected


@pytest.mark.parametrize(
    "expr",
    [
        'up{job="redis}',  # unterminated string inside a matcher
        "up{job='x'",  # unclosed brace
        "rate(x[5m)",  # unclosed bracket
        '"just a string',
    ],
)
def test_unterminated_input_raises(expr: str) -> None:
    with pytest.raises(PromQLSyntaxError):
        metric_names(expr)
