"""What the OpenAPI document says of the ``/v2`` operations that read their body themselves.

``infer`` reads the raw body (JSON, or JSON followed by binary tensors, ``api.oip.binary``), so
FastAPI cannot see it in the signature: ``INFER_OPENAPI`` declares it, as required, in both
forms. The JSON is the protocol's ``$inference_request`` (``api.oip.infer.InferRequest``); which
inputs a model takes is in its metadata (``GET /v2/models/{model}``), as the protocol has it.
"""

from typing import Any, Final

from api.oip.binary import BINARY_CONTENT_TYPE, HEADER_LENGTH
from api.oip.infer import InferRequest

__all__ = ["GENERATE_OPENAPI", "GENERATE_STREAM_OPENAPI", "INFER_OPENAPI"]


def _inlined(schema: Any, definitions: dict[str, Any]) -> Any:
    """``schema`` with every ``$ref`` into ``definitions`` replaced by the definition (the
    protocol's request has no recursive type)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inlined(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {key: _inlined(value, definitions) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inlined(item, definitions) for item in schema]
    return schema


def _infer_openapi() -> dict[str, Any]:
    schema = InferRequest.model_json_schema()
    schema = _inlined(schema, schema.pop("$defs", {}))
    return {
        "requestBody": {
            "required": True,
            "description": "The inference request: the protocol's JSON object, or (binary "
            f"tensor data extension) that JSON followed by the tensors' bytes, {HEADER_LENGTH} "
            "giving the JSON's length.",
            "content": {
                "application/json": {"schema": schema},
                BINARY_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "parameters": [
            {
                "name": HEADER_LENGTH,
                "in": "header",
                "required": False,
                "schema": {"type": "integer", "minimum": 1},
                "description": "The byte length of the JSON part of a binary body.",
            }
        ],
    }


INFER_OPENAPI: Final = _infer_openapi()
"""``openapi_extra`` of the infer routes."""


def _generate_openapi(stream: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "type": "object",
        "required": ["model_name", "model_version"],
        "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"}},
        "additionalProperties": True,
        "description": "The model and version, then the response message's fields (the "
        "protobuf JSON mapping, as /predict answers).",
    }
    if stream:
        content = {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "data": {"type": "string", "contentMediaType": "application/json"}
                    },
                    "description": "One Server-Sent Event, as OpenAPI 3.1 describes "
                    "text/event-stream: 'data: <object>' per piece (no event or id), each "
                    "object the model and version and the piece's fields; an error after the "
                    'first piece is a last event \'data: {"error": "<message>"}\'.',
                }
            }
        }
    else:
        content = {"application/json": {"schema": answer}}
    return {
        "requestBody": {
            "required": True,
            "description": "The model's request fields (the protobuf JSON mapping, as /predict "
            "takes them; see GET /models/{model}), and optionally 'parameters', the request "
            "parameters of infer (timeout in microseconds, priority with 1 the highest).",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"parameters": {"type": "object"}},
                        "additionalProperties": True,
                    }
                }
            },
        },
        "responses": {"200": {"description": "The model's answer", "content": content}},
    }


GENERATE_OPENAPI: Final = _generate_openapi(stream=False)
"""``openapi_extra`` of the generate routes (the generate extension)."""

GENERATE_STREAM_OPENAPI: Final = _generate_openapi(stream=True)
"""``openapi_extra`` of the generate_stream routes."""
