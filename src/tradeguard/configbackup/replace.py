"""What a restore changes on disk, and changing it one whole file at a time.

The plan compares the archive with the configuration set on disk (:mod:`.selection`): files the
archive holds that are absent now are added, those whose bytes differ are changed, and those on
disk that the archive lacks are removed (a rule file added since the backup, say). Secrets are
in that comparison only when the archive holds secrets: an archive made without them leaves
the secrets on disk alone rather than deleting them.

Each file is written to a temporary file in its own directory, synced, given its mode and
renamed over the old one: a reader (Prometheus on reload, a person with an editor) sees the
old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tradeguard.configbackup.errors import ConfigBackupError
from tradeguard.configbackup.selection import is_secret, select

PUBLIC_MODE = 0o644
PRIVATE_MODE = 0o600


@dataclass(frozen=True)
class Change:
    """One file to write (``data``) or remove (``data`` None); ``label`` is how to show it."""

    kind: str  # "added", "changed" or "removed"
    path: Path
    label: str
    data: bytes | None = None
    secret: bool = False


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    unchanged: int

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    @property
    def empty(self) -> bool:
        return not self.changes

    def summary(self) -> str:
        counts = ", ".join(f"{len(self.of_kind(k))} {k}" for k in ("added", "changed", "removed"))
        return f"{counts}, {self.unchanged} unchanged"

    def lines(self) -> list[str]:
        """One line per kind that has files: ``changed (2): a, b``."""
        out = []
        for kind in ("added", "changed", "removed"):
            labels = [c.label for c in self.of_kind(kind)]
            if labels:
                out.append(f"{kind} ({len(labels)}): {', '.join(labels)}")
        return out


def plan_restore(
    deploy: Path,
    archived: Mapping[str, bytes],
    include_secrets: bool,
    settings: tuple[Path, bytes] | None = None,
) -> Plan:
    """The changes that make ``deploy`` hold exactly ``archived`` (path in deploy/ -> bytes)
    within the configuration set, and make ``settings`` (target, bytes) hold its bytes."""
    present = set(select(deploy, include_secrets).files) if deploy.is_dir() else set()
    changes: list[Change] = []
    unchanged = 0
    for rel in sorted(set(archived) | present):
        target = deploy / rel
        secret = is_secret(PurePosixPath(rel))
        if rel not in archived:
            changes.append(Change("removed", target, rel, secret=secret))
            continue
        data = archived[rel]
        if rel not in present:
            changes.append(Change("added", target, rel, data, secret))
        elif _bytes_of(target) != data:
            changes.append(Change("changed", target, rel, data, secret))
        else:
            unchanged += 1
    if settings is not None:
        target, data = settings
        if not target.exists():
            changes.append(Change("added", target, str(target), data))
        elif _bytes_of(target) != data:
            changes.append(Change("changed", target, str(target), data))
        else:
            unchanged += 1
    return Plan(tuple(changes), unchanged)


def _bytes_of(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def apply(plan: Plan) -> None:
    """Carry out ``plan``: writes first, removals last, each file whole or not at all."""
    for change in plan.changes:
        if change.data is not None:
            try:
                write_atomically(change.path, change.data, secret=change.secret)
            except OSError as exc:
                raise ConfigBackupError(
                    f"cannot write {change.path}: {exc.strerror or exc}"
                ) from None
    for change in plan.of_kind("removed"):
        try:
            change.path.unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigBackupError(f"cannot remove {change.path}: {exc.strerror or exc}") from None


def write_atomically(path: Path, data: bytes, secret: bool = False) -> None:
    """Replace ``path`` by a file holding ``data``: written beside it, synced, renamed.

    The new file keeps the old one's mode (and owner, when we may set it); a new file gets
    0644, or 0600 for a secret. The mode is set before the rename, so a secret is never
    readable by others, not even for a moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    mode = (old.st_mode & 0o7777) if old is not None else (PRIVATE_MODE if secret else PUBLIC_MODE)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".restore")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
            try:
                os.chown(tmp, old.st_uid, old.st_gid)
            except PermissionError:  # not ours to give away: the file becomes the restorer's
                pass
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
