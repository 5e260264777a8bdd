"""traceview end to end in one process: OTLP/HTTP (protobuf from the OpenTelemetry SDK's own
exporter, OTLP/JSON by hand, gzip), OTLP/gRPC, the JSON API, and the errors.

The SDK and gRPC tests serve the app with uvicorn on a free port (its lifespan starts the
gRPC server); the others call the app through httpx's ASGI transport.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
import uvicorn
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tools.stack.ports import free_port
from traceview.config import Settings
from traceview.main import create_app
from traceview.tests.otlp_data import T0, export, new_span_id, new_trace_id, span

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(traceview_grpc_port=0, traceview_max_spans=1000))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://traceview") as c:
        yield c


class Served:
    """The app under uvicorn in a thread: ``url`` (OTLP/HTTP and the API), ``grpc_port``."""

    def __init__(self) -> None:
        self.port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = Settings(traceview_port=self.port, traceview_grpc_port=self.grpc_port)
        config = uvicorn.Config(create_app(settings), port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    running = Served()
    yield running
    running.stop()


def test_spans_from_the_sdk_exporter_read_back(served: Served) -> None:
    for compression in (Compression.NoCompression, Compression.Gzip):
        exporter = OTLPSpanExporter(endpoint=f"{served.url}/v1/traces", compression=compression)
        provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("traceview-test")
        with tracer.start_as_current_span("POST /predict", kind=SpanKind.SERVER) as root:
            root.set_attribute("http.response.status_code", 200)
            with tracer.start_as_current_span("publish", kind=SpanKind.PRODUCER) as child:
                child.set_attribute("messaging.destination.name", "model_a")
                child.set_attribute("conveyor.sizes", [1, 2])
                child.set_attribute("conveyor.ratio", 0.5)
                child.set_attribute("conveyor.batched", True)
                child.add_event("published", {"bytes": 12})
                child.set_status(Status(StatusCode.ERROR, "broker said no"))
            other = tracer.start_span(
                "batch", context=Context(), links=[Link(root.get_span_context())]
            )
            other.end()
        provider.shutdown()
        trace_id = format(root.get_span_context().trace_id, "032x")
        answer = httpx.get(f"{served.url}/api/traces/{trace_id}").json()
        assert answer["trace_id"] == trace_id
        by_name = {s["name"]: s for s in answer["spans"]}
        assert [s["name"] for s in answer["spans"]] == ["POST /predict", "publish"]
        root_json, publish = by_name["POST /predict"], by_name["publish"]
        assert root_json["parent_span_id"] == "" and root_json["kind"] == "SERVER"
        assert root_json["service"] == "gateway"
        assert root_json["resource"]["service.name"] == "gateway"
        assert root_json["attributes"] == {"http.response.status_code": 200}
        assert publish["parent_span_id"] == root_json["span_id"]
        assert publish["kind"] == "PRODUCER"
        assert publish["attributes"] == {
            "messaging.destination.name": "model_a",
            "conveyor.sizes": [1, 2],
            "conveyor.ratio": 0.5,
            "conveyor.batched": True,
        }
        assert publish["status"] == {"code": "ERROR", "message": "broker said no"}
        assert [(e["name"], e["attributes"]) for e in publish["events"]] == [
            ("published", {"bytes": 12})
        ]
        assert root_json["start_unix_nano"] <= publish["start_unix_nano"]
        assert publish["end_unix_nano"] <= root_json["end_unix_nano"]
        assert publish["duration_ms"] == pytest.approx(
            (publish["end_unix_nano"] - publish["start_unix_nano"]) / 1e6
        )
        # The linked span is a trace of its own, its link pointing at the root.
        batch_trace = format(other.get_span_context().trace_id, "032x")
        [batch] = httpx.get(f"{served.url}/api/traces/{batch_trace}").json()["spans"]
        [link] = batch["links"]
        assert link == {"trace_id": trace_id, "span_id": root_json["span_id"], "attributes": {}}
        summaries = httpx.get(f"{served.url}/api/traces", params={"limit": 100}).json()
        mine = [t for t in summaries["traces"] if t["trace_id"] == trace_id]
        assert mine and mine[0]["error"] and mine[0]["span_count"] == 2
        assert mine[0]["root_name"] == "POST /predict"


def test_otlp_grpc_export(served: Served) -> None:
    trace_id = new_trace_id()
    request = export("worker", [span(trace_id, "execute"), span(b"\0" * 16, "bad id")])
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        response: ExportTraceServiceResponse = stub.Export(request, timeout=10)
    assert response.partial_success.rejected_spans == 1
    assert "invalid trace or span id" in response.partial_success.error_message
    [stored] = httpx.get(f"{served.url}/api/traces/{trace_id.hex()}").json()["spans"]
    assert stored["name"] == "execute" and stored["service"] == "worker"


def otlp_json(trace_id: str, root_id: str, child_id: str) -> dict[str, Any]:
    """An export as OTLP/JSON writes it: hex ids, camelCase, int64 as strings, enum ints."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "registry"}},
                        {"key": "host.cores", "value": {"intValue": "2"}},
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "by-hand"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": root_id,
                                "parentSpanId": "",
                                "name": "GET /models",
                                "kind": 2,
                                "startTimeUnixNano": str(T0),
                                "endTimeUnixNano": str(T0 + 5_000_000),
                                "attributes": [
                                    {"key": "n", "value": {"intValue": "9007199254740993"}},
                                    {"key": "f", "value": {"doubleValue": 1.5}},
                                    {
                                        "key": "list",
                                        "value": {
                                            "arrayValue": {
                                                "values": [
                                                    {"stringValue": "a"},
                                                    {"boolValue": False},
                                                ]
                                            }
                                        },
                                    },
                                ],
                                "status": {"code": 1},
                                "someFutureField": {"ignored": True},
                            },
                            {
                                "traceId": trace_id,
                                "spanId": child_id,
                                "parentSpanId": root_id,
                                "name": "redis GET",
                                "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": str(T0 + 1_000_000),
                                "endTimeUnixNano": str(T0 + 2_000_000),
                                "events": [{"name": "retry", "timeUnixNano": str(T0 + 1_500_000)}],
                                "links": [{"traceId": trace_id, "spanId": root_id}],
                            },
                        ],
                    }
                ],
            }
        ]
    }


@pytest.mark.asyncio
@pytest.mark.parametrize("gzipped", [False, True])
async def test_otlp_json(client: httpx.AsyncClient, gzipped: bool) -> None:
    trace_id, root_id, child_id = new_trace_id().hex(), new_span_id().hex(), new_span_id().hex()
    body = json.dumps(otlp_json(trace_id.upper(), root_id, child_id)).encode()
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    response = await client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    answer = (await client.get(f"/api/traces/{trace_id}")).json()
    root, child = answer["spans"]
    assert root["trace_id"] == trace_id and root["span_id"] == root_id
    assert root["kind"] == "SERVER" and root["status"] == {"code": "OK", "message": ""}
    assert root["attributes"] == {"n": 9007199254740993, "f": 1.5, "list": ["a", False]}
    assert root["resource"] == {"service.name": "registry", "host.cores": 2}
    assert root["start_unix_nano"] == T0 and root["duration_ms"] == 5.0
    assert child["kind"] == "CLIENT" and child["parent_span_id"] == root_id
    assert child["events"] == [{"name": "retry", "time_unix_nano": T0 + 1_500_000,
                                "attributes": {}}]  # fmt: skip
    assert child["links"] == [{"trace_id": trace_id, "span_id": root_id, "attributes": {}}]
    assert (await client.get("/api/services")).json() == {"services": ["registry"]}


@pytest.mark.asyncio
async def test_protobuf_gzip_and_partial_success(client: httpx.AsyncClient) -> None:
    trace_id = new_trace_id()
    request = export("worker", [span(trace_id, "ok"), span(trace_id[:8], "short id")])
    response = await client.post(
        "/v1/traces",
        content=gzip.compress(request.SerializeToString()),
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    listed = (await client.get("/api/traces", params={"service": "worker"})).json()["traces"]
    assert [t["trace_id"] for t in listed] == [trace_id.hex()]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"\xff\xff\xff", PROTOBUF, 400, "invalid_otlp"),
        (b"{not json", {"Content-Type": "application/json"}, 400, "invalid_otlp"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400, "invalid_otlp"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            {"Content-Type": "application/json"},
            400,
            "invalid_otlp",
        ),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5, "kind": "NOPE"}]}]}]}',
            {"Content-Type": "application/json"},
            400,
            "invalid_otlp",
        ),
        (b"not gzip", {**PROTOBUF, "Content-Encoding": "gzip"}, 400, "invalid_otlp"),
        (
            gzip.compress(b"x" * 100)[:20],
            {**PROTOBUF, "Content-Encoding": "gzip"},
            400,
            "invalid_otlp",
        ),
        (b"", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b"", {**PROTOBUF, "Content-Encoding": "br"}, 415, "unsupported_media_type"),
    ],
)
async def test_bad_exports_are_json_errors(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    response = await client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


@pytest.mark.asyncio
async def test_api_errors_and_clear(client: httpx.AsyncClient) -> None:
    unknown = await client.get(f"/api/traces/{'ab' * 16}")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "trace_not_found"
    malformed = await client.get("/api/traces/xyz")
    assert malformed.status_code == 422 and malformed.json()["error"]["field"] == "trace_id"
    assert (await client.get("/api/traces", params={"limit": 0})).status_code == 422
    trace_id = new_trace_id()
    request = export("gateway", [span(trace_id, "a")])
    await client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert (await client.delete("/api/traces")).json() == {"deleted": 1}
    assert (await client.get(f"/api/traces/{trace_id.hex()}")).status_code == 404
    assert (await client.get("/api/traces")).json() == {"traces": []}
    assert (await client.get("/healthz")).json() == {"status": "ok"}
