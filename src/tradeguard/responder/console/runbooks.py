"""Runbooks as console pages: ``/runbooks/<Alert>`` renders ``<dir>/<Alert>.md``.

The Markdown is the repository's own (``docs/runbooks/``), but it is rendered with raw HTML
turned off all the same: a page served with the console's session must never carry markup
someone slipped into a runbook. A link to another runbook (``Other.md``,
``docs/runbooks/Other.md``) becomes a link to its console page.
"""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
_RUNBOOK_LINK = re.compile(r'href="(?:\.{0,2}/)*(?:docs/runbooks/)?([A-Za-z][A-Za-z0-9_]*)\.md"')


def default_runbooks_dir() -> Path | None:
    """``docs/runbooks`` of the source tree this package runs from, if there is one (an
    installed wheel has none: then the setting must name it)."""
    candidate = Path(__file__).resolve().parents[4] / "docs" / "runbooks"
    return candidate if candidate.is_dir() else None


class RunbookLibrary:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._markdown = MarkdownIt("commonmark", {"html": False}).enable("table")

    def names(self) -> list[str]:
        """Every runbook there is, sorted (none without a directory)."""
        if self.directory is None or not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.md") if NAME.fullmatch(p.stem))

    def render(self, name: str) -> Markup | None:
        """The runbook ``name`` as HTML, or None when there is no such runbook (a name that is
        not an alert name is never looked up, so no path can be reached through it)."""
        if self.directory is None or not NAME.fullmatch(name):
            return None
        path = self.directory / f"{name}.md"
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            return None
        html = self._markdown.render(text)
        return Markup(_RUNBOOK_LINK.sub(r'href="/runbooks/\1"', html))  # raw HTML is off
