"""CBOR (RFC 8949): a standardised schemaless binary encoding."""

from __future__ import annotations

from typing import Any

import cbor2

__all__ = ["CborCodec"]


class CborCodec:
    """CBOR via :mod:`cbor2`."""

    name = "cbor"
    wire_safe = True

    def encode(self, value: Any) -> bytes:
        """Serialize ``value`` as CBOR."""
        return cbor2.dumps(value)

    def decode(self, data: bytes) -> Any:
        """Parse CBOR bytes."""
        return cbor2.loads(data)
