"""One trace from the client to the model and back, on a real stack (registry, gateway, model_a
and model_b workers as processes, real RabbitMQ and Redis) exporting over OTLP/HTTP to a real
receiver (traceview, ``tools.stack.traces``).

Spans of different processes are compared on one machine's clock. A worker span may end after
its gateway parent: the store's reply reaches the worker when its notification reaches the
gateway, and on a loaded machine either process may be scheduled late. So the worker's spans
must start inside the request's span, and end at most ``SLACK_NS`` after it; the order that
causality fixes (model, then store, then the wait's end) is checked exactly.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from conveyor.protocol import durable_queue, sync_queue
from tests.integration.stack import Served, Service, free_port, wait_until
from tools.stack.traces import TraceReceiver

SLACK_NS = 200_000_000
"""How far a span of another process may end after its parent (0.2 s: a loaded machine)."""

Span = dict[str, Any]


@pytest.fixture(scope="module")
def receiver() -> Iterator[TraceReceiver]:
    with TraceReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def stack(receiver: TraceReceiver) -> Iterator[Served]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # spans leave within 0.1 s
        "LOG_LEVEL": "debug",  # the gateway's access line and the worker's "task answered"
        "LOG_FORMAT": "json",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # every service the stack starts inherits them
    try:
        grpc_port = free_port()
        with Served(GRPC_PORT=str(grpc_port)) as stack:
            stack.grpc_target = f"127.0.0.1:{grpc_port}"  # type: ignore[attr-defined]
            yield stack
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _client_traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _one(spans: list[Span], name: str, service_prefix: str = "") -> Span:
    found = [s for s in spans if s["name"] == name and s["service"].startswith(service_prefix)]
    assert len(found) == 1, (name, [(s["service"], s["name"]) for s in spans])
    return found[0]


def _inside(child: Span, parent: Span, slack: int = 0) -> None:
    assert child["parent_span_id"] == parent["span_id"], (child["name"], parent["name"])
    assert child["start_unix_nano"] >= parent["start_unix_nano"], (child["name"], parent["name"])
    assert child["end_unix_nano"] <= parent["end_unix_nano"] + slack, (
        child["name"],
        parent["name"],
        child["end_unix_nano"] - parent["end_unix_nano"],
    )


def _render(spans: list[Span]) -> str:
    """The trace as an indented tree: offset from its first span and duration, in ms."""
    start = min(s["start_unix_nano"] for s in spans)
    children: dict[str, list[Span]] = {}
    ids = {s["span_id"] for s in spans}
    for span in sorted(spans, key=lambda s: s["start_unix_nano"]):
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else ""
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in children.get(parent, []):
            offset = (span["start_unix_nano"] - start) / 1e6
            duration = (span["end_unix_nano"] - span["start_unix_nano"]) / 1e6
            links = f"  (links {len(span['links'])})" if span["links"] else ""
            lines.append(
                f"{offset:7.2f} ms {duration:7.2f} ms  {'  ' * depth}{span['name']}"
                f"  [{span['service']}]{links}"
            )
            walk(span["span_id"], depth + 1)

    walk("", 0)
    return "\n".join(lines)


def _keep(name: str, text: str) -> None:
    """Save ``text`` among the test's outputs (Bazel's undeclared outputs), for the docs."""
    directory = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if directory:
        with open(os.path.join(directory, name), "w") as out:
            out.write(text + "\n")


def _worker_spans(spans: list[Span], model: str, queue: str) -> tuple[Span, Span, Span, Span]:
    """The worker's queue, process, model and store spans of one task, checked."""
    prefix = f"conveyor-worker-{model}"
    waited = _one(spans, f"queue {queue}", prefix)
    process = _one(spans, f"process {queue}", prefix)
    store = _one(spans, "store result", prefix)
    call = [s for s in spans if s["name"].endswith(f" {model}") and s["service"] == prefix]
    assert len(call) == 1, [s["name"] for s in spans]
    assert process["kind"].upper().endswith("CONSUMER")
    assert waited["end_unix_nano"] == process["start_unix_nano"]  # the queue ends at delivery
    assert waited["parent_span_id"] == process["parent_span_id"]
    _inside(store, process)
    return waited, process, call[0], store


def test_a_sync_predict_is_one_trace_from_the_client_to_the_model_and_back(
    stack: Served, receiver: TraceReceiver
) -> None:
    traceparent, trace_id, client_span = _client_traceparent()
    response = stack.http.post(
        f"/predict/{stack.model_a}", json={"data": "trace me"}, headers={"traceparent": traceparent}
    )
    assert response.status_code == 200, response.text
    assert response.headers["traceparent"].split("-")[1] == trace_id  # the same trace

    spans = receiver.wait_for_trace(trace_id, min_spans=7)["spans"]
    assert {s["trace_id"] for s in spans} == {trace_id}
    server = _one(spans, "POST /predict/{model}", "conveyor-gateway")
    assert server["parent_span_id"] == client_span
    assert response.headers["traceparent"].split("-")[2] == server["span_id"]
    attributes = server["attributes"]
    assert attributes["http.route"] == "/predict/{model}"
    assert attributes["http.response.status_code"] == 200
    assert attributes["conveyor.model"] == stack.model_a
    assert attributes["conveyor.model.version"] == "1"
    queue = sync_queue(stack.model_a, "1")
    publish = _one(spans, f"send {queue}", "conveyor-gateway")
    wait = _one(spans, "wait result", "conveyor-gateway")
    _inside(publish, server)
    _inside(wait, server)
    assert publish["end_unix_nano"] <= wait["start_unix_nano"]
    waited, process, call, store = _worker_spans(spans, stack.model_a, queue)
    assert call["name"] == f"process_request {stack.model_a}"
    _inside(waited, server)
    _inside(process, server, SLACK_NS)
    _inside(call, process)
    assert waited["start_unix_nano"] >= publish["start_unix_nano"]  # queued once published
    assert call["end_unix_nano"] <= store["start_unix_nano"]  # model, then store
    assert process["attributes"]["messaging.destination.name"] == queue
    assert process["attributes"]["conveyor.task.id"] == server["attributes"]["conveyor.task.id"]
    # The wait ends with the notification, which the store sends after the model's call.
    assert call["end_unix_nano"] <= store["start_unix_nano"] <= wait["end_unix_nano"]
    assert all(s["end_unix_nano"] >= s["start_unix_nano"] for s in spans)
    _keep("sync_trace.txt", _render(spans))


def test_an_async_task_is_traced_through_the_worker(stack: Served, receiver: TraceReceiver) -> None:
    traceparent, trace_id, _ = _client_traceparent()
    response = stack.http.post(
        f"/predict/{stack.model_a}",
        params={"mode": "async"},
        json={"data": "later"},
        headers={"traceparent": traceparent},
    )
    assert response.status_code == 202, response.text
    assert response.headers["traceparent"].split("-")[1] == trace_id
    task_id = response.json()["task_id"]
    wait_until(
        lambda: stack.http.get(f"/tasks/{task_id}").json()["status"] == "done", 20.0, what="done"
    )
    spans = receiver.wait_for_trace(trace_id, min_spans=6)["spans"]
    server = _one(spans, "POST /predict/{model}", "conveyor-gateway")
    queue = durable_queue(stack.model_a, "1")
    publish = _one(spans, f"send {queue}", "conveyor-gateway")
    _inside(publish, server)
    waited, process, call, _ = _worker_spans(spans, stack.model_a, queue)
    # The request answered 202 at once: the worker's spans continue its trace after it ended.
    assert waited["parent_span_id"] == server["span_id"]
    assert waited["start_unix_nano"] >= publish["start_unix_nano"]
    _inside(call, process)
    assert process["attributes"]["conveyor.task.id"] == task_id


def test_a_batch_span_links_every_request_it_served(stack: Served, receiver: TraceReceiver) -> None:
    clients = [_client_traceparent() for _ in range(8)]

    def call(parent: tuple[str, str, str]) -> httpx.Response:
        return stack.http.post(
            f"/predict/{stack.model_b}",
            json={"features": [5.1, 3.5, 1.4, 0.2]},
            headers={"traceparent": parent[0]},
        )

    with ThreadPoolExecutor(len(clients)) as pool:
        responses = list(pool.map(call, clients))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    queue = sync_queue(stack.model_b, "1")
    processes: dict[str, Span] = {}
    batch_spans: dict[str, Span] = {}
    traces: dict[str, list[Span]] = {}
    for _, trace_id, _ in clients:
        spans = traces[trace_id] = receiver.wait_for_trace(trace_id, min_spans=6)["spans"]
        server = _one(spans, "POST /predict/{model}", "conveyor-gateway")
        prefix = f"conveyor-worker-{stack.model_b}"
        waited = _one(spans, f"queue {queue}", prefix)
        process = _one(spans, f"process {queue}", prefix)
        store = _one(spans, "store result", prefix)
        assert waited["parent_span_id"] == process["parent_span_id"] == server["span_id"]
        assert waited["end_unix_nano"] == process["start_unix_nano"]
        _inside(store, process)
        processes[process["span_id"]] = process
        for span in spans:
            if span["name"] == f"process_batch {stack.model_b}":
                batch_spans[span["span_id"]] = span
    # Each request's process span is linked from the one batch span that served it; the batch
    # span lives in the trace of the batch's first request, under its process span.
    linked: dict[str, str] = {}
    for batch in batch_spans.values():
        assert batch["parent_span_id"] in processes
        _inside(batch, processes[batch["parent_span_id"]])
        for link in batch["links"]:
            assert link["span_id"] in processes, link
            assert link["span_id"] not in linked, "a request served by two batches"
            linked[link["span_id"]] = batch["span_id"]
        assert batch["attributes"]["messaging.batch.message_count"] == len(batch["links"])
    assert set(linked) == set(processes)
    widest = max(batch_spans.values(), key=lambda batch: len(batch["links"]))
    _keep("batch_trace.txt", _render(traces[widest["trace_id"]]))
    # A request the batch served links to it from its own trace's side too: its store follows
    # the batch's model call.
    for process_id, batch_id in linked.items():
        assert batch_spans[batch_id]["start_unix_nano"] >= processes[process_id]["start_unix_nano"]


def test_a_grpc_infer_continues_the_metadata_traceparent(
    stack: Served, receiver: TraceReceiver
) -> None:
    traceparent, trace_id, client_span = _client_traceparent()
    text = service_pb2.ModelInferRequest.InferInputTensor(name="data", datatype="BYTES", shape=[1])
    text.contents.bytes_contents.append(b"over grpc")
    request = service_pb2.ModelInferRequest(model_name=stack.model_a, inputs=[text])
    with grpc.insecure_channel(stack.grpc_target) as channel:  # type: ignore[attr-defined]
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        _, call = stub.ModelInfer.with_call(
            request, metadata=(("traceparent", traceparent),), timeout=30
        )
    answered = dict(call.initial_metadata())["traceparent"]
    assert answered.split("-")[1] == trace_id
    spans = receiver.wait_for_trace(trace_id, min_spans=7)["spans"]
    server = _one(spans, "inference.GRPCInferenceService/ModelInfer", "conveyor-gateway")
    assert server["parent_span_id"] == client_span
    assert server["span_id"] == answered.split("-")[2]
    assert server["attributes"]["rpc.system"] == "grpc"
    assert server["attributes"]["conveyor.model"] == stack.model_a
    queue = sync_queue(stack.model_a, "1")
    publish = _one(spans, f"send {queue}", "conveyor-gateway")
    _inside(publish, server)
    waited, process, call_span, _ = _worker_spans(spans, stack.model_a, queue)
    _inside(waited, server)
    _inside(process, server, SLACK_NS)
    _inside(call_span, process)


def test_the_registry_traces_its_requests(stack: Served, receiver: TraceReceiver) -> None:
    traceparent, trace_id, client_span = _client_traceparent()
    response = httpx.get(
        f"{stack.registry_url}/models/{stack.model_a}",
        headers={"traceparent": traceparent},
        timeout=10.0,
    )
    assert response.status_code == 200
    assert response.headers["traceparent"].split("-")[1] == trace_id
    (span,) = receiver.wait_for_trace(trace_id, min_spans=1)["spans"]
    assert (span["service"], span["name"]) == ("conveyor-registry", "GET /models/{name}")
    assert span["parent_span_id"] == client_span
    assert span["attributes"]["http.response.status_code"] == 200


class _Receiver(BaseHTTPRequestHandler):
    """A callback receiver: each POST's headers go to the server's ``received`` queue."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.received.put(dict(self.headers))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_callback_attempt_is_a_client_span_whose_traceparent_goes_along(
    stack: Served, receiver: TraceReceiver
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = queue.Queue()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        response = stack.http.post(
            f"/predict/{stack.model_a}",
            params={"mode": "async", "callback_url": url},
            json={"data": "call me back"},
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        headers = server.received.get(timeout=20.0)  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
    traceparent = {k.lower(): v for k, v in headers.items()}["traceparent"]
    _, trace_id, span_id, _ = traceparent.split("-")
    (span,) = receiver.wait_for_trace(trace_id, min_spans=1)["spans"]
    assert (span["service"], span["name"], span["span_id"]) == (
        "conveyor-gateway",
        "POST callback",
        span_id,
    )
    assert span["kind"].upper().endswith("CLIENT")
    assert span["attributes"]["conveyor.task.id"] == task_id
    assert span["attributes"]["url.path"] == "/hook"
    assert span["status"]["code"] != "ERROR"


def _lines(service: Service) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in service.log().splitlines() if raw.startswith("{")]


def test_log_lines_carry_the_request_id_and_the_trace_id(
    stack: Served, receiver: TraceReceiver
) -> None:
    traceparent, trace_id, _ = _client_traceparent()
    request_id = f"logged-{trace_id[:8]}"
    response = stack.http.post(
        f"/predict/{stack.model_a}",
        json={"data": "log me"},
        headers={"traceparent": traceparent, "X-Request-ID": request_id},
    )
    assert response.status_code == 200, response.text
    worker = stack.workers[0]

    def joined(service: Service) -> list[dict[str, Any]]:
        return [
            line
            for line in _lines(service)
            if line.get("request_id") == request_id and line.get("trace_id") == trace_id
        ]

    gateway_lines = wait_until(lambda: joined(stack.gateway), 10.0, what="gateway line")
    worker_lines = wait_until(lambda: joined(worker), 10.0, what="worker line")
    spans = receiver.wait_for_trace(trace_id, min_spans=7)["spans"]
    ids = {s["span_id"] for s in spans}
    assert all(line["span_id"] in ids for line in gateway_lines + worker_lines)


def test_metrics_carry_trace_ids_as_exemplars(stack: Served, receiver: TraceReceiver) -> None:
    traceparent, trace_id, _ = _client_traceparent()
    response = stack.http.post(
        f"/predict/{stack.model_a}", json={"data": "count me"}, headers={"traceparent": traceparent}
    )
    assert response.status_code == 200
    plain = stack.http.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain")
    assert "# {" not in plain.text  # Prometheus' text format has no exemplars
    scraped = stack.http.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    series = f'model="{stack.model_a}"'
    exemplars = [
        line
        for line in scraped.text.splitlines()
        if line.startswith("conveyor_request_duration_seconds_bucket") and series in line
    ]
    # The bucket of this request's latency names its trace (the last traced one it counted).
    assert any(f'# {{trace_id="{trace_id}"}}' in line for line in exemplars), exemplars
    _keep("exemplars.txt", "\n".join(line for line in exemplars if "# {" in line))
    assert scraped.text.rstrip().endswith("# EOF")
