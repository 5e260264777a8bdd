"""Tracing's contracts without brokers: off without an endpoint (nothing exported, nothing put in
a task), the set-up from the OTEL_* variables, the spans the gateway's dispatcher and the worker's
runner make (the SDK's in-memory exporter; small fakes for the channel, the waiter and the
deliveries), and the trace ids in log lines and metrics."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from api.catalog import ModelInfo
from api.dispatch import Dispatcher
from api.edge import route_of
from api.tests.fake_waiter import FakeWaiter
from conveyor import tracing
from conveyor.logs import JsonFormatter, bound
from conveyor.metrics import GatewayMetrics, WorkerMetrics, negotiated
from proto import model_a_pb2, task_pb2
from worker_base import task_spans
from worker_base.retries import RetryScheduler
from worker_base.retry_policy import Retry
from worker_base.scheduler import Scheduler
from worker_base.settle import Settler

INFO = ModelInfo(
    name="echo",
    version="2",
    versions=("2",),
    instances=1,
    request_class=model_a_pb2.ModelARequest,
    response_class=model_a_pb2.ModelAResponse,
)
_OTEL = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
)


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in _OTEL:
        monkeypatch.delenv(name, raising=False)
    yield
    tracing.shutdown()


@pytest.fixture
def exported() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter), tracing.GATEWAY)
    return exporter


class FakeUnderlay:
    def __init__(self, answer: FakeWaiter) -> None:
        self.tasks: list[task_pb2.Task] = []
        self.answer = answer

    async def basic_publish(self, body: bytes, **options: Any) -> None:
        task = task_pb2.Task.FromString(body)
        self.tasks.append(task)
        if task.reply_channel:
            self.answer.futures[task.task_id].set_result(task_pb2.TaskResult(task_id=task.task_id))


class FakeChannel:
    is_closed = False

    def __init__(self, underlay: FakeUnderlay) -> None:
        self.underlay = underlay

    async def get_underlay_channel(self) -> FakeUnderlay:
        return self.underlay


class FakeResults:
    redis = None

    async def submit(self, *args: Any) -> int:
        return 1


def _dispatcher() -> tuple[Dispatcher, FakeUnderlay]:
    waiter = FakeWaiter()
    underlay = FakeUnderlay(waiter)
    dispatcher = Dispatcher(
        "amqp://unused",
        FakeResults(),  # type: ignore[arg-type]
        result_ttl=60,
        waiter=waiter,  # type: ignore[arg-type]
        channel=FakeChannel(underlay),  # type: ignore[arg-type]
    )
    return dispatcher, underlay


def test_without_an_endpoint_tracing_stays_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not tracing.configure(tracing.GATEWAY)
    assert tracing.tracer is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.configure(tracing.GATEWAY)
    assert tracing.tracer is None


@pytest.mark.asyncio
async def test_without_an_endpoint_no_task_carries_a_trace_context() -> None:
    assert not tracing.configure(tracing.GATEWAY)
    dispatcher, underlay = _dispatcher()
    await dispatcher.run(INFO, b"p", seconds=5.0)
    await dispatcher.submit(INFO, b"p", deadline=60.0)
    assert len(underlay.tasks) == 2
    for task in underlay.tasks:
        assert not task.trace_context
        assert task.published_unix_nano == 0


def test_an_endpoint_turns_tracing_on_under_the_service_default_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    assert tracing.configure(tracing.worker_service("model_a"))
    assert tracing.tracer is not None
    span = tracing.tracer.start_span("x")
    assert span.resource.attributes["service.name"] == "conveyor-worker-model_a"  # type: ignore[attr-defined]
    tracing.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-7")
    assert tracing.configure(tracing.GATEWAY)
    assert tracing.tracer is not None
    span = tracing.tracer.start_span("y")
    assert span.resource.attributes["service.name"] == "edge-7"  # type: ignore[attr-defined]


def test_the_sampler_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    exported = InMemorySpanExporter()
    tracer = tracing.install(SimpleSpanProcessor(exported), tracing.GATEWAY)
    span = tracer.start_span("root")
    assert not span.is_recording()
    span.end()
    # A sampled parent is honoured.
    parent = tracing.extract("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    child = tracer.start_span("child", context=parent)
    assert child.is_recording()
    child.end()
    assert [s.name for s in exported.get_finished_spans()] == ["child"]


def test_a_dropped_request_gets_no_span_but_a_traceparent_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    exported = InMemorySpanExporter()
    tracer = tracing.install(SimpleSpanProcessor(exported), tracing.GATEWAY)
    span, echo = tracing.server_span(tracer, "POST /predict/{model}", None, None, {})
    assert span is None
    version, trace_id, span_id, flags = echo.split("-")
    assert (version, len(trace_id), len(span_id), flags) == ("00", 32, 16, "02")  # random id
    # An unsampled parent: its trace continues, unsampled; a sampled one is honoured.
    parent = "0af7651916cd43dd8448eb211c80319c"
    span, echo = tracing.server_span(tracer, "x", f"00-{parent}-b7ad6b7169203331-00", None, {})
    assert span is None
    assert echo.startswith(f"00-{parent}-") and echo.endswith("-00")
    assert "b7ad6b7169203331" not in echo  # a span id of its own
    span, echo = tracing.server_span(tracer, "y", f"00-{parent}-b7ad6b7169203331-01", "k=v", {})
    assert span is not None and span.is_recording()
    assert echo == tracing.traceparent_of(span)
    span.end()
    assert [s.name for s in exported.get_finished_spans()] == ["y"]


def test_a_sampled_root_span_keeps_the_trace_id_it_was_sampled_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a ratio, the span started after the decision has the id the sampler saw: the
    share of requests sampled is the ratio, not its square."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    exported = InMemorySpanExporter()
    tracer = tracing.install(SimpleSpanProcessor(exported), tracing.GATEWAY)
    bound = round(0.5 * (1 << 64))  # the SDK's TraceIdRatioBased: low 64 bits below it
    sampled = 0
    for _ in range(400):
        span, echo = tracing.server_span(tracer, "r", None, None, {})
        trace_id = int(echo.split("-")[1], 16)
        assert (span is not None) == ((trace_id & ((1 << 64) - 1)) < bound)
        if span is not None:
            sampled += 1
            span.end()
    assert 140 < sampled < 260
    assert len(exported.get_finished_spans()) == sampled


def test_a_malformed_traceparent_starts_a_new_trace() -> None:
    assert tracing.extract("00-zz-yy-01") is None
    assert tracing.extract("") is None
    context = tracing.extract("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "k=v")
    assert context is not None


@pytest.mark.asyncio
async def test_a_task_published_in_a_sampled_span_carries_its_context(
    exported: InMemorySpanExporter,
) -> None:
    dispatcher, underlay = _dispatcher()
    assert tracing.tracer is not None
    with tracing.tracer.start_as_current_span("POST /predict/{model}") as request:
        await dispatcher.run(INFO, b"p", seconds=5.0)
    task = underlay.tasks[0]
    assert task.trace_context["traceparent"] == tracing.traceparent_of(request)
    assert task.published_unix_nano > 0
    spans = {s.name: s for s in exported.get_finished_spans()}
    send, wait = spans["send conveyor.sync.echo.2"], spans["wait result"]
    assert send.kind == tracing.SpanKind.PRODUCER
    assert send.attributes is not None
    assert send.attributes["messaging.destination.name"] == "conveyor.sync.echo.2"
    assert send.attributes["messaging.system"] == "rabbitmq"
    request_id = request.get_span_context().span_id
    assert send.parent is not None and send.parent.span_id == request_id
    assert wait.parent is not None and wait.parent.span_id == request_id
    assert send.start_time is not None and send.end_time is not None
    assert send.start_time <= task.published_unix_nano <= send.end_time


@pytest.mark.asyncio
async def test_an_unsampled_request_publishes_an_untraced_task(
    exported: InMemorySpanExporter,
) -> None:
    dispatcher, underlay = _dispatcher()
    parent = tracing.extract("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
    assert tracing.tracer is not None
    with tracing.tracer.start_as_current_span("request", context=parent):
        await dispatcher.submit(INFO, b"p", deadline=60.0)
    assert not underlay.tasks[0].trace_context
    assert exported.get_finished_spans() == ()


class FakeMessage:
    """A delivery as the settler acknowledges it."""

    redelivered = False
    channel = "channel-1"

    def __init__(self, tag: int) -> None:
        self.delivery_tag = tag
        self.acked = False

    async def ack(self, multiple: bool = False) -> None:
        self.acked = True


def _traced_task(task_id: str, published_ns: int) -> task_pb2.Task:
    task = task_pb2.Task(task_id=task_id, result_key=f"k:{task_id}", attempt=1, request_id="r")
    task.trace_context["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    task.published_unix_nano = published_ns
    return task


@pytest.mark.asyncio
async def test_a_worker_spans_queue_process_model_and_store(
    exported: InMemorySpanExporter,
) -> None:
    stored: list[str] = []

    async def store(items: list[tuple[task_pb2.Task, task_pb2.TaskResult]]) -> None:
        stored.extend(task.task_id for task, _ in items)

    settler, scheduler = Settler(store), Scheduler()
    deliveries = []
    for i, published in enumerate((1_000, 2_000)):
        task = _traced_task(f"t{i}", published)
        message = FakeMessage(i + 1)
        settler.opened(message)  # type: ignore[arg-type]
        span = task_spans.delivered(task, "conveyor.sync.echo.2", "echo", "2", 5_000)
        assert span is not None
        deliveries.append(scheduler.make(task, message, "sync", span=span))  # type: ignore[arg-type]
    spans = [d.span for d in deliveries if d.span is not None]
    with task_spans.model_call(spans, "echo", batching=True, size=2) as call:
        assert call is not None
        assert tracing.current_ids() is not None  # the model's log lines join the trace
    failed = task_pb2.TaskResult(task_id="t1")
    failed.error.code = task_pb2.TaskError.MODEL_ERROR
    failed.error.message = "boom"
    task_spans.outcome(spans[1], failed)
    settler.commit([(deliveries[0], task_pb2.TaskResult(task_id="t0")), (deliveries[1], failed)])
    await asyncio.wait_for(settler.drained(), 5.0)
    assert stored == ["t0", "t1"]

    finished = exported.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for finished_span in finished:
        by_name.setdefault(finished_span.name, []).append(finished_span)
    queues = by_name["queue conveyor.sync.echo.2"]
    processes = by_name["process conveyor.sync.echo.2"]
    assert sorted(s.start_time for s in queues) == [1_000, 2_000]
    assert all(s.end_time == 5_000 for s in queues)
    assert all(s.start_time == 5_000 and s.kind == tracing.SpanKind.CONSUMER for s in processes)
    (batch,) = by_name["process_batch echo"]
    process_ids = {s.context.span_id for s in processes}
    assert {link.context.span_id for link in batch.links} == process_ids
    assert batch.parent.span_id in process_ids
    stores = by_name["store result"]
    assert {s.parent.span_id for s in stores} == process_ids
    for store_span in stores:
        process = next(p for p in processes if p.context.span_id == store_span.parent.span_id)
        assert process.start_time <= store_span.start_time <= store_span.end_time
        assert store_span.end_time <= process.end_time  # the process ends once settled
    failing = next(p for p in processes if p.attributes["conveyor.task.id"] == "t1")
    assert not failing.status.is_ok and failing.status.description == "boom"


def test_an_untraced_task_gets_no_spans(exported: InMemorySpanExporter) -> None:
    task = task_pb2.Task(task_id="t", result_key="k")
    assert task_spans.delivered(task, "q", "echo", "2", 5) is None
    with task_spans.model_call([], "echo", batching=False, size=1) as call:
        assert call is None
    assert exported.get_finished_spans() == ()


def _log_line(message: str) -> dict[str, Any]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("api"))
    logger = logging.getLogger("tests.tracing")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with bound(request_id="req-1"):
            logger.info(message)
    finally:
        logger.removeHandler(handler)
    line: dict[str, Any] = json.loads(stream.getvalue())
    return line


def test_a_log_line_inside_a_span_carries_its_trace(exported: InMemorySpanExporter) -> None:
    assert "trace_id" not in _log_line("outside")
    assert tracing.tracer is not None
    with tracing.tracer.start_as_current_span("work") as span:
        line = _log_line("inside")
    context = span.get_span_context()
    assert line["request_id"] == "req-1"
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"


def test_latency_histograms_carry_trace_ids_as_exemplars() -> None:
    metrics = GatewayMetrics()
    metrics.series("predict", "echo", "2").observe(200, 0.003, trace_id="ab" * 16)
    metrics.series("predict", "echo", "2").observe(200, 0.2)  # untraced: no exemplar
    text, content_type = negotiated(metrics.registry, None)
    assert content_type.startswith("text/plain") and b"trace_id" not in text
    om, content_type = negotiated(metrics.registry, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    lines = [line for line in om.decode().splitlines() if "trace_id" in line]
    assert len(lines) == 1
    assert lines[0].startswith("conveyor_request_duration_seconds_bucket")
    assert 'le="0.005"' in lines[0] and f'trace_id="{"ab" * 16}"' in lines[0]

    worker = WorkerMetrics("echo", "2")
    task = task_pb2.Task(task_id="t", created_unix_ms=1_000)
    result = task_pb2.TaskResult(started_unix_ms=1_010, finished_unix_ms=1_020)
    worker.observe([task], [result], ["cd" * 16])
    om, _ = negotiated(worker.registry, "application/openmetrics-text")
    assert om.decode().count(f'trace_id="{"cd" * 16}"') == 2  # queue and model latency


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/predict/model_a", "/predict/{model}"),
        ("/tasks/abc123", "/tasks/{task_id}"),
        ("/tasks/abc123/events", "/tasks/{task_id}/events"),
        ("/v2/models/m/versions/3/infer", "/v2/models/{model}/versions/{version}/infer"),
        ("/v2/models/m/infer", "/v2/models/{model}/infer"),
        ("/healthz", "/healthz"),
    ],
)
def test_routes_name_spans_without_ids(path: str, route: str) -> None:
    assert route_of(path) == route


class FakeLane:
    """A delay lane that keeps what it is given."""

    def __init__(self) -> None:
        self.published: list[tuple[task_pb2.Task, int]] = []

    async def publish(self, task: task_pb2.Task, delay_ms: int) -> None:
        self.published.append((task, delay_ms))


@pytest.mark.asyncio
async def test_a_retry_is_a_producer_span_under_the_failed_attempt(
    exported: InMemorySpanExporter,
) -> None:
    async def store(items: list[tuple[task_pb2.Task, task_pb2.TaskResult]]) -> None:
        raise AssertionError("a retried attempt stores nothing")

    settler, lane = Settler(store), FakeLane()
    task = _traced_task("t", 1_000)
    task.reply_channel = "conveyor:reply:g"  # synchronous: no event stream to note
    message = FakeMessage(1)
    settler.opened(message)  # type: ignore[arg-type]
    span = task_spans.delivered(task, "conveyor.sync.echo.2", "echo", "2", 5_000)
    assert span is not None
    delivery = Scheduler().make(task, message, "sync", span=span)  # type: ignore[arg-type]
    following = task_pb2.Task()
    following.CopyFrom(task)
    following.attempt = 2
    error = task_pb2.TaskError(code=task_pb2.TaskError.MODEL_ERROR, message="busy")
    failed = task_pb2.TaskResult(task_id="t", error=error)
    task_spans.outcome(span, failed, retried=True)
    retries = RetryScheduler(lane, settler, None, WorkerMetrics("echo", "2"))  # type: ignore[arg-type]
    retries.schedule([(delivery, Retry(following, error, 256))])
    await asyncio.wait_for(settler.drained(), 5.0)

    ((published, delay),) = lane.published
    assert delay == 256 and published.attempt == 2
    assert published.trace_context["traceparent"] == task.trace_context["traceparent"]
    spans = {s.name: s for s in exported.get_finished_spans()}
    send, process = spans["send conveyor.delay.256"], spans["process conveyor.sync.echo.2"]
    assert send.kind == tracing.SpanKind.PRODUCER
    assert send.parent is not None and send.parent.span_id == process.context.span_id
    start, end, settled = send.start_time or 0, send.end_time or 0, process.end_time or 0
    assert start <= published.published_unix_nano <= end
    assert end <= settled  # the attempt is settled after its retry left
    assert process.status.description == "retrying: busy"


@pytest.mark.asyncio
async def test_the_registry_leaves_heartbeats_untraced(exported: InMemorySpanExporter) -> None:
    from conveyor.tracing_asgi import ServerSpans
    from registry.main import UNTRACED_ROUTES, route_of

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    spans = ServerSpans(app, route_of=route_of, untraced_routes=UNTRACED_ROUTES)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    for method, path in (("PUT", "/models/echo/instances/abc"), ("GET", "/models/echo")):
        scope = {"type": "http", "method": method, "path": path, "headers": []}
        await spans(scope, receive, send)
    assert [s.name for s in exported.get_finished_spans()] == ["GET /models/{name}"]
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [dict(m["headers"]).get(b"traceparent") is not None for m in starts] == [False, True]
