"""The dashboard in a real browser: a stack serving two models, some traffic, and the page in
headless Chromium showing both models with non-zero figures. The screenshot is saved to
``$TEST_UNDECLARED_OUTPUTS_DIR/dashboard.png``."""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.dashboard.browser import headless_chromium
from tests.integration.stack import Served


@pytest.fixture(scope="module")
def stack() -> Iterator[Served]:
    with Served(DASHBOARD_SAMPLE_SECONDS="0.5") as stack:
        yield stack


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with headless_chromium("--window-size=1400,900") as driver:
        yield driver


def _traffic(stack: Served) -> None:
    for i in range(20):
        a = stack.http.post(f"/predict/{stack.model_a}", json={"data": f"hello {i}"})
        assert a.status_code == 200, a.text
        b = stack.http.post(f"/predict/{stack.model_b}", json={"features": [5.1, 3.5, 1.4, 0.2]})
        assert b.status_code == 200, b.text
    wrong = stack.http.post(f"/predict/{stack.model_b}", json={"features": [1.0]})
    assert wrong.status_code == 422


def _figure(browser: WebDriver, model: str, name: str) -> str:
    card = browser.find_element(By.CSS_SELECTOR, f'section[data-model="{model}"]')
    return str(card.find_element(By.CSS_SELECTOR, f'[data-figure="{name}"]').text)


_NO_VALUE = "\u2013"  # what the page shows for a figure it does not know yet


def _number(text: str) -> float:
    head = text.split()[0] if text.strip() else _NO_VALUE
    return 0.0 if head == _NO_VALUE else float(head)


def test_the_dashboard_shows_both_models_with_live_figures(
    stack: Served, browser: WebDriver
) -> None:
    _traffic(stack)
    browser.get(f"{stack.api_url}/dashboard")
    models = (stack.model_a, stack.model_b)
    # Both rounds of traffic: 40 answers each, and model_b's 422 besides.
    expected = {stack.model_a: 40, stack.model_b: 41}

    def shown(driver: WebDriver) -> bool:
        try:
            return all(
                _number(_figure(driver, m, "requests")) >= expected[m]
                and _number(_figure(driver, m, "instances")) >= 1
                and _number(_figure(driver, m, "p50")) > 0
                and _number(_figure(driver, m, "p99")) > 0
                for m in models
            )
        except Exception:
            return False

    _traffic(stack)  # a second round while the page is open: the rate chart moves
    try:
        WebDriverWait(browser, 30, poll_frequency=0.5).until(shown)
    finally:
        outputs = Path(os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", tempfile.gettempdir()))
        browser.save_screenshot(str(outputs / "dashboard.png"))
    assert browser.title == "Conveyor dashboard"
    page = browser.find_element(By.TAG_NAME, "main").text
    for model in models:
        assert model in page
    assert _number(_figure(browser, stack.model_b, "requests")) >= 41  # two rounds and a 422
    assert "ok" in (browser.find_element(By.ID, "status").get_attribute("class") or "")
    charts = browser.find_elements(By.CSS_SELECTOR, "section.model svg polyline")
    assert len(charts) >= 2 * 4  # rate, p50, p99, queued per model
