"""The local stack: render deploy/ for local ports and supervise every component."""

from pathlib import Path

DEFAULT_RUN_DIR = Path("run/stack")
