"""OTLP spans as traceview holds and serves them: ids in lowercase hex, values in plain JSON.

``spans_of(request)`` turns an ``ExportTraceServiceRequest`` into ``Span`` records, each with
its service (the resource's ``service.name``) and its JSON form (the shape of
``GET /api/traces/{trace_id}``). A span whose trace id is not 16 bytes or whose span id is not
8 bytes is invalid in OTLP; it is counted as rejected, not stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

__all__ = [
    "KINDS",
    "STATUS_CODES",
    "TRACE_ID_PATTERN",
    "UNKNOWN_SERVICE",
    "Span",
    "attributes_of",
    "spans_of",
    "value_of",
]

TRACE_ID_PATTERN = "^[0-9a-fA-F]{32}$"
"""A trace id in a path: 32 hex digits (any case; answers use lowercase)."""

UNKNOWN_SERVICE = "unknown_service"
"""The service of a resource without ``service.name`` (the SDKs' own default prefix)."""

KINDS = {
    OtlpSpan.SPAN_KIND_UNSPECIFIED: "INTERNAL",  # OTLP: unspecified is treated as internal
    OtlpSpan.SPAN_KIND_INTERNAL: "INTERNAL",
    OtlpSpan.SPAN_KIND_SERVER: "SERVER",
    OtlpSpan.SPAN_KIND_CLIENT: "CLIENT",
    OtlpSpan.SPAN_KIND_PRODUCER: "PRODUCER",
    OtlpSpan.SPAN_KIND_CONSUMER: "CONSUMER",
}
STATUS_CODES = {
    Status.STATUS_CODE_UNSET: "UNSET",
    Status.STATUS_CODE_OK: "OK",
    Status.STATUS_CODE_ERROR: "ERROR",
}


@dataclass(frozen=True, slots=True)
class Span:
    """One received span: what the store indexes by, and its JSON form."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service: str
    start_unix_nano: int
    end_unix_nano: int
    error: bool
    json: dict[str, Any]

    @property
    def duration_ms(self) -> float:
        """End minus start in milliseconds (0 for a span that ends before it starts)."""
        return max(0, self.end_unix_nano - self.start_unix_nano) / 1e6


def value_of(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as JSON: string, int, float, bool, list, object, or None when
    empty; bytes become lowercase hex."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind is None:
        return None
    return getattr(value, kind)


def attributes_of(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key/value pairs as one JSON object (a repeated key: the last one wins)."""
    return {pair.key: value_of(pair.value) for pair in pairs}


def _span(span: OtlpSpan, service: str, resource: dict[str, Any]) -> Span:
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    parent_span_id = span.parent_span_id.hex()
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    status = STATUS_CODES.get(span.status.code, "UNSET")
    record = {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_span_id,
        "name": span.name,
        "kind": KINDS.get(span.kind, "INTERNAL"),
        "service": service,
        "start_unix_nano": start,
        "end_unix_nano": end,
        "duration_ms": max(0, end - start) / 1e6,
        "attributes": attributes_of(span.attributes),
        "resource": resource,
        "status": {"code": status, "message": span.status.message},
        "events": [
            {
                "name": event.name,
                "time_unix_nano": event.time_unix_nano,
                "attributes": attributes_of(event.attributes),
            }
            for event in span.events
        ],
        "links": [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "attributes": attributes_of(link.attributes),
            }
            for link in span.links
        ],
    }
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=span.name,
        service=service,
        start_unix_nano=start,
        end_unix_nano=end,
        error=status == "ERROR",
        json=record,
    )


def spans_of(request: ExportTraceServiceRequest) -> tuple[list[Span], int]:
    """The valid spans of an export, and how many were rejected (bad ids)."""
    spans: list[Span] = []
    rejected = 0
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        service = resource.get("service.name")
        service = service if isinstance(service, str) and service else UNKNOWN_SERVICE
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8 or not any(span.trace_id):
                    rejected += 1
                    continue
                spans.append(_span(span, service, resource))
    return spans, rejected
