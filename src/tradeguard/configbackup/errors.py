"""The named failures of a backup or a restore, so the CLI can print each as one line."""

from __future__ import annotations

from tradeguard.errors import TradeguardError


class ConfigBackupError(TradeguardError):
    """A backup or restore cannot go on; the message says what and where."""


class ArchiveError(ConfigBackupError):
    """An archive is unreadable, incomplete, tampered with or of an unknown format: nothing in
    it may be used. The message names the archive and the member or file at fault."""


class InvalidConfiguration(ConfigBackupError):
    """promtool or amtool refused an archive's configuration; ``details`` holds their output."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class ReloadError(ConfigBackupError):
    """The files were restored but the running stack did not (or not provably) take them."""
