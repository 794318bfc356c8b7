"""Secret files (tokens, passwords) that no other user can read at any moment.

A secret is written to a private temporary file in its directory (mkstemp: mode 0600 from the
first byte), flushed to disk, then linked into place. The final name therefore never exists
empty or half-written, and two processes creating the same secret at once agree on one value
(link fails for the second, which reads the first's). The directory is 0700.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path

from tradeguard.errors import ConfigError


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may enter (created 0700, or tightened to it)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o700)
    return path


def write_secret(path: Path, value: str) -> bool:
    """Create ``path`` holding ``value`` (mode 0600) unless it exists; True if this call did."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def replace_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (mode 0600 from the first byte), replacing what was there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def read_secret(path: Path, what: str = "secret", error: type[ConfigError] = ConfigError) -> str:
    """The ``what`` in ``path``, stripped; ``error`` (a ConfigError) if unreadable or empty."""
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise error(f"cannot read {what} from {path}: {exc.strerror or exc}") from None
    if not value:
        raise error(f"{what} file {path} is empty")
    return value


def ensure_secret(path: Path) -> str:
    """The random secret in ``path``, created once (32 bytes, URL-safe) if missing."""
    if not path.exists():
        write_secret(path, secrets.token_urlsafe(32))
    return read_secret(path)
