"""JSON with orjson, the fast Rust implementation."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["OrjsonCodec"]


class OrjsonCodec:
    """Compact UTF-8 JSON via :mod:`orjson`."""

    name = "orjson"
    wire_safe = True

    def encode(self, value: Any) -> bytes:
        """Serialize ``value`` as JSON."""
        return orjson.dumps(value)

    def decode(self, data: bytes) -> Any:
        """Parse JSON bytes."""
        return orjson.loads(data)
