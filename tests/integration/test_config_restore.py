"""``config backup`` and ``config restore`` as a user runs them: the CLI as a subprocess, on a
copy of the shipped deploy/ in tmp_path, with the real promtool and amtool judging archives.

Every refusal must leave the deploy dir byte for byte as it was and write no backup; every
success must say what it changed and leave a backup of what was there before.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tradeguard.configbackup.archive import read_archive, sha256_hex
from tradeguard.configbackup.retention import archive_name

REPO = Path(__file__).resolve().parents[2]
# The reviewer switches this to tradeguard.cli once config_app is mounted there.
CLI = [sys.executable, "-m", "tradeguard.cli", "config"]
RULE = "prometheus/rules/redis.rules.yml"
SHIPPED_EXPR = "expr: increase(redis_evicted_keys_total[1m]) > 100"


def run(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The refusal: exit 1 and exactly one ``error:`` line on stderr; returns that line."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert done.stderr.startswith("error:"), done.stderr
    return errors[0]


class Workspace:
    """tmp_path holding a copy of deploy/, the backups directory and an (empty) run dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.deploy = root / "deploy"
        self.backups = root / "backups"
        self.run_dir = root / "run"
        shutil.copytree(REPO / "deploy", self.deploy)

    def backup(self, *extra: str) -> Path:
        done = run(self.root, "backup", "--deploy-dir", str(self.deploy), *extra)
        assert done.returncode == 0, done.stderr
        match = re.search(r"^wrote (\S+) \(", done.stdout, re.M)
        assert match, done.stdout
        return self.root / match.group(1)

    def restore(self, archive: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return run(
            self.root,
            "restore",
            str(archive),
            "--deploy-dir",
            str(self.deploy),
            "--run-dir",
            str(self.run_dir),
            "--out",
            str(self.backups),
            *extra,
        )

    def archives(self) -> list[str]:
        return sorted(p.name for p in self.backups.iterdir())


@pytest.fixture
def ws(tmp_path: Path, require_binary: Callable[[str], str]) -> Workspace:
    require_binary("promtool")
    require_binary("amtool")
    return Workspace(tmp_path)


def rewrite_member(archive: Path, name: str, data: bytes, *, update_manifest: bool) -> None:
    """Put ``data`` in place of member ``name``; with ``update_manifest`` the manifest is made
    to match (a consistent but bad archive), without it the manifest still lists the old
    size and checksum (a corrupted one)."""
    with tarfile.open(archive, "r:gz") as tar:
        members = []
        for info in tar:
            stream = tar.extractfile(info)
            assert stream is not None
            members.append((info, stream.read()))
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, body in members:
            if info.name == name:
                body = data
            elif info.name == "MANIFEST.json" and update_manifest:
                doc = json.loads(body)
                for entry in doc["files"]:
                    if entry["path"] == name:
                        entry["size"], entry["sha256"] = len(data), sha256_hex(data)
                body = json.dumps(doc).encode()
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))


def test_restore_brings_back_an_edited_rule_removes_an_added_one_and_keeps_the_old_one(
    ws: Workspace,
) -> None:
    settings = ws.root / "tradeguard.toml"
    settings.write_text('key_prefix = "tg"\n')
    archive = ws.backup("--settings", str(settings))
    shipped = snapshot(ws.deploy)

    rule = ws.deploy / RULE
    rule.write_text(rule.read_text().replace(SHIPPED_EXPR, SHIPPED_EXPR.replace("100", "5")))
    added = ws.deploy / "prometheus/rules/added.rules.yml"
    added.write_text("groups: []\n")
    settings.write_text('key_prefix = "edited"\n')
    edited = snapshot(ws.deploy)

    done = ws.restore(archive, "--settings", str(settings), "--yes")

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert f"changed (2): {RULE}, {settings}" in done.stdout
    assert "removed (1): prometheus/rules/added.rules.yml" in done.stdout
    assert "restored: 0 added, 2 changed, 1 removed" in done.stdout
    assert "promtool-tests ok" in done.stdout
    assert f"no local stack running from {ws.run_dir}" in done.stdout
    assert snapshot(ws.deploy) == shipped
    assert settings.read_text() == 'key_prefix = "tg"\n'

    # What was there before is in the backup the restore wrote first, intact: restoring it
    # undoes the restore (here it would be refused: the edited threshold fails promtool's tests).
    match = re.search(r"backed up to (\S+) \(restore it to undo\)", done.stdout)
    assert match, done.stdout
    previous = read_archive(ws.root / match.group(1))
    kept = previous.deploy_files()
    assert {RULE, "prometheus/rules/added.rules.yml"} <= kept.keys()
    assert all(edited[rel] == data for rel, data in kept.items())
    assert previous.settings() == ("tradeguard.toml", b'key_prefix = "edited"\n')


def test_a_corrupted_file_in_the_archive_is_refused_and_nothing_changes(ws: Workspace) -> None:
    archive = ws.backup()
    member = f"deploy/{RULE}"
    original = (ws.deploy / RULE).read_bytes()
    corrupt = original.replace(b"> 100", b"> 999")
    rewrite_member(archive, member, corrupt, update_manifest=False)
    before, archives = snapshot(ws.deploy), ws.archives()

    line = one_error_line(ws.restore(archive, "--yes"))

    assert member in line and "SHA-256 mismatch" in line
    assert f"manifest says {sha256_hex(original)}" in line
    assert f"archive holds {sha256_hex(corrupt)}" in line
    assert snapshot(ws.deploy) == before
    assert ws.archives() == archives  # not even a backup of the current files


def test_invalid_promql_in_the_archive_is_refused_by_promtool_and_nothing_changes(
    ws: Workspace,
) -> None:
    archive = ws.backup()
    member = f"deploy/{RULE}"
    broken = (
        (ws.deploy / RULE)
        .read_bytes()
        .replace(SHIPPED_EXPR.encode(), b"expr: increase(redis_evicted_keys_total[1m] > 100")
    )
    rewrite_member(archive, member, broken, update_manifest=True)
    before, archives = snapshot(ws.deploy), ws.archives()

    done = ws.restore(archive, "--yes")

    line = one_error_line(done)
    assert "the archive's configuration is invalid" in line
    assert "promtool" in line and "redis.rules.yml" in line
    assert "nothing changed" in line
    assert "tradeguard-restore-" not in done.stderr  # paths read as the archive's own
    assert snapshot(ws.deploy) == before
    assert ws.archives() == archives


def test_restore_without_yes_off_a_terminal_refuses_and_dry_run_changes_nothing(
    ws: Workspace,
) -> None:
    archive = ws.backup()
    (ws.deploy / "prometheus/rules/added.rules.yml").write_text("groups: []\n")
    before, archives = snapshot(ws.deploy), ws.archives()

    line = one_error_line(ws.restore(archive))
    assert "refusing to restore without --yes" in line

    dry = ws.restore(archive, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "removed (1): prometheus/rules/added.rules.yml" in dry.stdout
    assert "dry run: nothing changed" in dry.stdout
    assert snapshot(ws.deploy) == before
    assert ws.archives() == archives


def test_backup_names_left_out_secrets_and_deletes_only_old_archives(ws: Workspace) -> None:
    ws.backups.mkdir()
    now = datetime.now(UTC)
    old = ws.backups / archive_name(now - timedelta(days=40))
    young = ws.backups / archive_name(now - timedelta(days=3))
    stranger = ws.backups / "tradeguard-config-20000101T000000Z.tar.gz.keep"
    for path in (old, young, stranger):
        path.write_bytes(b"not really an archive")

    done = run(
        ws.root, "backup", "--deploy-dir", str(ws.deploy), "--out", "backups", "--keep-days", "30"
    )

    assert done.returncode == 0, done.stderr
    secrets = sorted(
        f"alertmanager/secrets/{p.name}" for p in (ws.deploy / "alertmanager/secrets").iterdir()
    )
    assert f"left out {len(secrets)} secret file(s)" in done.stdout
    assert all(name in done.stdout for name in secrets)
    assert f"deleted 1 archive(s) older than 30 days: {old.name}" in done.stdout
    assert not old.exists() and young.exists() and stranger.exists()
    assert len(ws.archives()) == 3  # young, stranger and the new one


def test_user_errors_are_one_line(ws: Workspace) -> None:
    line = one_error_line(ws.restore(ws.root / "absent.tar.gz", "--yes"))
    assert "absent.tar.gz: no such archive" in line
    line = one_error_line(run(ws.root, "backup", "--deploy-dir", str(ws.root / "nowhere")))
    assert "nowhere" in line
    assert run(ws.root, "restore", "--help").returncode == 0
