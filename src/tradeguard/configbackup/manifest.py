"""The archive's ``MANIFEST.json``: what it holds, so a restore can prove it holds exactly that.

Every file is listed with its size and SHA-256; the restore refuses an archive whose members do
not match the list one for one. Paths are archive member names: ``deploy/<path in deploy/>``
for configuration, ``settings/<file name>`` for the settings TOML. ``secrets_left_out`` names
(never holds) the secret files a backup skipped, so a restore can say that they stay as they are.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from tradeguard.configbackup.errors import ArchiveError
from tradeguard.configbackup.selection import is_configuration, is_secret, name_suggests_secret

MANIFEST_NAME = "MANIFEST.json"
FORMAT = "tradeguard-config-backup"
FORMAT_VERSION = 1
DEPLOY_PREFIX = "deploy"
SETTINGS_PREFIX = "settings"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def unsafe_reason(name: str) -> str | None:
    """Why ``name`` may not be a member or manifest path (None when it may): absolute paths,
    ``..`` and other non-normal components could write outside the target directory."""
    if not name:
        return "an empty path"
    if "\x00" in name or "\\" in name:
        return "a NUL or backslash in the path"
    if name.startswith("/"):
        return "an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "a '..' component"
    if any(part in ("", ".") for part in parts):
        return "a path that is not in normal form"
    return None


def deploy_path(name: str) -> PurePosixPath | None:
    """The path in deploy/ that member ``name`` restores to, or None if it is not one."""
    head, _, rest = name.partition("/")
    return PurePosixPath(rest) if head == DEPLOY_PREFIX and rest else None


def settings_name(name: str) -> str | None:
    """The settings file name member ``name`` carries, or None if it is not the settings."""
    head, _, rest = name.partition("/")
    return rest if head == SETTINGS_PREFIX and rest and "/" not in rest else None


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    created_at: datetime
    tradeguard_version: str
    include_secrets: bool
    files: tuple[FileEntry, ...]
    secrets_left_out: tuple[str, ...] = ()
    format_version: int = FORMAT_VERSION

    @property
    def created_text(self) -> str:
        return self.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def settings(self) -> FileEntry | None:
        return next((f for f in self.files if settings_name(f.path) is not None), None)

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "format_version": self.format_version,
            "created_at": self.created_text,
            "tradeguard_version": self.tradeguard_version,
            "include_secrets": self.include_secrets,
            "secrets_left_out": list(self.secrets_left_out),
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return (json.dumps(data, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse and check a manifest; ArchiveError naming the first thing wrong."""
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArchiveError(f"{MANIFEST_NAME} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ArchiveError(f"{MANIFEST_NAME} is not a JSON object")
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ArchiveError(
                f"{MANIFEST_NAME} is of format {data.get('format')!r} version "
                f"{data.get('format_version')!r}; this tradeguard reads {FORMAT!r} version "
                f"{FORMAT_VERSION}"
            )
        created = _field(data, "created_at", str)
        try:
            created_at = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise ArchiveError(
                f"{MANIFEST_NAME}: created_at {created!r} is not a UTC time"
            ) from None
        include_secrets = _field(data, "include_secrets", bool)
        left_out = _field(data, "secrets_left_out", list)
        files = tuple(_entry(item) for item in _field(data, "files", list))
        manifest = cls(
            created_at=created_at,
            tradeguard_version=_field(data, "tradeguard_version", str),
            include_secrets=include_secrets,
            files=files,
            secrets_left_out=tuple(str(x) for x in left_out),
        )
        manifest.check_paths()
        return manifest

    def check_paths(self) -> None:
        """Every listed path is safe, unique, and one a restore may write: a configuration
        file in deploy/ (a secret only if the manifest says secrets were taken) or the
        settings file."""
        seen: set[str] = set()
        for entry in self.files:
            reason = unsafe_reason(entry.path)
            if reason is not None:
                raise ArchiveError(f"{MANIFEST_NAME} lists {entry.path!r}: {reason}")
            if entry.path in seen:
                raise ArchiveError(f"{MANIFEST_NAME} lists {entry.path} twice")
            seen.add(entry.path)
            rel = deploy_path(entry.path)
            if rel is not None and is_configuration(rel):
                if is_secret(rel) and not self.include_secrets:
                    raise ArchiveError(
                        f"{MANIFEST_NAME} lists secret {entry.path} but says secrets were left out"
                    )
                continue
            name = settings_name(entry.path)
            if name is None or name.startswith("."):
                raise ArchiveError(
                    f"{MANIFEST_NAME} lists {entry.path}, which is not a configuration file "
                    "a restore may write"
                )
            if name_suggests_secret(name) and not self.include_secrets:
                raise ArchiveError(
                    f"{MANIFEST_NAME} lists secret {entry.path} but says secrets were left out"
                )
        if sum(settings_name(p) is not None for p in seen) > 1:
            raise ArchiveError(f"{MANIFEST_NAME} lists more than one settings file")


def _field(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArchiveError(f"{MANIFEST_NAME}: {key!r} is missing or not a {kind.__name__}")
    return value


def _entry(item: object) -> FileEntry:
    if not isinstance(item, dict):
        raise ArchiveError(f"{MANIFEST_NAME}: a 'files' entry is not an object")
    path = _field(item, "path", str)
    size = _field(item, "size", int)
    digest = _field(item, "sha256", str)
    if size < 0 or not _SHA256.match(digest):
        raise ArchiveError(f"{MANIFEST_NAME}: the entry of {path!r} has a bad size or sha256")
    return FileEntry(path, size, digest)
