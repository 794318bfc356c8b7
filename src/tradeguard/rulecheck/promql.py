"""Metric names used by a PromQL expression, without a PromQL parser.

promtool 2.42 cannot print an expression's syntax tree, and the checks only need the series
names an expression selects. A small scanner is enough: it skips what cannot be a metric name
(strings, comments, numbers and durations, range and subquery brackets, label-matcher braces,
keywords, aggregation operators and the label lists after ``by``/``on``/...) and reports every
other identifier not followed by ``(`` (a function call). A ``{__name__="x"}`` matcher counts
as a use of ``x``.
"""

from __future__ import annotations

import re

from tradeguard.errors import TradeguardError

# Binary-operator and modifier keywords (case-insensitive in PromQL).
KEYWORDS = frozenset({"and", "or", "unless", "atan2", "bool", "offset"})
# Keywords followed by an optional parenthesised list of label names.
GROUPING_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
# Aggregation operators may be followed by `by (...)` before their `(`.
AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    }
)
NUMBER_WORDS = frozenset({"inf", "nan"})

_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Decimal, float, exponent, hex, and durations such as 5m or 1h30m (digits then letters).
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z0-9_]*")
_MATCHER = re.compile(
    r"""([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"""
    r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)"""
)
_QUOTES = "\"'`"


class PromQLSyntaxError(TradeguardError):
    """The expression has an unterminated string, brace or bracket."""


def _skip_string(expr: str, start: int) -> int:
    """Index just past the string literal opening at ``start``."""
    quote = expr[start]
    i = start + 1
    while i < len(expr):
        char = expr[i]
        if char == "\\" and quote != "`":
            i += 2
            continue
        if char == quote:
            return i + 1
        i += 1
    raise PromQLSyntaxError(f"unterminated string starting at offset {start}: {expr[start:]!r}")


def _closing(expr: str, start: int, close: str) -> int:
    """Index of ``close`` matching the opener at ``start``, skipping strings on the way."""
    i = start + 1
    while i < len(expr):
        char = expr[i]
        if char in _QUOTES:
            i = _skip_string(expr, i)
            continue
        if char == close:
            return i
        i += 1
    raise PromQLSyntaxError(f"unclosed {expr[start]!r} at offset {start}: {expr[start:]!r}")


def _next_char(expr: str, start: int) -> str:
    """The next non-blank character at or after ``start`` ('' at the end)."""
    i = start
    while i < len(expr) and expr[i].isspace():
        i += 1
    return expr[i] if i < len(expr) else ""


def _skip_blank(expr: str, start: int) -> int:
    i = start
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    if literal[0] == "`":
        return body
    return re.sub(r"\\(.)", r"\1", body)


def _names_in_matchers(body: str) -> list[str]:
    return [
        _unquote(m.group(3))
        for m in _MATCHER.finditer(body)
        if m.group(1) == "__name__" and m.group(2) == "="
    ]


def metric_names(expr: str) -> list[str]:
    """The metric names ``expr`` selects, in order of first use, each once.

    Raises PromQLSyntaxError for an unterminated string, ``{`` or ``[``.
    """
    names: list[str] = []

    def add(name: str) -> None:
        if name not in names:
            names.append(name)

    i = 0
    n = len(expr)
    while i < n:
        char = expr[i]
        if char.isspace():
            i += 1
        elif char == "#":  # comment to the end of the line
            end = expr.find("\n", i)
            i = n if end < 0 else end + 1
        elif char in _QUOTES:
            i = _skip_string(expr, i)
        elif char == "{":
            end = _closing(expr, i, "}")
            for name in _names_in_matchers(expr[i + 1 : end]):
                add(name)
            i = end + 1
        elif char == "[":
            i = _closing(expr, i, "]") + 1
        elif char.isdigit() or (char == "." and expr[i + 1 : i + 2].isdigit()):
            match = _NUMBER.match(expr, i)
            i = match.end() if match else i + 1
        elif char.isalpha() or char in "_:":
            match = _IDENT.match(expr, i)
            assert match is not None  # the first character is a valid identifier start
            word = match.group(0)
            i = match.end()
            lower = word.lower()
            if lower in GROUPING_KEYWORDS:
                i = _skip_blank(expr, i)
                if i < n and expr[i] == "(":
                    i = _closing(expr, i, ")") + 1
            elif lower in KEYWORDS or lower in AGGREGATIONS or lower in NUMBER_WORDS:
                continue
            elif _next_char(expr, i) == "(":
                continue  # a function call
            else:
                add(word)
        else:
            i += 1  # operators, parentheses, commas, @
    return names
