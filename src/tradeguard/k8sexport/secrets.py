"""References to the one Kubernetes Secret that holds Alertmanager's credentials.

AlertmanagerConfig never carries a credential itself: each secret field is a ``{name, key}``
selector into a Secret in the object's namespace. The export never reads a secret file nor
keeps an inline value: a ``*_file`` field becomes a key named after the file (so the files of
``deploy/alertmanager/secrets/`` map one to one onto keys), and an inline value becomes a key
named after its field, recognised again only through a digest so the same value used twice
shares one key. What is returned and printed is therefore key names and field paths, never a
value.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

_KEY_CHARS = re.compile(r"[^-._a-zA-Z0-9]+")


@dataclass
class SecretKey:
    """One key the user must create in the Secret, and where the source uses it: field (with
    list indices dropped) -> the receivers whose field it is."""

    key: str
    origin: str  # where the value is in the source: a file path, or "inline"
    uses: dict[str, list[str]] = field(default_factory=dict)

    def describe(self) -> str:
        where = (
            f"the content of {self.origin}"
            if self.origin != "inline"
            else "the value the source writes inline (not copied here)"
        )
        used = "; ".join(
            f"{name} of receiver{'s' * (len(receivers) != 1)} {', '.join(receivers)}"
            for name, receivers in self.uses.items()
        )
        return f"{self.key}: {where}, as {used}"


def _key_name(text: str) -> str:
    """A valid Secret key (``[-._a-zA-Z0-9]+``) from a file name or field name."""
    return _KEY_CHARS.sub("-", text).strip("-.") or "secret"


class SecretRefs:
    """Hands out ``{name, key}`` selectors into one Secret and remembers the keys it used."""

    def __init__(self, secret_name: str, base: PurePosixPath | None = None) -> None:
        """``base``: the directory relative ``*_file`` paths are shown from (the one holding
        the Alertmanager configuration), so the user is told which file is meant."""
        self.secret_name = secret_name
        self.base = base
        self._by_origin: dict[str, SecretKey] = {}

    def _ref(
        self, origin_id: str, origin: str, key: str, receiver: str, field_name: str
    ) -> dict[str, str]:
        entry = self._by_origin.get(origin_id)
        if entry is None:
            taken = {e.key for e in self._by_origin.values()}
            unique, n = key, 2
            while unique in taken:
                unique, n = f"{key}-{n}", n + 1
            entry = self._by_origin[origin_id] = SecretKey(unique, origin)
        receivers = entry.uses.setdefault(re.sub(r"\[\d+\]", "", field_name), [])
        if receiver not in receivers:
            receivers.append(receiver)
        return {"name": self.secret_name, "key": entry.key}

    def from_file(self, path: str, receiver: str, field_name: str) -> dict[str, str]:
        """Selector for a ``*_file`` field: the key is the file's name."""
        file = PurePosixPath(path)
        shown = str(file if file.is_absolute() or self.base is None else self.base / file)
        return self._ref(f"file:{path}", shown, _key_name(file.name), receiver, field_name)

    def from_inline(self, value: str, key: str, receiver: str, field_name: str) -> dict[str, str]:
        """Selector for a value written inline; ``value`` is only digested, never kept."""
        digest = hashlib.sha256(value.encode()).hexdigest()
        return self._ref(f"inline:{digest}", "inline", _key_name(key), receiver, field_name)

    @property
    def keys(self) -> list[SecretKey]:
        return sorted(self._by_origin.values(), key=lambda e: e.key)
