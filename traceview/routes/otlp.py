"""``POST /v1/traces``: OTLP/HTTP trace export, in protobuf or JSON, optionally gzipped."""

from fastapi import APIRouter, Request, Response

from conveyor.web import ErrorBody
from traceview.deps import Store
from traceview.otlp import decode_request, encode_response, encoding_of
from traceview.receiver import receive

router = APIRouter(tags=["otlp"])


@router.post(
    "/v1/traces",
    response_class=Response,
    responses={
        200: {
            "description": "An ExportTraceServiceResponse in the request's encoding",
            "content": {"application/x-protobuf": {}, "application/json": {}},
        },
        400: {"model": ErrorBody, "description": "The body does not decode"},
        415: {"model": ErrorBody, "description": "Not OTLP's content type or encoding"},
    },
)
async def export_traces(request: Request, store: Store) -> Response:
    """Receive an ``ExportTraceServiceRequest`` (``application/x-protobuf`` or
    ``application/json``, ``Content-Encoding: gzip`` allowed) and store its spans."""
    encoding = encoding_of(request.headers.get("content-type"))
    export = decode_request(await request.body(), encoding, request.headers.get("content-encoding"))
    accepted = receive(store, export)
    return Response(
        encode_response(accepted.rejected, accepted.message, encoding), media_type=encoding
    )
