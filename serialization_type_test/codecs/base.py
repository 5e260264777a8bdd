"""The two-method codec interface every wire format implements, and the package's errors."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["Codec", "SerializationTestError", "UnknownCodecError", "UnknownKindError"]

T = TypeVar("T")


@runtime_checkable
class Codec(Protocol[T]):
    """Turns a value into bytes and back.

    ``name`` labels the codec in results; ``wire_safe`` is False for formats that must never
    read bytes from another process (pickle executes code while decoding).
    """

    name: str
    wire_safe: bool

    def encode(self, value: T) -> bytes:
        """Serialize ``value`` to bytes."""
        ...

    def decode(self, data: bytes) -> T:
        """Deserialize bytes produced by :meth:`encode`."""
        ...


class SerializationTestError(Exception):
    """Base of every error raised by ``serialization_type_test``."""


class UnknownKindError(SerializationTestError, KeyError):
    """A schema-based codec was asked for a payload kind it has no schema for."""

    def __init__(self, codec: str, kind: str) -> None:
        super().__init__(f"{codec}: no schema for payload kind {kind!r}")
        self.codec = codec
        self.kind = kind


class UnknownCodecError(SerializationTestError, KeyError):
    """A codec name that is not one of the benchmark's codecs."""


AnyCodec = Codec[Any]
