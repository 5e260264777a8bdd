"""The one export path both front ends call (OTLP/HTTP in ``routes/otlp.py``, OTLP/gRPC in
``grpc_server.py``): decode the spans, store them, say what was rejected."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from traceview.spans import spans_of
from traceview.store import TraceStore

__all__ = ["Accepted", "receive"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Accepted:
    """What an export did: spans stored, spans rejected and why (empty when none were)."""

    stored: int
    rejected: int
    message: str


def receive(store: TraceStore, request: ExportTraceServiceRequest) -> Accepted:
    """Store the spans of ``request``; spans with invalid ids and spans past a trace's bound
    are rejected, the rest stored."""
    spans, invalid = spans_of(request)
    over = store.add(spans)
    reasons = []
    if invalid:
        reasons.append(f"{invalid} spans with an invalid trace or span id")
    if over:
        reasons.append(f"{over} spans past TRACEVIEW_MAX_SPANS={store.max_spans} in one trace")
    accepted = Accepted(len(spans) - over, invalid + over, "; ".join(reasons))
    if accepted.rejected:
        logger.warning("export: %d spans rejected: %s", accepted.rejected, accepted.message)
    logger.debug("export: %d spans stored", accepted.stored)
    return accepted
