"""Which files under ``deploy/`` are the monitoring configuration, and which of them are secrets.

One predicate, :func:`is_configuration`, decides three things: what a backup takes, which paths
an archive may write on restore (an archive can never touch anything else, such as
``docker-compose.yml``), and which present files a restore removes because the archive lacks
them. The set is what changes when a team edits alerting:

- Prometheus: ``prometheus.yml``, ``rules/*.yml``, ``tests/*.yml`` (promtool's unit tests of the
  rules), ``targets/*.yml`` (file_sd: the scrape jobs' targets and labels the rules rely on);
- Alertmanager: ``alertmanager.yml``, ``routes.yml`` (the expected routing table) and
  ``templates/``; ``secrets/`` only with ``--include-secrets``;
- Grafana: ``dashboards/`` and ``provisioning/``;
- ``alert-inventory.csv``, the list the rules are checked against;
- the responder's on-call roster, ``responder/roster.yml`` (who the fatigue index names).

Left out on purpose: ``prometheus/exporter-metrics/`` (metric names scraped from the exporters,
reference data for ``tradeguard rules check``, not configuration), the Docker Compose layout
(``docker-compose.yml``, ``compose/``: how to run the stack, not what it alerts on) and the
README files beside the configuration. Hidden files (editors' swap files, the restore's own
temporary files) never count, except ``.env`` files, which are secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

# Words in a file name that say it holds a credential (split on anything not a letter or digit,
# so "monkey.yml" is not a key but "pagerduty-routing-key" and "api_token.txt" are).
SECRET_WORDS = frozenset(
    {
        "token",
        "tokens",
        "password",
        "passwords",
        "passwd",
        "secret",
        "secrets",
        "key",
        "keys",
        "apikey",
        "credential",
        "credentials",
    }
)
SECRETS_DIRECTORY = "secrets"
_WORD = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Rule:
    """Files named like ``name`` (a glob) in ``directory`` (relative to deploy/, "" for its
    top), and in its subdirectories too when ``recursive``."""

    directory: str
    name: str
    recursive: bool = False

    def matches(self, rel: PurePosixPath) -> bool:
        parent = "" if str(rel.parent) == "." else rel.parent.as_posix()
        if self.recursive:
            inside = parent == self.directory or parent.startswith(f"{self.directory}/")
        else:
            inside = parent == self.directory
        return inside and fnmatchcase(rel.name, self.name)


CONFIGURATION: tuple[Rule, ...] = (
    Rule("prometheus", "prometheus.yml"),
    Rule("prometheus/rules", "*.yml"),
    Rule("prometheus/tests", "*.yml"),
    Rule("prometheus/targets", "*.yml"),
    Rule("alertmanager", "alertmanager.yml"),
    Rule("alertmanager", "routes.yml"),
    Rule("alertmanager/templates", "*", recursive=True),
    Rule("alertmanager/secrets", "*", recursive=True),
    Rule("grafana/dashboards", "*", recursive=True),
    Rule("grafana/provisioning", "*", recursive=True),
    Rule("", "alert-inventory.csv"),
    Rule("responder", "roster.yml"),
)


def is_env_file(name: str) -> bool:
    """``.env``, ``.env.production``, ``prod.env``: environment files, which hold secrets."""
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


def name_suggests_secret(name: str) -> bool:
    """The file name alone says it holds a credential (token, password, key, ``.env``)."""
    if is_env_file(name):
        return True
    return any(word in SECRET_WORDS for word in _WORD.split(name.lower()))


def is_secret(rel: PurePosixPath) -> bool:
    """Under a ``secrets/`` directory, or named like a credential."""
    return SECRETS_DIRECTORY in rel.parts[:-1] or name_suggests_secret(rel.name)


def _is_noise(name: str) -> bool:
    """Hidden files and editor backups are never configuration (``.env`` files aside)."""
    return (name.startswith(".") and not is_env_file(name)) or name.endswith("~")


def is_configuration(rel: PurePosixPath) -> bool:
    """``rel`` (relative to deploy/) is part of the configuration set, secret or not."""
    if rel.is_absolute() or any(part in ("", ".", "..") for part in rel.parts):
        return False
    if any(_is_noise(part) for part in rel.parts):
        return False
    return any(rule.matches(rel) for rule in CONFIGURATION)


@dataclass(frozen=True)
class Selection:
    """The configuration files found under one deploy dir, relative and in POSIX form."""

    files: tuple[str, ...]
    secrets_left_out: tuple[str, ...]


def select(deploy: Path, include_secrets: bool) -> Selection:
    """Every configuration file under ``deploy`` (regular files, symlinks to them followed),
    with the secrets among them taken or left out."""
    taken: list[str] = []
    left_out: list[str] = []
    for path in sorted(deploy.rglob("*")):
        if not path.is_file():
            continue
        rel = PurePosixPath(path.relative_to(deploy).as_posix())
        if not is_configuration(rel):
            continue
        if is_secret(rel) and not include_secrets:
            left_out.append(rel.as_posix())
        else:
            taken.append(rel.as_posix())
    return Selection(tuple(taken), tuple(left_out))
