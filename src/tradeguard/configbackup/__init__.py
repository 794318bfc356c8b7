"""Backing up and restoring the monitoring configuration (``tradeguard config``).

Before a team changes alert rules or routing it takes a backup; when a change goes wrong it
restores one, and a running local stack picks the restored configuration up at once. The parts:

- :mod:`.selection`: which files under ``deploy/`` count as configuration, and which are secrets;
- :mod:`.manifest`: the archive's ``MANIFEST.json`` (paths, sizes, SHA-256);
- :mod:`.archive`: writing an archive, and reading one back only once every byte checks out;
- :mod:`.retention`: archive names and deleting the old ones;
- :mod:`.validate`: promtool and amtool on an archive's configuration before it replaces anything;
- :mod:`.replace`: what a restore changes, and changing it one whole file at a time;
- :mod:`.reload`: re-rendering a running stack's configuration and confirming both servers took it;
- :mod:`.restore`: the restore, step by step; :mod:`.cli`: the two commands.
"""

from tradeguard.configbackup.archive import (
    BackupResult,
    VerifiedArchive,
    create_backup,
    read_archive,
)
from tradeguard.configbackup.errors import (
    ArchiveError,
    ConfigBackupError,
    InvalidConfiguration,
    ReloadError,
)

__all__ = [
    "ArchiveError",
    "BackupResult",
    "ConfigBackupError",
    "InvalidConfiguration",
    "ReloadError",
    "VerifiedArchive",
    "create_backup",
    "read_archive",
]
