"""Pickle, measured as a reference point only.

UNSAFE FOR THE WIRE: unpickling runs arbitrary code chosen by whoever wrote the bytes, and the
format is Python-only. Never carry it between Conveyor's processes.
"""

from __future__ import annotations

import pickle
from typing import Any

__all__ = ["PickleCodec"]


class PickleCodec:
    """Pickle at the highest protocol; reference only, ``wire_safe`` is False."""

    name = "pickle"
    wire_safe = False

    def encode(self, value: Any) -> bytes:
        """Serialize ``value`` with pickle."""
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, data: bytes) -> Any:
        """Unpickle bytes. Only ever call this on bytes this process produced."""
        return pickle.loads(data)
