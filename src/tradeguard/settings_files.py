"""Settings that may hold a password, each of which may come from a file: ``x`` or ``x_file``.

A URL with a password (``redis://:pw@host``, ``postgresql://u:pw@host/db``) on a command line is
in ``ps`` for every user of the host, and in a container's environment it is in ``docker
inspect``. Each setting that may hold one therefore has a ``_file`` companion naming a file that
holds the value alone (a Docker or Kubernetes secret, a 0600 file): ``TRADEGUARD_REDIS_URL_FILE``
in the environment, ``redis_url_file`` in the TOML settings or as a keyword, ``--ledger-url-file``
on the command line. Surrounding whitespace and the final newline are ignored; the file must hold
one line, and an error names the file, never its contents.

A value and its file are one setting. One source (keyword arguments or the command line, the
environment, the TOML file) gives one or the other, never both; between sources the usual
precedence decides for the pair as a whole, so ``--redis-url`` still wins over a
``TRADEGUARD_REDIS_URL_FILE`` in the environment, which wins over ``redis_url`` in the TOML file.

PostgreSQL URLs have a third way, libpq's own: leave the password out of the URL, and libpq reads
it from ``PGPASSWORD`` or the password file (``PGPASSFILE``, by default ``~/.pgpass``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeguard.errors import ConfigError
from tradeguard.secret_files import read_secret

FILE_SUFFIX = "_file"


def file_key(name: str) -> str:
    """The name of the setting naming ``name``'s file: ``redis_url`` -> ``redis_url_file``."""
    return name + FILE_SUFFIX


def read_value_file(path: Path | str, what: str) -> str:
    """The one-line value in ``path`` (stripped); ConfigError naming ``what`` and the file, never
    the contents, if it is missing, unreadable, empty or holds more than one line."""
    value = read_secret(Path(path), what)
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{what} file {path} holds more than one line: put the value alone in it")
    return value


def resolve_one(
    value: str | None, path: Path | str | None, name: str, file_name: str
) -> str | None:
    """``value``, or the contents of ``path`` when that is given instead; both is a ConfigError.

    ``name`` and ``file_name`` say how the user spelt the two (``TRADEGUARD_REDIS_URL``,
    ``--ledger-url-file``) for the error message.
    """
    if path is None:
        return value
    if value is not None:
        raise ConfigError(f"{name} and {file_name} are both given: give one of them")
    return read_value_file(path, name)


@dataclass(frozen=True)
class Source:
    """One place settings come from (keyword arguments, the environment, the TOML file): its
    values by field name, and how it spells a key, for errors (``TRADEGUARD_REDIS_URL``)."""

    values: Mapping[str, Any]
    spell: Callable[[str], str] = str


def environment(prefix: str, names: Iterable[str]) -> Source:
    """The file-backed settings ``names`` and their files as the environment gives them."""

    def spell(key: str) -> str:
        return f"{prefix}{key}".upper()

    keys = [key for name in names for key in (name, file_key(name))]
    return Source({k: os.environ[spell(k)] for k in keys if spell(k) in os.environ}, spell)


def resolve_sources(names: Iterable[str], sources: Sequence[Source]) -> dict[str, Any]:
    """``{name: value, name_file: path or None}`` for each of ``names`` some source gives.

    ``sources`` run from the highest precedence down. The highest source giving ``name`` or
    its file decides the pair (a file it names is read; a lower source's file is never read,
    not even checked); giving both there is a ConfigError. The loader passes the result as
    keyword arguments, which pydantic-settings ranks above everything else.
    """
    out: dict[str, Any] = {}
    for name in names:
        key = file_key(name)
        for source in sources:
            value, path = source.values.get(name), source.values.get(key)
            if value is None and path is None:
                continue
            out[name] = resolve_one(value, path, source.spell(name), source.spell(key))
            out[key] = path
            break
    return out


def without_pairs(values: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``values`` less every file-backed setting and file (:func:`resolve_sources` decides
    those)."""
    pairs = {key for name in names for key in (name, file_key(name))}
    return {k: v for k, v in values.items() if k not in pairs}
