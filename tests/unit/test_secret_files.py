"""Secret files: private from the first byte, created once, one value however many writers."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from tradeguard.errors import ConfigError
from tradeguard.secret_files import ensure_secret, read_secret, write_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_secret_and_its_directory_are_private(tmp_path: Path) -> None:
    path = tmp_path / "run" / "secrets" / "token"
    value = ensure_secret(path)
    assert len(value) >= 40
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert ensure_secret(path) == value  # created once
    assert [p.name for p in path.parent.iterdir()] == ["token"]  # no temporary left behind


def test_an_open_directory_is_tightened(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o755)
    secrets_dir.chmod(0o755)
    ensure_secret(secrets_dir / "token")
    assert mode(secrets_dir) == 0o700


def test_writers_racing_agree_on_one_value(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "token"
    barrier = threading.Barrier(8)
    won: list[bool] = []

    def write(i: int) -> None:
        barrier.wait()
        won.append(write_secret(path, f"value-{i}"))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won.count(True) == 1
    assert read_secret(path).startswith("value-")


def test_an_empty_secret_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_secret(path)
