"""README.md's "Remediation" section says what the code does: every action of the registry with
its default and the registry's reason, and the guard rails' settings with their defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tradeguard.remediation.guard import GuardPolicy
from tradeguard.remediation.registry import REGISTRY
from tradeguard.responder.settings import ResponderSettings

README = Path(__file__).resolve().parents[2] / "README.md"
PREFIX = "TRADEGUARD_RESPONDER_REMEDIATION_"


def section() -> str:
    text = README.read_text()
    match = re.search(r"^## Remediation\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, 'README.md has no "## Remediation" section'
    return match.group(1)


def action_rows() -> dict[str, list[str]]:
    """The table's rows by action name: [what, default, why]."""
    rows: dict[str, list[str]] = {}
    for line in section().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`\w+`", cells[0]):
            name = cells[0].strip("`")
            assert name not in rows, f"{name} listed twice"
            rows[name] = cells[1:]
    return rows


def test_the_table_lists_every_action_once_and_no_other() -> None:
    assert set(action_rows()) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_action_has_its_default_and_the_registrys_reason(name: str) -> None:
    spec = REGISTRY[name]
    _what, default, why = action_rows()[name]
    expected = "never" if not spec.automatic else "on" if spec.on_by_default else "off"
    assert default == expected, f"{name}: README says {default!r}, the registry {expected!r}"
    assert spec.why in why, f"{name}: README's reason {why!r} lacks the registry's {spec.why!r}"


def test_guard_rails_name_their_settings_with_their_defaults() -> None:
    text = section()
    policy = GuardPolicy()
    settings = ResponderSettings.model_fields
    for suffix, default in (
        ("BUDGET", policy.budget),
        ("COOLDOWN_SECONDS", policy.cooldown_seconds),
        ("RATE_LIMIT", policy.rate_limit),
        ("RATE_WINDOW_SECONDS", policy.rate_window_seconds),
        ("MAX_ALERT_AGE_SECONDS", policy.max_alert_age_seconds),
        ("REPEAT_LIMIT", policy.repeat_limit),
        ("REPEAT_WINDOW_SECONDS", policy.repeat_window_seconds),
        ("VERIFY_SECONDS", policy.verify_seconds),
    ):
        field = settings[f"remediation_{suffix.lower()}"]
        assert field.default == default, f"{suffix}: settings and guard defaults differ"
        assert f"`_{suffix}` ({default:g})" in text, f"README: `_{suffix}` ({default:g})"
    timeout = settings["remediation_command_timeout_seconds"].default
    assert f"`{PREFIX}COMMAND_TIMEOUT_SECONDS` ({timeout:g})" in text
    for name in ("ENABLE", "DISABLE", "DRY_RUN"):
        assert f"{PREFIX}{name}" in text or f"`_{name}`" in text, name
