"""MessagePack: schemaless binary JSON-like encoding."""

from __future__ import annotations

from typing import Any

import msgpack

__all__ = ["MsgpackCodec"]


class MsgpackCodec:
    """MessagePack via :mod:`msgpack`; str and bytes stay distinct, floats are 64-bit."""

    name = "msgpack"
    wire_safe = True

    def encode(self, value: Any) -> bytes:
        """Serialize ``value`` as MessagePack."""
        data: bytes = msgpack.packb(value, use_bin_type=True)
        return data

    def decode(self, data: bytes) -> Any:
        """Parse MessagePack bytes."""
        return msgpack.unpackb(data, raw=False)
