"""The generate extension, as Triton serves it: a model's request and response as plain JSON
objects, answered at once (``/generate``) or in pieces (``/generate_stream``, Server-Sent
Events).

The request is a JSON object whose keys name fields of the model's request message (its
inputs, in the protobuf JSON mapping, as ``/predict`` takes them), plus ``parameters``: the
request parameters of ``infer`` (``timeout`` in microseconds, ``priority`` with 1 the highest,
``api.oip.parameters``). A key that names no field is refused (400), never passed on in silence.

The response is ``{"model_name", "model_version", <the response message's fields>}``, e.g.
``{"model_name": "model_c", "model_version": "1", "text": "..."}``. On ``/generate_stream``
each piece the model yields is one event ``data: <that object, the piece's fields>`` (no
``event:`` nor ``id:`` line); the stream ends after the last piece. An error once the stream
has begun is one last event ``data: {"error": "<message>"}`` (the status is already 200, as
on Triton). A worker that dies mid-stream is hidden (``api.pieces.seamless``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from google.protobuf import json_format

from api.codec import load_json_object, parse_request, render_response
from api.oip.exceptions import InvalidInferRequest
from api.oip.execute import response_message
from api.oip.infer import InferOptions, infer_options
from api.oip.ports import ModelView
from api.pieces import StreamEndView, close
from conveyor.streams import Chunk
from proto import task_pb2

__all__ = [
    "PARAMETERS",
    "GenerateRequest",
    "events",
    "generate_response",
    "parse_generate",
    "result_fields",
]

PARAMETERS: Final = "parameters"
"""The key of a generate request that holds its request parameters, not an input."""


@dataclass(frozen=True)
class GenerateRequest:
    """A generate request read against a model: its serialized request message and options."""

    payload: bytes
    options: InferOptions


def parse_generate(
    body: bytes,
    info: ModelView,
    *,
    request_id: str,
    default_timeout: float,
    max_timeout: float,
    max_depth: int = 32,
) -> GenerateRequest:
    """Read a generate request for ``info``; raise ``InvalidInferRequest`` (or the codec's
    ``InvalidRequest``) for a body that is not a JSON object of the model's inputs."""
    document = load_json_object(body, info.name, max_depth)
    parameters = document.pop(PARAMETERS, {})
    if not isinstance(parameters, dict):
        raise InvalidInferRequest(
            f"{PARAMETERS} must be an object of name/value pairs", field=PARAMETERS
        )
    fields = info.request_class.DESCRIPTOR.fields
    names = {name for field in fields for name in (field.name, field.json_name)}
    for key in document:
        if key not in names:
            inputs = ", ".join(field.name for field in fields)
            raise InvalidInferRequest(
                f"unknown input {key!r}; model {info.name!r} takes: {inputs} (and {PARAMETERS})",
                field=key,
            )
    payload = parse_request(orjson.dumps(document), info.request_class, info.name, max_depth)
    options = infer_options(parameters, request_id, default_timeout, max_timeout)
    return GenerateRequest(payload, options)


def generate_response(fields: dict[str, Any], info: ModelView) -> dict[str, Any]:
    """The generate response object: the model and version, then the response's fields."""
    return {"model_name": info.name, "model_version": info.version, **fields}


def result_fields(result: task_pb2.TaskResult, info: ModelView) -> dict[str, Any]:
    """The fields of a finished task's response; raise ``TaskFailed`` / ``InvalidResult``."""
    message = response_message(result, info)
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _event(document: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(document) + b"\n\n"


async def events(
    pieces: AsyncIterator[Chunk | StreamEndView],
    info: ModelView,
    error_body: Callable[[Exception], dict[str, Any]],
) -> AsyncGenerator[bytes, None]:
    """The ``/generate_stream`` body: an event per piece, or the error event at the first
    failure (``error_body(exc)`` gives its ``{"error": ...}`` object). Closing it closes
    ``pieces``."""
    try:
        async for item in pieces:
            if isinstance(item, Chunk):
                fields = render_response(item.payload, info.response_class, info.name)
                yield _event(generate_response(fields, info))
            else:
                result_fields(item.result, info)  # raises for a failed task
    except Exception as exc:
        yield _event(error_body(exc))
    finally:
        await close(pieces)
