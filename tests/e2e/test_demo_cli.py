"""`tradeguard demo` as a user runs it, on one quick scenario: the final table is printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_prints_the_results_table(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradeguard.cli",
            "demo",
            "--scenarios",
            "duckdb-disk-low",
            "--rate",
            "10",
            "--run-dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "DuckDBDiskSpaceLow" in out.stdout
    assert "1/1 scenarios caught" in out.stdout
    assert "0 lost, 0 executed twice" in out.stdout
