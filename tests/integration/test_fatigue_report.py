"""The fatigue index and the weekly report file on a real responder: the roster names who took
each alert, in the API, the console and the self-contained HTML report the CLI writes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from responder_harness import TOKEN, StartResponder, alert, body, payload
from test_console import login

ROSTER = """
shifts:
  - {name: early, start: "00:00", end: "12:00"}
  - {name: late, start: "12:00", end: "00:00"}
rotations:
  - from: 2020-01-06
    length_days: 7
    on_call:
      early: [alice]
      late: [alice]
"""


def fire(start: StartResponder, roster: Path, alerts: int = 2):  # type: ignore[no-untyped-def]
    r = start(roster_file=roster)
    for n in range(alerts):
        doc = payload(
            alert(
                fingerprint=f"fa7{n}",
                labels={"alertname": f"Noisy{n}", "severity": "critical", "component": "duckdb"},
            )
        )
        assert r.post(body(doc)).status_code == 200
    return r


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRADEGUARD_RESPONDER_TOKEN": TOKEN, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "tradeguard.cli", "alerts", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_report_counts_each_alert_against_the_operator_on_call(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.yml"
    roster.write_text(ROSTER)
    r = fire(start_responder, roster)
    fatigue = r.get("/api/report", days=1).json()["fatigue"]
    assert fatigue["roster"] is True and fatigue["nobody_on_call"] == 0
    [alice] = fatigue["operators"]
    assert alice["operator"] == "alice" and alice["alerts"] == 2 and alice["critical"] == 2
    assert alice["shifts"] >= 2  # a 24-hour window spans at least two 12-hour shifts
    assert alice["alerts_per_shift"] == 2 / alice["shifts"]

    page = login(r).get("/console/effectiveness?days=1")
    assert page.status_code == 200
    table = re.search(r'<table id="fatigue">(.*?)</table>', page.text, re.S)
    assert table is not None and "<td>alice</td><td>" in table.group(1)

    shown = cli("report", "--days", "1", "--url", r.url)
    assert shown.returncode == 0, shown.stderr
    assert "alice: " in shown.stdout and "(2 in " in shown.stdout


def test_each_notification_names_who_is_on_call_as_it_goes_out(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.yml"
    roster.write_text(ROSTER)
    r = fire(start_responder, roster, alerts=1)
    [sent] = r.wait_notified(1)
    assert sent["on_call"] == "alice"


def test_without_a_roster_notifications_name_nobody(start_responder: StartResponder) -> None:
    r = start_responder()
    doc = payload(alert(fingerprint="fa70"))
    assert r.post(body(doc)).status_code == 200
    [sent] = r.wait_notified(1)
    assert sent["on_call"] is None


def test_a_roster_edit_takes_effect_without_a_restart_and_a_broken_one_is_reported(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.yml"
    roster.write_text(ROSTER)
    r = fire(start_responder, roster, alerts=1)
    roster.write_text(ROSTER.replace("[alice]", "[bob]"))
    stamp = roster.stat().st_mtime + 5
    os.utime(roster, (stamp, stamp))
    names = [o["operator"] for o in r.get("/api/report", days=1).json()["fatigue"]["operators"]]
    assert names == ["bob"]
    roster.write_text("shifts: [broken")
    os.utime(roster, (stamp + 5, stamp + 5))
    names = [o["operator"] for o in r.get("/api/report", days=1).json()["fatigue"]["operators"]]
    assert names == ["bob"]  # the last good roster
    page = r.get("/api/report.html", days=1)
    assert "still using the roster read before" in page.text


def test_report_html_writes_one_self_contained_file_with_its_charts(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.yml"
    roster.write_text(ROSTER)
    r = fire(start_responder, roster)
    out = tmp_path / "weekly" / "report.html"
    out.parent.mkdir()
    written = cli("report", "--days", "7", "--url", r.url, "--html", str(out))
    assert written.returncode == 0, written.stderr
    assert "wrote the report of the last 7 day(s)" in written.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>")
    # Self-contained: no stylesheet, script, image or font fetched from anywhere.
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<style>" in page and "--card" in page  # the stylesheet, inlined
    assert page.count("<svg") >= 3  # per day, per shift, per operator (and top alerts)
    assert "Noisy0" in page and "<td>alice</td>" in page
    assert "Fatigue index" in page


def test_report_html_fails_with_one_line_and_writes_nothing_when_it_cannot_be_had(
    start_responder: StartResponder, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    unreachable = cli("report", "--url", "http://127.0.0.1:9", "--html", str(out))
    assert unreachable.returncode == 1
    assert "unreachable" in unreachable.stderr and "Traceback" not in unreachable.stderr
    assert not out.exists()

    r = start_responder()
    r.server.history.close()
    down = cli("report", "--url", r.url, "--html", str(out))
    assert down.returncode == 1 and "alert history unavailable" in down.stderr
    assert not out.exists()

    r2 = start_responder()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    nowhere = cli("report", "--url", r2.url, "--html", str(blocker / "r.html"))
    assert nowhere.returncode == 1, nowhere.stderr
    assert "cannot write" in nowhere.stderr and "Traceback" not in nowhere.stderr


def test_a_responder_given_a_broken_roster_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    roster = tmp_path / "roster.yml"
    roster.write_text(
        "shifts: [{name: a, start: '08:00', end: '20:00'}, {name: b, start: '10:00', end: '12:00'}]"
    )
    token = tmp_path / "token"
    token.write_text(TOKEN)
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradeguard.cli",
            "responder",
            "--port",
            "0",
            "--token-file",
            str(token),
            "--roster-file",
            str(roster),
            "--history-url",
            f"sqlite:///{tmp_path / 'h.sqlite3'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 2, started.stdout + started.stderr
    assert "shifts a and b overlap" in started.stderr and "Traceback" not in started.stderr
