"""Headless Chromium for browser tests (Debian's chromium and chromium-driver)."""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


@contextlib.contextmanager
def headless_chromium(*arguments: str) -> Iterator[WebDriver]:
    """A headless Chromium driven by chromedriver, with a fresh profile and ``arguments``
    beside the defaults; the test fails saying what to install when either is missing."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).is_file():
            pytest.fail(
                f"{binary} is missing: this test needs Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver; ./bazelw test installs them)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # no user namespaces inside the test sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--user-data-dir={tempfile.mkdtemp(prefix='conveyor-chromium-')}",
        *arguments,
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
