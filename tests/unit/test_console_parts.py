"""The console's pure parts: sessions, the figures its pages compute, and its SVG charts."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tradeguard.responder.auth import Authenticator
from tradeguard.responder.console import shaping, svg
from tradeguard.responder.console.prometheus import Sample
from tradeguard.responder.console.session import SessionKeeper, clean_operator
from tradeguard.responder.events import AlertEvent
from tradeguard.responder.history.base import Ack, Occurrence

NOW = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def keeper(token: str = "s3cret-token") -> SessionKeeper:
    return SessionKeeper(Authenticator(token=token), timedelta(hours=12))


# ---- sessions -------------------------------------------------------------------------------
def test_a_session_reads_back_until_it_expires() -> None:
    k = keeper()
    cookie, session = k.issue("Dana", NOW)
    assert k.read(cookie, NOW + HOUR) == session
    assert k.read(cookie, NOW + timedelta(hours=12, seconds=1)) is None


def test_a_tampered_cookie_or_another_credential_is_refused() -> None:
    cookie, _ = keeper().issue("Dana", NOW)
    payload, _, signature = cookie.rpartition(".")
    assert keeper().read(payload[:-1] + "A." + signature, NOW) is None
    assert keeper().read(cookie + "x", NOW) is None
    assert keeper("rotated-token").read(cookie, NOW) is None  # a new credential ends sessions
    assert keeper().read("", NOW) is None and keeper().read("no-dot", NOW) is None


def test_login_takes_the_token_or_the_basic_password_and_nothing_else() -> None:
    assert keeper().credential_ok("s3cret-token")
    assert keeper().credential_ok("  s3cret-token ")
    assert not keeper().credential_ok("s3cret-toke") and not keeper().credential_ok("")
    basic = SessionKeeper(
        Authenticator(basic_user="alertmanager", basic_password="pw"), timedelta(hours=1)
    )
    assert basic.credential_ok("pw") and not basic.credential_ok("alertmanager")


def test_the_csrf_token_must_match_exactly() -> None:
    _, session = keeper().issue("Dana", NOW)
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None) and not session.csrf_ok("") and not session.csrf_ok("x")


def test_operator_names_are_trimmed_and_bounded() -> None:
    assert clean_operator("  Dana   Ops ") == "Dana Ops"
    assert clean_operator("") is None and clean_operator("x" * 65) is None
    assert clean_operator("bad\x00name") is None


# ---- figures --------------------------------------------------------------------------------
def occurrence(name: str, notified: datetime, severity: str = "warning") -> Occurrence:
    return Occurrence("f" + name, name, severity, notified, notified, None, None)


def test_per_day_shows_every_day_of_the_window() -> None:
    days = shaping.per_day([occurrence("A", NOW)], NOW - timedelta(days=2), NOW)
    assert days == [("2026-12-02", 0.0), ("2026-12-03", 0.0), ("2026-12-04", 1.0)]


def test_firing_rows_put_criticals_first_oldest_first_with_their_acks() -> None:
    def event(name: str, severity: str, started: datetime) -> AlertEvent:
        return AlertEvent("f" + name, name, "firing", started, None, severity, None, None)

    events = [
        event("W", "warning", NOW - HOUR),
        event("C2", "critical", NOW - HOUR),
        event("C1", "critical", NOW - 2 * HOUR),
    ]
    ack = Ack("fC2", NOW - HOUR, NOW, "Dana", False, "")
    groups = shaping.firing_rows(events, {("fC2", NOW - HOUR): ack}, {}, NOW)
    assert list(groups) == ["critical", "warning"]
    assert [r.event.alertname for r in groups["critical"]] == ["C1", "C2"]
    assert groups["critical"][1].ack == ack and groups["critical"][0].ack is None
    assert groups["critical"][0].age_seconds == 7200


def test_replica_rows_join_the_vectors_by_replica() -> None:
    rows = shaping.replica_rows(
        [Sample({"replica": "r1"}, 1), Sample({"replica": "r2"}, 0)],
        [Sample({"replica": "r1"}, 7)],
        [Sample({"replica": "r2"}, 1.5)],
        [Sample({"replica": "r1", "state": "normal"}, 1)],
        [Sample({"replica": "r1"}, 1), Sample({"replica": "r2"}, 0)],
    )
    assert [(r.replica, r.up, r.leads, r.epoch, r.mode) for r in rows] == [
        ("r1", True, True, 7, "normal"),
        ("r2", False, False, None, None),
    ]
    assert rows[1].heartbeat_age_seconds == 1.5


# ---- charts ---------------------------------------------------------------------------------
@given(labels=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=5))
def test_charts_are_well_formed_svg_whatever_the_labels(labels: list[str]) -> None:
    """Labels come from alerts: any text must stay text (escaped), never markup."""
    bars = svg.bar_chart([(label, float(i)) for i, label in enumerate(labels)], "t <b>")
    spans = [svg.Span(NOW - HOUR, None, "critical", label) for label in labels]
    lanes = svg.timeline([(label, spans) for label in labels], NOW - 2 * HOUR, NOW, "t")
    lines = svg.line_chart([(label, [(0.0, 1.0), (60.0, 2.0)]) for label in labels], "t")
    for chart in (bars, lanes, lines):
        root = ET.fromstring(str(chart))  # raises on anything that is not well-formed
        assert root.tag.endswith("svg")
        texts = "".join(root.itertext())
        assert all(label in texts for label in labels if label.isprintable())
