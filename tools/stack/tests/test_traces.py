"""TraceReceiver: traceview as a real process, fed by the OpenTelemetry SDK's OTLP exporter."""

import os

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tools.stack.traces import TraceReceiver, trace_receiver

__all__ = ["trace_receiver"]  # the fixture, imported the way any test package may


def export_one_trace(endpoint: str, service: str) -> str:
    """Two nested spans through the standard variable's endpoint; the trace id."""
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    try:
        exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_ENDPOINT, adds /v1/traces
    finally:
        del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("test_traces")
    with tracer.start_as_current_span("outer") as outer, tracer.start_as_current_span("inner"):
        pass
    provider.shutdown()
    return format(outer.get_span_context().trace_id, "032x")


def test_receives_and_reads_back(trace_receiver: TraceReceiver) -> None:
    trace_receiver.clear()
    trace_id = export_one_trace(trace_receiver.endpoint, "gateway")
    found = trace_receiver.wait_for_trace(trace_id, min_spans=2, timeout=20)
    outer, inner = found["spans"]
    assert (outer["name"], inner["name"]) == ("outer", "inner")
    assert inner["parent_span_id"] == outer["span_id"]
    assert trace_receiver.services() == ["gateway"]
    assert [t["trace_id"] for t in trace_receiver.traces("gateway")] == [trace_id]
    assert trace_receiver.traces("registry") == []
    assert trace_receiver.trace("0" * 31 + "1") is None
    trace_receiver.clear()
    assert trace_receiver.traces() == []


def test_wait_for_trace_times_out_naming_what_it_saw(trace_receiver: TraceReceiver) -> None:
    trace_id = export_one_trace(trace_receiver.endpoint, "worker")
    with pytest.raises(TimeoutError, match=r"spans so far: \['worker:outer', 'worker:inner'\]"):
        trace_receiver.wait_for_trace(trace_id, min_spans=3, timeout=0.5)


def test_a_receiver_of_its_own_with_grpc_stops() -> None:
    with TraceReceiver(grpc=True, max_spans=10) as receiver:
        assert receiver.grpc_endpoint is not None
        assert httpx.get(f"{receiver.endpoint}/healthz").json() == {"status": "ok"}
        assert receiver.service.alive()
    assert not receiver.service.alive()
    assert "OTLP/gRPC on 127.0.0.1" in receiver.log()
