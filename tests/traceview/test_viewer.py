"""The trace viewer in a real browser: traceview as a process (``TraceReceiver``), fed real
spans by the OpenTelemetry SDK's OTLP exporter from two services, and its page in headless
Chromium: the list and its filters, the waterfall's nesting, bars and colours, a span's
details, and a span link followed to its target. The screenshot is saved to
``$TEST_UNDECLARED_OUTPUTS_DIR/traceview.png``."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.dashboard.browser import headless_chromium
from tools.stack.traces import TraceReceiver

MS = 1_000_000
WAIT = 15.0


def tracer_of(receiver: TraceReceiver, service: str) -> tuple[TracerProvider, trace.Tracer]:
    exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, provider.get_tracer("test_viewer")


@dataclass
class Sent:
    """What the test exported: the request's trace and the batch's trace."""

    request_trace: str
    root_span: str
    publish_span: str
    batch_trace: str


def send(receiver: TraceReceiver) -> Sent:
    """A request (gateway → publish → worker execute → model call, 100 ms) and a batch (worker,
    its own trace, linked to the request's root), with fixed times so the bars are known."""
    gateway_provider, gateway = tracer_of(receiver, "gateway")
    worker_provider, worker = tracer_of(receiver, "model_a-worker")
    t0 = time.time_ns() - 1000 * MS
    root = gateway.start_span("POST /predict/model_a", kind=SpanKind.SERVER, start_time=t0)
    root.set_attribute("http.route", "/predict/{model}")
    in_root = trace.set_span_in_context(root)
    publish = gateway.start_span(
        "publish model_a", context=in_root, kind=SpanKind.PRODUCER, start_time=t0 + 5 * MS
    )
    publish.set_attribute("messaging.destination.name", "model_a")
    publish.end(end_time=t0 + 10 * MS)
    execute = worker.start_span(
        "execute model_a",
        context=trace.set_span_in_context(publish),
        kind=SpanKind.CONSUMER,
        start_time=t0 + 30 * MS,
    )
    model = worker.start_span(
        "model call", context=trace.set_span_in_context(execute), start_time=t0 + 40 * MS
    )
    model.add_event("input decoded", {"bytes": 42}, timestamp=t0 + 45 * MS)
    model.set_status(Status(StatusCode.ERROR, "model raised"))
    model.end(end_time=t0 + 80 * MS)
    execute.end(end_time=t0 + 90 * MS)
    root.end(end_time=t0 + 100 * MS)
    batch = worker.start_span(
        "batch model_a",
        context=Context(),
        links=[Link(root.get_span_context(), {"conveyor.request": 1})],
        start_time=t0 + 200 * MS,
    )
    batch.end(end_time=t0 + 202 * MS)
    gateway_provider.shutdown()
    worker_provider.shutdown()
    return Sent(
        request_trace=format(root.get_span_context().trace_id, "032x"),
        root_span=format(root.get_span_context().span_id, "016x"),
        publish_span=format(publish.get_span_context().span_id, "016x"),
        batch_trace=format(batch.get_span_context().trace_id, "032x"),
    )


@pytest.fixture(scope="module")
def receiver() -> Iterator[TraceReceiver]:
    with TraceReceiver() as running:
        yield running


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with headless_chromium("--window-size=1400,900") as driver:
        yield driver


def rows(browser: WebDriver) -> list[str]:
    """The listed traces' ids, read in one script run: the page may redraw the table between
    two WebDriver calls, and an element found before a redraw is stale after it."""
    ids = browser.execute_script(
        "return Array.from(document.querySelectorAll('#traces tbody tr'),"
        " row => String(row.getAttribute('data-trace-id')));"
    )
    return [str(trace_id) for trace_id in ids]


def wait_for(browser: WebDriver, css: str) -> WebElement:
    return WebDriverWait(browser, WAIT).until(lambda b: b.find_element(By.CSS_SELECTOR, css))


def percent(element: WebElement, prop: str) -> float:
    match = re.fullmatch(r"([0-9.]+)%", str(element.value_of_css_property(prop)) or "")
    if match:
        return float(match.group(1))
    # Computed styles come back in pixels: relative to the bar's track.
    track = element.find_element(By.XPATH, "..")
    pixels = float(str(element.value_of_css_property(prop)).removesuffix("px"))
    return 100 * pixels / float(track.size["width"])


def test_the_viewer_lists_draws_and_follows_links(
    receiver: TraceReceiver, browser: WebDriver
) -> None:
    receiver.clear()
    sent = send(receiver)
    receiver.wait_for_trace(sent.request_trace, min_spans=4, timeout=WAIT)
    receiver.wait_for_trace(sent.batch_trace, min_spans=1, timeout=WAIT)

    browser.get(f"{receiver.endpoint}/")
    WebDriverWait(browser, WAIT).until(lambda b: len(rows(b)) == 2)
    assert rows(browser) == [sent.batch_trace, sent.request_trace]  # newest first
    request_row = browser.find_element(By.CSS_SELECTOR, f'tr[data-trace-id="{sent.request_trace}"]')
    assert "POST /predict/model_a" in request_row.text and "gateway" in request_row.text
    assert "error" in str(request_row.get_attribute("class"))

    # Filters: the gateway's traces only; then only traces of at least 50 ms.
    Select(browser.find_element(By.ID, "service")).select_by_value("gateway")
    WebDriverWait(browser, WAIT).until(lambda b: rows(b) == [sent.request_trace])
    Select(browser.find_element(By.ID, "service")).select_by_value("")
    WebDriverWait(browser, WAIT).until(lambda b: len(rows(b)) == 2)
    browser.find_element(By.ID, "min-duration").clear()
    browser.find_element(By.ID, "min-duration").send_keys("50")
    browser.find_element(By.ID, "refresh").click()
    WebDriverWait(browser, WAIT).until(lambda b: rows(b) == [sent.request_trace])

    # The waterfall: four spans in tree order, nested, bars where their times say.
    browser.find_element(By.CSS_SELECTOR, f'tr[data-trace-id="{sent.request_trace}"]').click()
    request_rows = f'#waterfall[data-trace-id="{sent.request_trace}"] .span-row'
    WebDriverWait(browser, WAIT).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, request_rows)) == 4
    )
    span_rows = browser.find_elements(By.CSS_SELECTOR, ".span-row")
    names = [row.find_element(By.CSS_SELECTOR, ".span-name").text for row in span_rows]
    assert names == [
        "POST /predict/model_a",
        "publish model_a",
        "execute model_a",
        "model call",
    ]
    indents = [
        float(str(r.find_element(By.CSS_SELECTOR, ".span-label").value_of_css_property(
            "padding-left")).removesuffix("px"))
        for r in span_rows
    ]  # fmt: skip
    assert indents[0] < indents[1] < indents[2] < indents[3]
    bars = [row.find_element(By.CSS_SELECTOR, ".span-bar") for row in span_rows]
    lefts = [percent(bar, "left") for bar in bars]
    widths = [percent(bar, "width") for bar in bars]
    for got, want in zip(lefts, [0, 5, 30, 40], strict=True):
        assert got == pytest.approx(want, abs=1.0)
    for got, want in zip(widths, [100, 5, 60, 40], strict=True):
        assert got == pytest.approx(want, abs=1.0)
    colours = [bar.value_of_css_property("background-color") for bar in bars]
    assert colours[0] == colours[1] != colours[2] == colours[3]  # by service
    assert "error" in str(span_rows[3].get_attribute("class"))

    # A span's details on click: attributes, events, status.
    span_rows[3].click()
    details = wait_for(browser, "#details:not([hidden])")
    WebDriverWait(browser, WAIT).until(lambda b: "model call" in details.text)
    assert "ERROR: model raised" in details.text
    assert "input decoded" in details.text and "bytes" in details.text
    span_rows[1].click()
    WebDriverWait(browser, WAIT).until(lambda b: "messaging.destination.name" in details.text)
    assert details.get_attribute("data-span-id") == sent.publish_span
    save_screenshot(browser)

    # The batch's link leads to the request's root span.
    # Only the hash changes: the page stays and draws the batch's trace in place of the other.
    browser.get(f"{receiver.endpoint}/#trace={sent.batch_trace}")
    wait_for(browser, f'#waterfall[data-trace-id="{sent.batch_trace}"] .span-row').click()
    link = wait_for(browser, "#details a.link-target")
    assert link.get_attribute("data-trace-id") == sent.request_trace
    assert "conveyor.request" in browser.find_element(By.ID, "details").text
    link.click()
    WebDriverWait(browser, WAIT).until(
        lambda b: b.find_element(By.ID, "details").get_attribute("data-span-id") == sent.root_span
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, ".span-row")) == 4
    selected = browser.find_element(By.CSS_SELECTOR, ".span-row.selected")
    assert selected.get_attribute("data-span-id") == sent.root_span


def save_screenshot(browser: WebDriver) -> None:
    out = Path(os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or tempfile.mkdtemp())
    browser.save_screenshot(str(out / "traceview.png"))
