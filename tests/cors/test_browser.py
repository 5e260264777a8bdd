"""CORS in a real browser: a page served from another origin calls the gateway with fetch().

The gateway runs with ``CORS_ORIGINS`` naming the page's origin and with ``API_KEYS`` set: the
page's requests carry ``Authorization`` and JSON bodies, so Chromium sends a preflight first,
which must pass without a key. A page of an origin not in ``CORS_ORIGINS`` cannot read any
answer (its fetch fails).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.dashboard.browser import headless_chromium
from tests.integration.stack import Served, free_port

KEY = "browser-key-0123456789"


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # an empty page: the test's scripts run in it
        body = b"<!doctype html><title>another origin</title><p>page</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def pages() -> Iterator[tuple[str, str]]:
    """Two page origins: the allowed one and another."""
    servers = [ThreadingHTTPServer(("127.0.0.1", free_port()), _Page) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        allowed, other = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
        yield allowed, other
    finally:
        for server in servers:
            server.shutdown()


@pytest.fixture(scope="module")
def stack(pages: tuple[str, str]) -> Iterator[Served]:
    with Served(CORS_ORIGINS=pages[0], API_KEYS=KEY) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium() as driver:
        driver.set_script_timeout(30)
        yield driver


_FETCH = """
const [url, init, done] = arguments;
fetch(url, init)
  .then(async (response) => done({
    status: response.status,
    body: await response.text(),
    requestId: response.headers.get("X-Request-ID"),
    retryAfter: response.headers.get("Retry-After"),
  }))
  .catch((error) => done({error: String(error)}));
"""


def _fetch(browser: WebDriver, page: str, url: str, **init: Any) -> dict[str, Any]:
    if not browser.current_url.startswith(page):
        browser.get(page)
    result: dict[str, Any] = browser.execute_async_script(_FETCH, url, init)
    return result


def _post(key: str, body: str, **headers: str) -> dict[str, Any]:
    return {
        "method": "POST",
        "headers": {"Content-Type": "application/json", "Authorization": f"Bearer {key}",
                    **headers},
        "body": body,
    }  # fmt: skip


def test_a_page_of_the_allowed_origin_calls_predict_and_v2(
    stack: Served, pages: tuple[str, str], browser: WebDriver
) -> None:
    page = pages[0]
    answer = _fetch(
        browser,
        page,
        f"{stack.api_url}/predict/{stack.model_b}",
        **_post(KEY, '{"features": [5.1, 3.5, 1.4, 0.2]}', **{"X-Request-ID": "from-the-page"}),
    )
    assert answer.get("status") == 200, answer
    assert '"label":"setosa"' in answer["body"]
    assert answer["requestId"] == "from-the-page"  # an exposed header

    infer = '{"inputs": [{"name": "data", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}'
    answer = _fetch(browser, page, f"{stack.api_url}/v2/models/{stack.model_a}/infer",
                    **_post(KEY, infer))  # fmt: skip
    assert answer.get("status") == 200, answer
    assert "Processed message: hi" in answer["body"]

    # An error is readable too: a wrong key's 401, after a preflight that needed none.
    answer = _fetch(browser, page, f"{stack.api_url}/predict/{stack.model_a}",
                    **_post("wrong-key-0123456789", '{"data": "x"}'))  # fmt: skip
    assert answer.get("status") == 401, answer
    assert "unauthorized" in answer["body"]


def test_a_page_of_another_origin_reads_nothing(
    stack: Served, pages: tuple[str, str], browser: WebDriver
) -> None:
    answer = _fetch(browser, pages[1], f"{stack.api_url}/predict/{stack.model_a}",
                    **_post(KEY, '{"data": "x"}'))  # fmt: skip
    assert "error" in answer, answer  # the browser refused it: "TypeError: Failed to fetch"
    answer = _fetch(browser, pages[1], f"{stack.api_url}/healthz")
    assert "error" in answer, answer
