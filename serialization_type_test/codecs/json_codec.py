"""JSON with the standard library: the baseline every other format is compared to."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JsonCodec"]


class JsonCodec:
    """Compact UTF-8 JSON via :mod:`json`; NaN and infinities are refused, as on the wire."""

    name = "json"
    wire_safe = True

    def encode(self, value: Any) -> bytes:
        """Serialize ``value`` as compact JSON."""
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()

    def decode(self, data: bytes) -> Any:
        """Parse JSON bytes."""
        return json.loads(data)
