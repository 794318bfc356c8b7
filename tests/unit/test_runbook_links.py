"""Runbook links: a repository path becomes the console's page; anything else is kept."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from tradeguard.responder.runbook_links import absolute_runbooks, runbook_link

BASE = "https://ops.example.test/tradeguard/"


def test_a_repository_path_becomes_the_consoles_page() -> None:
    assert runbook_link("docs/runbooks/RedisDown.md", BASE) == (
        "https://ops.example.test/tradeguard/runbooks/RedisDown"
    )


def test_other_links_and_a_missing_base_are_left_alone() -> None:
    for url in ("https://wiki.example.test/RedisDown", "docs/other/RedisDown.md", "", None):
        assert runbook_link(url, BASE) == url
    assert runbook_link("docs/runbooks/RedisDown.md", None) == "docs/runbooks/RedisDown.md"
    assert runbook_link("docs/runbooks/../../etc/passwd.md", BASE) == (
        "docs/runbooks/../../etc/passwd.md"
    )


@given(st.text(max_size=80) | st.from_regex(r"docs/runbooks/[A-Za-z][\w/.]{0,20}\.md"))
def test_only_a_runbook_name_is_ever_put_into_the_link(url: str) -> None:
    link = runbook_link(url, BASE)
    assert link == url or re.fullmatch(
        re.escape(BASE) + r"runbooks/[A-Za-z][A-Za-z0-9_]*", str(link)
    ), link


def test_rule_files_get_the_same_links_line_by_line() -> None:
    text = (
        "  - alert: RedisDown\n"
        "    annotations:\n"
        "      runbook_url: docs/runbooks/RedisDown.md\n"
        "      description: see docs/runbooks/RedisDown.md\n"
    )
    out = absolute_runbooks(text, BASE)
    assert "runbook_url: https://ops.example.test/tradeguard/runbooks/RedisDown\n" in out
    assert "description: see docs/runbooks/RedisDown.md" in out
