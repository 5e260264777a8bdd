"""OTLP/HTTP bodies: decoding an ``ExportTraceServiceRequest``, encoding its response.

Two encodings (OTLP 1.x, "OTLP/HTTP"): ``application/x-protobuf``, the binary message, and
``application/json``, the protobuf JSON mapping with OTLP's changes: trace and span ids are
hex strings (not base64), enums may be integers, 64-bit integers may be strings, unknown
fields are ignored. Either may come gzip-compressed (``Content-Encoding: gzip``). The response
uses the request's encoding.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, Final, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from traceview.exceptions import InvalidExport, UnsupportedEncoding

__all__ = [
    "JSON",
    "MAX_BODY_BYTES",
    "PROTOBUF",
    "Encoding",
    "decode_request",
    "encode_response",
    "encoding_of",
]

Encoding = Literal["application/x-protobuf", "application/json"]
PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"

MAX_BODY_BYTES = 64 * 1024 * 1024
"""The largest body accepted once decompressed (a gzip bomb stops here)."""

_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def encoding_of(content_type: str | None) -> Encoding:
    """The OTLP encoding a ``Content-Type`` names; ``UnsupportedEncoding`` for another."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == PROTOBUF:
        return PROTOBUF
    if media == JSON:
        return JSON
    raise UnsupportedEncoding(
        f"Content-Type {media or '(none)'!r} is not OTLP/HTTP: use {PROTOBUF} or {JSON}"
    )


def _inflate(body: bytes, content_encoding: str | None) -> bytes:
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding != "gzip":
        raise UnsupportedEncoding(f"Content-Encoding {coding!r} is not supported: use gzip")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error as e:
        raise InvalidExport(f"the body is not valid gzip: {e}") from e
    if len(data) > MAX_BODY_BYTES:
        raise InvalidExport(f"the decompressed body is over {MAX_BODY_BYTES} bytes")
    if not inflater.eof:
        raise InvalidExport("the gzip body is truncated")
    return data


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON's hex ids as the base64 the protobuf JSON mapping reads for ``bytes``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError as e:
                    raise InvalidExport(f"{key} {value!r} is not hex") from e
            out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def decode_request(
    body: bytes, encoding: Encoding, content_encoding: str | None = None
) -> ExportTraceServiceRequest:
    """The export in ``body``; ``InvalidExport`` when it does not decode."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidExport(f"the body is over {MAX_BODY_BYTES} bytes")
    data = _inflate(body, content_encoding)
    request = ExportTraceServiceRequest()
    if encoding == PROTOBUF:
        try:
            request.ParseFromString(data)
        except DecodeError as e:
            raise InvalidExport(f"the body is not an ExportTraceServiceRequest: {e}") from e
        return request
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidExport(f"the body is not JSON: {e}") from e
    if not isinstance(document, dict):
        raise InvalidExport("the body is not a JSON object (an ExportTraceServiceRequest)")
    try:
        json_format.ParseDict(_hex_ids_to_base64(document), request, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise InvalidExport(f"the body is not an ExportTraceServiceRequest: {e}") from e
    return request


def encode_response(rejected: int, message: str, encoding: Encoding) -> bytes:
    """The ``ExportTraceServiceResponse`` in ``encoding``: empty on full success, else its
    ``partial_success`` with the rejected spans and why."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if encoding == PROTOBUF:
        return response.SerializeToString()
    return json.dumps(json_format.MessageToDict(response)).encode()
