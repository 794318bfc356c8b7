"""Archive names and retention.

An archive is named ``tradeguard-config-<UTC time>.tar.gz`` (``20261204T134500Z``), so a
directory listing sorts oldest first and the age of an archive is read from its name alone,
whatever its file time became after a copy. A second archive within the same second gets
``-1``, ``-2``, ... after the time. Retention deletes only files whose whole name has this
form: nothing else a person keeps in the backups directory is ever touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

PREFIX = "tradeguard-config-"
SUFFIX = ".tar.gz"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_PATTERN = re.compile(r"^tradeguard-config-(\d{8}T\d{6}Z)(?:-(\d+))?\.tar\.gz$")


def archive_name(created_at: datetime, sequence: int = 0) -> str:
    stamp = created_at.astimezone(UTC).strftime(STAMP_FORMAT)
    return f"{PREFIX}{stamp}{f'-{sequence}' if sequence else ''}{SUFFIX}"


def archive_time(name: str) -> datetime | None:
    """The creation time in an archive's name; None if the name is not an archive's."""
    match = NAME_PATTERN.match(name)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:  # 20261399T...: the right shape but no real time
        return None


@dataclass(frozen=True)
class Pruned:
    deleted: tuple[Path, ...]
    failed: tuple[tuple[Path, str], ...]  # archives too old that could not be deleted, and why


def prune(out_dir: Path, keep_days: float, now: datetime, keep: Path | None = None) -> Pruned:
    """Delete the archives in ``out_dir`` whose name says they are more than ``keep_days``
    old; ``keep`` (the archive just written) is never deleted, whatever the clock says."""
    cutoff = now - timedelta(days=keep_days)
    deleted: list[Path] = []
    failed: list[tuple[Path, str]] = []
    for path in sorted(out_dir.iterdir()):
        created = archive_time(path.name)
        if created is None or created >= cutoff or (keep is not None and path == keep):
            continue
        if path.is_dir() and not path.is_symlink():
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            failed.append((path, exc.strerror or str(exc)))
            continue
        deleted.append(path)
    return Pruned(tuple(deleted), tuple(failed))
