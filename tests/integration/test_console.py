"""The operator's console on a real responder, driven over HTTP as a browser would (forms,
cookies, redirects): login, the pages, acknowledging, CSRF, runbooks, a failing store.

The browser tests (tests/e2e/test_console_browser.py) check the same pages in Chromium; these
check what a browser does not show: status codes, headers, refusals.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from responder_harness import TOKEN, Responder, StartResponder, alert, body, payload

from tradeguard.responder.console.session import COOKIE

OPERATOR = "Dana Ops"


def browser(r: Responder) -> httpx.Client:
    return httpx.Client(base_url=r.url, timeout=10, follow_redirects=False)


def login(r: Responder, operator: str = OPERATOR, credential: str = TOKEN) -> httpx.Client:
    client = browser(r)
    answer = client.post(
        "/console/login",
        data={"operator": operator, "credential": credential, "next": "/console/now"},
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/now"
    return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def now_iso(offset_seconds: float = 0) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=offset_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fire(r: Responder, fingerprint: str = "a1b2c3", name: str = "DuckDBWriteFailures") -> None:
    labels = {"alertname": name, "severity": "critical", "component": "duckdb"}
    annotations = {
        "summary": "DuckDB writes fail <script>alert(1)</script>",
        "runbook_url": "docs/runbooks/DuckDBWriteFailures.md",
    }
    doc = payload(
        alert(
            fingerprint=fingerprint,
            labels=labels,
            annotations=annotations,
            startsAt=now_iso(-90),
        )
    )
    assert r.post(body(doc)).status_code == 200


def test_every_page_needs_a_login_and_comes_back_to_it(start_responder: StartResponder) -> None:
    r = start_responder()
    client = browser(r)
    for path in ("/console/now", "/console/history?days=7", "/runbooks/RedisDown"):
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/login?next=")
    assert client.get("/console/login").status_code == 200
    forged = client.post("/console/ack", data={"fingerprint": "a1", "csrf": "x"})
    assert forged.status_code == 403


def test_a_wrong_credential_or_name_is_refused_and_no_session_is_given(
    start_responder: StartResponder,
) -> None:
    r = start_responder()
    client = browser(r)
    wrong = client.post("/console/login", data={"operator": OPERATOR, "credential": "nope"})
    assert wrong.status_code == 401 and "Wrong credential" in wrong.text
    nameless = client.post("/console/login", data={"operator": " ", "credential": TOKEN})
    assert nameless.status_code == 401 and "Give your name" in nameless.text
    assert COOKIE not in client.cookies
    # An open redirect is never followed: only console paths.
    answer = client.post(
        "/console/login",
        data={"operator": OPERATOR, "credential": TOKEN, "next": "https://evil.example/"},
    )
    assert answer.headers["location"] == "/console/now"


def test_the_session_cookie_is_httponly_strict_and_forged_ones_are_refused(
    start_responder: StartResponder,
) -> None:
    r = start_responder()
    client = browser(r)
    answer = client.post("/console/login", data={"operator": OPERATOR, "credential": TOKEN})
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    value = client.cookies[COOKIE]
    payload_part, _, signature = value.rpartition(".")
    tampered = browser(r)
    tampered.cookies.set(COOKIE, payload_part + "x." + signature)
    assert tampered.get("/console/now").status_code == 303  # back to login


def test_now_shows_the_firing_alert_escaped_and_acknowledging_it_moves_mtta(
    start_responder: StartResponder,
) -> None:
    r = start_responder()
    fire(r)
    client = login(r)
    now = client.get("/console/now")
    assert now.status_code == 200
    assert "DuckDBWriteFailures" in now.text and "firing for" in now.text
    assert "<script>" not in now.text and "&lt;script&gt;" in now.text
    assert 'href="/runbooks/DuckDBWriteFailures"' in now.text
    assert "script-src" not in now.headers["content-security-policy"]  # none allowed at all
    assert now.headers["content-security-policy"].startswith("default-src 'none'")
    before = client.get("/console/effectiveness?days=1").text
    assert re.search(r'id="mtta">—<', before)

    missing = client.post("/console/ack", data={"fingerprint": "a1b2c3", "alertname": "x"})
    assert missing.status_code == 403  # no CSRF token: refused, nothing stored
    assert "Acknowledged by" not in client.get("/console/now").text

    acked = client.post(
        "/console/ack",
        data={
            "fingerprint": "a1b2c3",
            "alertname": "DuckDBWriteFailures",
            "csrf": csrf_of(now.text),
            "note": "looking",
        },
    )
    assert acked.status_code == 303
    assert acked.headers["location"] == "/console/now?acked=DuckDBWriteFailures"
    page = client.get(acked.headers["location"]).text
    assert f"Acknowledged by {OPERATOR}" in page
    after = client.get("/console/effectiveness?days=1").text
    assert not re.search(r'id="mtta">—<', after), "MTTA did not move after the acknowledgement"
    assert re.search(r'id="acknowledged">1<', after)
    # The API sees the same acknowledgement, with the operator's name.
    [stored] = [a for a in r.get("/api/alerts/firing").json()["alerts"]]
    assert stored["fingerprint"] == "a1b2c3"


def test_history_actions_and_effectiveness_pages_filter_and_refuse_bad_values(
    start_responder: StartResponder,
) -> None:
    r = start_responder()
    fire(r, "b1", "DuckDBWriteFailures")
    fire(r, "b2", "RedisDown")
    client = login(r)
    page = client.get("/console/history", params={"alertname": "RedisDown", "days": "1"}).text
    assert "<svg" in page and "RedisDown" in page
    table = page.split("<tbody>")[1]
    assert "DuckDBWriteFailures" not in table
    assert client.get("/console/history", params={"days": "5"}).status_code == 400
    assert client.get("/console/actions", params={"outcome": "bogus"}).status_code == 400
    assert client.get("/console/actions").status_code == 200
    effectiveness = client.get("/console/effectiveness", params={"days": "7"}).text
    assert re.search(r'id="occurrences">2<', effectiveness)
    assert (
        "Alerts per shift" in effectiveness and "No on-call roster is configured" in effectiveness
    )


def test_runbooks_render_from_markdown_and_names_cannot_reach_other_files(
    start_responder: StartResponder,
) -> None:
    r = start_responder()
    client = login(r)
    page = client.get("/runbooks/RedisDown")
    assert page.status_code == 200 and "<h1>RedisDown</h1>" in page.text
    index = client.get("/runbooks").text
    assert 'href="/runbooks/InstanceRecoveryFailed"' in index
    for name in ("..%2F..%2Fpyproject", "NoSuchAlert", "a.b", "%2Fetc%2Fpasswd"):
        answer = client.get(f"/runbooks/{name}")
        assert answer.status_code == 404, name
        assert "[project]" not in answer.text


def test_a_failing_store_gives_a_clear_page_not_a_traceback(
    start_responder: StartResponder,
) -> None:
    r = start_responder()
    client = login(r)
    r.server.history.close()
    for path in ("/console/now", "/console/history", "/console/effectiveness"):
        answer = client.get(path)
        assert answer.status_code == 503, path
        assert "alert history does not answer" in answer.text
        assert "Traceback" not in answer.text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    form=st.dictionaries(
        st.sampled_from(["fingerprint", "csrf", "note", "false_positive", "alertname", "x"]),
        st.text(max_size=300),
        max_size=6,
    )
)
def test_generated_ack_forms_never_break_the_console(
    start_responder: StartResponder, form: dict[str, str], request: pytest.FixtureRequest
) -> None:
    """Whatever a form holds, the answer is a redirect or a 4xx page, never a 5xx; an
    acknowledgement is stored only with the session's CSRF token."""
    state = request.node.__dict__.setdefault("console_state", {})
    if "client" not in state:
        r = start_responder()
        fire(r)
        client = login(r)
        state.update(r=r, client=client, csrf=csrf_of(client.get("/console/now").text))
    client = state["client"]
    answer = client.post("/console/ack", data=form)
    assert answer.status_code in (303, 400, 403, 404), answer.text
    if form.get("csrf") != state["csrf"]:
        assert answer.status_code in (400, 403)  # a body that is no form, or no token


def test_figures_pages_say_why_when_prometheus_cannot_answer(
    start_responder: StartResponder,
) -> None:
    from tradeguard.process.ports import free_port

    unset = start_responder()
    client = login(unset)
    for path in ("/console/ha", "/console/trade?hours=6"):
        answer = client.get(path)
        assert answer.status_code == 503, path
        assert "no Prometheus is configured" in answer.text
    closed = f"http://127.0.0.1:{free_port()}"
    down = start_responder(prometheus_url=closed)
    answer = login(down).get("/console/ha")
    assert answer.status_code == 503 and f"Prometheus at {closed} is unreachable" in answer.text
    assert login(down).get("/console/trade?hours=2").status_code == 400
