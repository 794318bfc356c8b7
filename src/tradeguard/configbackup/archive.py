"""Writing a configuration archive, and reading one back only once every byte checks out.

Writing: each file is read once into memory and that same content is hashed and stored, so the
manifest can never describe bytes other than the ones archived (a file edited during the
backup is either wholly before or wholly after). Members are plain files with fixed owners and
modes; the archive is written beside its final name and linked into place, so a crash leaves
no half archive under an archive's name and an existing archive is never overwritten.

Reading (:func:`read_archive`) never extracts: the whole gzip stream is decompressed first (its
CRC covers every byte, so a flipped bit anywhere in the data is caught), then every member is
checked (a regular file, a safe relative name, listed once) and read into memory, and finally
the members must match the manifest one for one, by size and SHA-256. Only then does a caller
get the contents, and writes them where *it* decides (:mod:`.replace`): no path in an archive
ever reaches the file system unchecked.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from tradeguard import __version__
from tradeguard.configbackup.errors import ArchiveError, ConfigBackupError
from tradeguard.configbackup.manifest import (
    DEPLOY_PREFIX,
    MANIFEST_NAME,
    SETTINGS_PREFIX,
    FileEntry,
    Manifest,
    deploy_path,
    settings_name,
    unsafe_reason,
)
from tradeguard.configbackup.retention import archive_name
from tradeguard.configbackup.selection import is_secret, name_suggests_secret, select

# Far above any real configuration (the shipped set is well under 1 MiB), far below what would
# hurt: a decompression bomb is refused instead of filling memory.
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 10_000
PUBLIC_MODE = 0o644
PRIVATE_MODE = 0o600


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    total_bytes: int

    @property
    def secrets_left_out(self) -> tuple[str, ...]:
        return self.manifest.secrets_left_out


@dataclass(frozen=True)
class VerifiedArchive:
    """An archive whose every member matched its manifest; ``files`` maps member names to
    contents (MANIFEST.json itself excluded)."""

    path: Path
    manifest: Manifest
    files: Mapping[str, bytes]

    def deploy_files(self) -> dict[str, bytes]:
        """Path in deploy/ -> contents, for the configuration files."""
        found: dict[str, bytes] = {}
        for name, data in self.files.items():
            rel = deploy_path(name)
            if rel is not None:
                found[rel.as_posix()] = data
        return found

    def settings(self) -> tuple[str, bytes] | None:
        """(original file name, contents) of the settings file, if the archive holds one."""
        for name, data in self.files.items():
            original = settings_name(name)
            if original is not None:
                return original, data
        return None


def collect(
    deploy: Path, settings: Path | None, include_secrets: bool
) -> tuple[dict[str, bytes], tuple[str, ...]]:
    """Member name -> contents of everything a backup takes, and the secrets it leaves out
    (as paths relative to deploy/, or the settings file's name)."""
    if not deploy.is_dir():
        raise ConfigBackupError(f"deploy dir {deploy} does not exist")
    chosen = select(deploy, include_secrets)
    files: dict[str, bytes] = {}
    for rel in chosen.files:
        files[f"{DEPLOY_PREFIX}/{rel}"] = _read(deploy / rel)
    left_out = list(chosen.secrets_left_out)
    if settings is not None:
        if not settings.is_file():
            raise ConfigBackupError(f"settings file {settings} does not exist")
        if name_suggests_secret(settings.name) and not include_secrets:
            left_out.append(settings.name)
        else:
            files[f"{SETTINGS_PREFIX}/{settings.name}"] = _read(settings)
    return files, tuple(left_out)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigBackupError(f"cannot read {path}: {exc.strerror or exc}") from None


def create_backup(
    deploy: Path,
    out_dir: Path,
    settings: Path | None = None,
    include_secrets: bool = False,
    now: datetime | None = None,
) -> BackupResult:
    """Write one archive of ``deploy``'s configuration (and ``settings``) into ``out_dir``."""
    created = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    files, left_out = collect(deploy, settings, include_secrets)
    manifest = Manifest(
        created_at=created,
        tradeguard_version=__version__,
        include_secrets=include_secrets,
        files=tuple(FileEntry(name, len(data), sha256_hex(data)) for name, data in files.items()),
        secrets_left_out=left_out,
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = _publish(_write_tar(out_dir, files, manifest), out_dir, created)
        if include_secrets:
            os.chmod(path, PRIVATE_MODE)
    except OSError as exc:
        raise ConfigBackupError(f"cannot write an archive in {out_dir}: {exc}") from None
    return BackupResult(path, manifest, sum(len(d) for d in files.values()))


def _member(name: str, size: int, when: datetime, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(when.timestamp())
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _write_tar(out_dir: Path, files: Mapping[str, bytes], manifest: Manifest) -> Path:
    """The archive, under a hidden temporary name in ``out_dir``, synced to disk."""
    tmp = out_dir / f".{archive_name(manifest.created_at)}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                body = manifest.to_json()
                info = _member(MANIFEST_NAME, len(body), manifest.created_at, PUBLIC_MODE)
                tar.addfile(info, io.BytesIO(body))
                for name, data in files.items():
                    rel = deploy_path(name)
                    secret = rel is not None and is_secret(rel)
                    mode = PRIVATE_MODE if secret else PUBLIC_MODE
                    tar.addfile(
                        _member(name, len(data), manifest.created_at, mode), io.BytesIO(data)
                    )
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _publish(tmp: Path, out_dir: Path, created: datetime) -> Path:
    """Give ``tmp`` the first free archive name for ``created``; never replace an archive."""
    try:
        for sequence in range(1000):
            final = out_dir / archive_name(created, sequence)
            try:
                os.link(tmp, final)
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links: check, then rename
                if final.exists():
                    continue
                os.replace(tmp, final)
                return final
            return final
        raise ConfigBackupError(f"too many archives for {created:%Y-%m-%dT%H:%M:%SZ} in {out_dir}")
    finally:
        tmp.unlink(missing_ok=True)


# ---- reading ---------------------------------------------------------------------------------


def read_archive(path: Path) -> VerifiedArchive:
    """The archive's contents, once all of it is proven intact; ArchiveError otherwise."""
    members = _read_members(path, _decompress(path))
    raw_manifest = members.pop(MANIFEST_NAME, None)
    if raw_manifest is None:
        raise ArchiveError(f"{path}: holds no {MANIFEST_NAME}")
    try:
        manifest = Manifest.from_json(raw_manifest)
    except ArchiveError as exc:
        raise ArchiveError(f"{path}: {exc}") from None
    listed = {entry.path: entry for entry in manifest.files}
    for name in members:
        if name not in listed:
            raise ArchiveError(f"{path}: member {name} is not listed in {MANIFEST_NAME}")
    for entry in manifest.files:
        data = members.get(entry.path)
        if data is None:
            raise ArchiveError(
                f"{path}: {entry.path} is listed in {MANIFEST_NAME} but missing from the archive"
            )
        if len(data) != entry.size:
            raise ArchiveError(
                f"{path}: {entry.path}: size mismatch: manifest says {entry.size} bytes, "
                f"archive holds {len(data)}"
            )
        found = sha256_hex(data)
        if found != entry.sha256:
            raise ArchiveError(
                f"{path}: {entry.path}: SHA-256 mismatch: manifest says {entry.sha256}, "
                f"archive holds {found}"
            )
    return VerifiedArchive(path, manifest, members)


def _decompress(path: Path) -> bytes:
    """The whole tar stream; reading to the end checks the gzip CRC and length."""
    if not path.is_file():
        raise ArchiveError(f"{path}: no such archive")
    try:
        with gzip.open(path, "rb") as stream:
            data = stream.read(MAX_ARCHIVE_BYTES + 1)
    except EOFError:
        raise ArchiveError(
            f"{path} is not a readable tar.gz archive: it ends early (truncated?)"
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise ArchiveError(f"{path} is not a readable tar.gz archive: {exc}") from None
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ArchiveError(f"{path}: more than {MAX_ARCHIVE_BYTES} bytes uncompressed; refused")
    return data


def _read_members(path: Path, data: bytes) -> dict[str, bytes]:
    """Member name -> contents, refusing anything but uniquely named, safe regular files."""
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for count, info in enumerate(tar, start=1):
                if count > MAX_MEMBERS:
                    raise ArchiveError(f"{path}: more than {MAX_MEMBERS} members; refused")
                _check_member(path, info)
                if info.name in members:
                    raise ArchiveError(f"{path}: member {info.name} appears twice")
                stream = tar.extractfile(info)
                content = stream.read() if stream is not None else b""
                if len(content) != info.size:
                    raise ArchiveError(f"{path}: member {info.name} is cut short (truncated?)")
                members[info.name] = content
    except tarfile.TarError as exc:
        raise ArchiveError(f"{path} is not a readable tar archive: {exc}") from None
    if not members:
        raise ArchiveError(f"{path}: the archive is empty")
    return members


def _check_member(path: Path, info: tarfile.TarInfo) -> None:
    reason = unsafe_reason(info.name)
    if reason is not None:
        raise ArchiveError(f"{path}: member {info.name!r} has {reason}; refused")
    if info.issym() or info.islnk():
        raise ArchiveError(
            f"{path}: member {info.name} is a link (to {info.linkname!r}); only regular files "
            "are allowed"
        )
    if not info.isreg() or info.issparse():
        raise ArchiveError(f"{path}: member {info.name} is not a regular file; refused")
    if info.name != MANIFEST_NAME and PurePosixPath(info.name).parts[0] not in (
        DEPLOY_PREFIX,
        SETTINGS_PREFIX,
    ):
        raise ArchiveError(f"{path}: member {info.name} is outside deploy/ and settings/")
