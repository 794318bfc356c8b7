"""Alertmanager matchers as AlertmanagerConfig's ``{name, value, matchType}`` objects.

alertmanager.yml writes matchers as strings (``component=~"a|b"``, several per string allowed,
comma-separated, optionally in braces) or, in the older form, as ``match``/``match_re`` maps;
AlertmanagerConfig wants one object per matcher. Regular expressions keep Alertmanager's
meaning (anchored at both ends) because the operator passes them through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradeguard.k8sexport.errors import ExportError

# Longest first, so "=~" is not read as "=" followed by a value starting with "~".
OPERATORS = ("=~", "!~", "!=", "=")
_ESCAPES = {"n": "\n", '"': '"', "\\": "\\"}


def matcher(name: str, value: str, match_type: str) -> dict[str, str]:
    return {"name": name, "value": value, "matchType": match_type}


class _Reader:
    """A cursor over one matcher string; ``fail`` names the string and the position."""

    def __init__(self, text: str, where: str) -> None:
        self.text, self.where, self.pos = text, where, 0

    def fail(self, why: str) -> ExportError:
        return ExportError(f"{self.where}: cannot read matcher {self.text!r}: {why}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_spaces()
        return self.pos >= len(self.text)

    def quoted(self) -> str:
        out: list[str] = []
        self.pos += 1  # the opening quote
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                if self.pos >= len(self.text) or self.text[self.pos] not in _ESCAPES:
                    raise self.fail("bad escape in a quoted string")
                out.append(_ESCAPES[self.text[self.pos]])
                self.pos += 1
            else:
                out.append(char)
        raise self.fail("unterminated quoted string")

    def name(self) -> str:
        self.skip_spaces()
        if self.text.startswith('"', self.pos):
            return self.quoted()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in "=!~,{} \t":
            self.pos += 1
        if self.pos == start:
            raise self.fail("no label name")
        return self.text[start : self.pos]

    def operator(self) -> str:
        self.skip_spaces()
        for op in OPERATORS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        raise self.fail("no operator (one of =, !=, =~, !~)")

    def value(self) -> str:
        self.skip_spaces()
        if self.text.startswith('"', self.pos):
            return self.quoted()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] != ",":
            self.pos += 1
        return self.text[start : self.pos].strip()


def parse_matchers(text: Any, where: str) -> list[dict[str, str]]:
    """The matchers of one ``matchers:`` entry (``name op value``, comma-separated)."""
    if not isinstance(text, str):
        raise ExportError(f"{where}: a matcher must be a string, got {text!r}")
    inner = text.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    reader = _Reader(inner, where)
    found: list[dict[str, str]] = []
    while not reader.at_end():
        name = reader.name()
        op = reader.operator()
        found.append(matcher(name, reader.value(), op))
        if not reader.at_end():
            if reader.text[reader.pos] != ",":
                raise reader.fail("expected ',' between matchers")
            reader.pos += 1
    if not found:
        raise ExportError(f"{where}: empty matcher {text!r}")
    return found


def matchers_of(item: Mapping[str, Any], where: str, prefix: str = "") -> list[dict[str, str]]:
    """Every matcher of a route or an inhibit rule's side: ``<prefix>matchers`` plus the old
    ``<prefix>match`` (equality) and ``<prefix>match_re`` (regex) maps, in that order."""
    found: list[dict[str, str]] = []
    entries = item.get(f"{prefix}matchers") or []
    if not isinstance(entries, list):
        raise ExportError(f"{where}.{prefix}matchers: must be a list of strings")
    for n, entry in enumerate(entries):
        found.extend(parse_matchers(entry, f"{where}.{prefix}matchers[{n}]"))
    for key, op in ((f"{prefix}match", "="), (f"{prefix}match_re", "=~")):
        table = item.get(key) or {}
        if not isinstance(table, Mapping):
            raise ExportError(f"{where}.{key}: must be a map of label to value")
        found.extend(matcher(str(name), str(value), op) for name, value in table.items())
    return found
