"""OTLP exports built by hand, for traceview's tests."""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

SECOND = 1_000_000_000
T0 = 1_760_000_000 * SECOND
"""A start time (2025) the spans count from."""


def new_trace_id() -> bytes:
    """A random 16-byte trace id."""
    return os.urandom(16)


def new_span_id() -> bytes:
    """A random 8-byte span id."""
    return os.urandom(8)


def span(
    trace_id: bytes,
    name: str,
    *,
    start_ms: float = 0,
    duration_ms: float = 1,
    span_id: bytes | None = None,
    parent: bytes = b"",
) -> Span:
    """A span ``start_ms`` after ``T0`` lasting ``duration_ms``."""
    start = T0 + int(start_ms * 1_000_000)
    return Span(
        trace_id=trace_id,
        span_id=span_id or new_span_id(),
        parent_span_id=parent,
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(duration_ms * 1_000_000),
    )


def export(service: str, spans: Sequence[Span]) -> ExportTraceServiceRequest:
    """One resource (``service.name`` = ``service``) with ``spans`` in one scope."""
    request = ExportTraceServiceRequest()
    resource_spans: ResourceSpans = request.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    resource_spans.scope_spans.add().spans.extend(spans)
    return request
