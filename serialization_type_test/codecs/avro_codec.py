"""Avro via fastavro: schema-based binary, schemaless framing (schema agreed out of band)."""

from __future__ import annotations

import io
from typing import Any, Final

import fastavro

from serialization_type_test import payloads
from serialization_type_test.codecs.base import UnknownKindError

__all__ = ["SCHEMAS", "AvroCodec"]

_NS: Final = "conveyor.serialization_type_test"
_FLOATS: Final = {"type": "array", "items": "float"}

SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    payloads.TEXT: {
        "type": "record",
        "name": "Text",
        "namespace": _NS,
        "fields": [{"name": "data", "type": "string"}],
    },
    payloads.FEATURES: {
        "type": "record",
        "name": "Features",
        "namespace": _NS,
        "fields": [{"name": "features", "type": _FLOATS}],
    },
    payloads.TENSOR: {
        "type": "record",
        "name": "Tensor",
        "namespace": _NS,
        "fields": [
            {"name": "shape", "type": {"type": "array", "items": "long"}},
            {"name": "values", "type": _FLOATS},
        ],
    },
    payloads.BATCH: {
        "type": "record",
        "name": "Batch",
        "namespace": _NS,
        "fields": [
            {
                "name": "requests",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "BatchItem",
                        "fields": [
                            {"name": "task_id", "type": "string"},
                            {"name": "model", "type": "string"},
                            {"name": "features", "type": _FLOATS},
                        ],
                    },
                },
            }
        ],
    },
    payloads.NESTED: {
        "type": "record",
        "name": "Nested",
        "namespace": _NS,
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "meta", "type": {"type": "map", "values": "string"}},
            {
                "name": "items",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Item",
                        "fields": [
                            {"name": "name", "type": "string"},
                            {"name": "count", "type": "long"},
                            {"name": "score", "type": "double"},
                            {"name": "ok", "type": "boolean"},
                            {
                                "name": "children",
                                "type": {
                                    "type": "array",
                                    "items": {
                                        "type": "record",
                                        "name": "Child",
                                        "fields": [
                                            {"name": "key", "type": "string"},
                                            {"name": "value", "type": "double"},
                                        ],
                                    },
                                },
                            },
                        ],
                    },
                },
            },
        ],
    },
}
"""Avro schemas, one per payload kind, mirroring ``payloads.proto`` field for field."""


class AvroCodec:
    """Avro binary encoding of one payload kind, without the container-file header."""

    name = "avro"
    wire_safe = True

    def __init__(self, kind: str) -> None:
        try:
            schema = SCHEMAS[kind]
        except KeyError as e:
            raise UnknownKindError(self.name, kind) from e
        self._schema = fastavro.parse_schema(schema)

    def encode(self, value: Any) -> bytes:
        """Serialize a record matching this codec's schema."""
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self._schema, value)
        return buffer.getvalue()

    def decode(self, data: bytes) -> Any:
        """Read one record written with this codec's schema."""
        return fastavro.schemaless_reader(io.BytesIO(data), self._schema, None)
