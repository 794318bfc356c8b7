"""The operator's console in headless Chromium against a live stack: log in, see an alert a
real fault raised, acknowledge it, see MTTA move; every page at a desktop and a phone width,
with no browser console errors. Screenshots go to ``$TRADEGUARD_ARTIFACTS`` (default
``build/console-screenshots``) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tradeguard.chaos.runner import run_scenario
from tradeguard.chaos.scenarios import SCENARIOS
from tradeguard.stack.render import ensure_token

from .conftest import LiveStack

WIDTHS = {"desktop": 1280, "phone": 390}
PAGES = {
    "now": "/console/now",
    "history": "/console/history?days=1",
    "effectiveness": "/console/effectiveness?days=1",
    "actions": "/console/actions",
    "ha": "/console/ha",
    "trade": "/console/trade",
    "runbook": "/runbooks/TradeSlippageSpike",
}
SCENARIO = "slippage-spike"


def artifacts() -> Path:
    where = Path(os.environ.get("TRADEGUARD_ARTIFACTS", "build")) / "console-screenshots"
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture(scope="module")
def chrome() -> Iterator[WebDriver]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.fail("chromium and chromedriver are needed (make setup installs them)")
    options = Options()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: WebDriver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def fits_width(driver: WebDriver) -> bool:
    """No horizontal scrolling of the page itself (wide tables scroll in their own box)."""
    inner = driver.execute_script("return window.innerWidth")
    scroll = driver.execute_script("return document.documentElement.scrollWidth")
    return bool(scroll <= inner + 1)


def test_an_operator_sees_acknowledges_and_reviews_a_live_alert(
    live_stack: LiveStack, chrome: WebDriver
) -> None:
    scenario = SCENARIOS[SCENARIO]
    base = live_stack.layout.responder_url
    # Undone once it fires; its 5-minute window keeps the alert firing for the test.
    result = run_scenario(
        live_stack.stack, scenario, live_stack.view, fire_timeout=120, wait_resolved=False
    )
    assert result.caught, result.error
    chrome.set_window_size(WIDTHS["desktop"], 900)
    chrome.get(f"{base}/console/now")
    assert "/console/login" in chrome.current_url
    chrome.find_element(By.NAME, "operator").send_keys("Dana Ops")
    chrome.find_element(By.NAME, "credential").send_keys(ensure_token(live_stack.layout))
    chrome.find_element(By.CSS_SELECTOR, "form.login button").click()
    WebDriverWait(chrome, 15).until(
        expected_conditions.url_matches(r"/console/now$"), "the login's redirect"
    )
    card = chrome.find_element(By.XPATH, f"//article[h3='{scenario.alert}']")
    assert "firing for" in card.text

    chrome.get(f"{base}/console/effectiveness?days=1")
    before = chrome.find_element(By.ID, "mtta").text
    chrome.get(f"{base}/console/now")
    card = chrome.find_element(By.XPATH, f"//article[h3='{scenario.alert}']")
    card.find_element(By.NAME, "note").send_keys("on it")
    card.find_element(By.CSS_SELECTOR, "form.ack button").click()
    # A click does not wait for the page it leads to: wait for the redirect's address.
    WebDriverWait(chrome, 15).until(
        expected_conditions.url_contains("acked="), "the acknowledgement's redirect"
    )
    assert f"Acknowledged: {scenario.alert}" in chrome.page_source
    card = chrome.find_element(By.XPATH, f"//article[h3='{scenario.alert}']")
    assert "Acknowledged by Dana Ops" in card.text
    chrome.get(f"{base}/console/effectiveness?days=1")
    after = chrome.find_element(By.ID, "mtta").text
    assert before == "—" and after != "—", (before, after)

    chrome.get(f"{base}/console/ha")
    leader = chrome.find_element(By.ID, "leader").text
    assert leader in live_stack.layout.engine_ports, f"the HA page names {leader!r} as leader"

    shots = artifacts()
    for width_name, width in WIDTHS.items():
        chrome.set_window_size(width, 1000)
        for page, path in PAGES.items():
            chrome.get(base + path)
            assert chrome.find_element(By.TAG_NAME, "h1").text, f"{page} has no heading"
            assert fits_width(chrome), f"{page} scrolls sideways at {width} px"
            chrome.save_screenshot(str(shots / f"{page}-{width_name}.png"))
    assert console_errors(chrome) == []


def test_the_weekly_report_file_opens_on_its_own_and_names_who_was_on_call(
    live_stack: LiveStack, chrome: WebDriver
) -> None:
    token = ensure_token(live_stack.layout)
    report = artifacts() / "weekly-report.html"
    written = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradeguard.cli",
            "alerts",
            "report",
            "--html",
            str(report),
            "--url",
            live_stack.layout.responder_url,
        ],
        env={**os.environ, "TRADEGUARD_RESPONDER_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    # The stack's responder reads the shipped example rota: someone is on call all day.
    page = report.read_text()
    assert "No on-call roster is configured" not in page
    for width_name, width in WIDTHS.items():
        chrome.set_window_size(width, 1000)
        chrome.get(report.resolve().as_uri())  # a file: nothing behind it to fetch from
        assert chrome.find_element(By.TAG_NAME, "h1").text.startswith("Alerting effectiveness")
        assert fits_width(chrome), f"the report scrolls sideways at {width} px"
        chrome.save_screenshot(str(artifacts() / f"weekly-report-{width_name}.png"))
    assert console_errors(chrome) == []
