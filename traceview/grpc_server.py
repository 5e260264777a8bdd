"""OTLP/gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` over the store.

A ``grpc.aio`` server in the HTTP server's event loop (started by the app's lifespan), so both
front ends share one store without a lock.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from traceview.receiver import receive
from traceview.store import TraceStore

__all__ = ["TraceService", "start_grpc"]

GRACE_SECONDS = 5.0


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """The OTLP ``TraceService``: every export goes to ``store``."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store

    async def Export(
        self, request: ExportTraceServiceRequest, context: Any
    ) -> ExportTraceServiceResponse:
        """Store the export's spans; a partial success says how many were rejected."""
        accepted = receive(self.store, request)
        response = ExportTraceServiceResponse()
        if accepted.rejected:
            response.partial_success.rejected_spans = accepted.rejected
            response.partial_success.error_message = accepted.message
        return response


async def start_grpc(store: TraceStore, host: str, port: int) -> tuple[Any, int]:
    """A started ``grpc.aio`` server on ``host:port`` (0: any free port) and its port;
    ``RuntimeError`` when the port cannot be bound."""
    server = grpc.aio.server()
    add_servicer = trace_service_pb2_grpc.add_TraceServiceServicer_to_server
    add_servicer(TraceService(store), server)  # type: ignore[no-untyped-call]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as e:
        raise RuntimeError(f"OTLP/gRPC cannot listen on {address}: {e}") from e
    if not bound:
        raise RuntimeError(f"OTLP/gRPC cannot listen on {address}")
    await server.start()
    return server, bound
