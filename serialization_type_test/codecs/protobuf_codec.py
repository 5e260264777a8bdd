"""Protobuf with the generated classes of ``payloads.proto``.

Two codecs measure the two ways Conveyor can hold a payload:

* ``protobuf``: the value *is* the generated message (what the gateway builds once from the
  request and a worker parses); encode/decode are ``SerializeToString``/``FromString``.
* ``protobuf+dict``: the value is the same plain dict the schemaless codecs get, so the cost of
  building the message and reading it back into a dict is included.

Which runtime backs the generated classes (``upb``, ``cpp`` or ``python``) is reported by
:func:`backend`.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf.internal import api_implementation
from google.protobuf.message import Message

from serialization_type_test import payloads, payloads_pb2
from serialization_type_test.codecs.base import UnknownKindError

__all__ = ["MESSAGES", "ProtobufCodec", "ProtobufDictCodec", "backend", "message_to_dict"]

MESSAGES: Final[dict[str, type[Message]]] = {
    payloads.TEXT: payloads_pb2.Text,
    payloads.FEATURES: payloads_pb2.Features,
    payloads.TENSOR: payloads_pb2.Tensor,
    payloads.BATCH: payloads_pb2.Batch,
    payloads.NESTED: payloads_pb2.Nested,
}
"""Generated message class for each payload kind."""


def backend() -> str:
    """Name of the active protobuf runtime: ``upb``, ``cpp`` or ``python``."""
    return str(api_implementation.Type())


def _message_class(codec: str, kind: str) -> type[Message]:
    try:
        return MESSAGES[kind]
    except KeyError as e:
        raise UnknownKindError(codec, kind) from e


def _field_value(is_message: bool, value: Any) -> Any:
    return message_to_dict(value) if is_message else value


def message_to_dict(message: Message) -> dict[str, Any]:
    """Convert a message to plain Python values, every field present, floats kept as-is.

    Unlike ``json_format.MessageToDict`` this keeps int64 as ``int`` and does not round floats
    to their shortest decimal form, so a dict survives dict -> message -> dict unchanged.
    """
    result: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        entry = field.message_type
        is_message = entry is not None
        if entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            nested = value_field.message_type is not None
            result[field.name] = {k: _field_value(nested, v) for k, v in value.items()}
        elif field.is_repeated:
            result[field.name] = [_field_value(is_message, v) for v in value]
        else:
            result[field.name] = _field_value(is_message, value)
    return result


class ProtobufCodec:
    """Serialize generated messages of one payload kind."""

    name = "protobuf"
    wire_safe = True

    def __init__(self, kind: str) -> None:
        self._cls = _message_class(self.name, kind)

    def encode(self, value: Message) -> bytes:
        """Serialize a message to its binary wire form."""
        return value.SerializeToString()

    def decode(self, data: bytes) -> Message:
        """Parse a message of this codec's kind."""
        return self._cls.FromString(data)


class ProtobufDictCodec:
    """Protobuf on the wire, plain dicts in and out (message building included in the cost)."""

    name = "protobuf+dict"
    wire_safe = True

    def __init__(self, kind: str) -> None:
        self._cls = _message_class(self.name, kind)

    def to_message(self, value: dict[str, Any]) -> Message:
        """Build this kind's message from a dict (nested dicts and lists are accepted)."""
        return self._cls(**value)

    def encode(self, value: dict[str, Any]) -> bytes:
        """Build the message from ``value`` and serialize it."""
        return self._cls(**value).SerializeToString()

    def decode(self, data: bytes) -> dict[str, Any]:
        """Parse bytes and return the message as a dict."""
        return message_to_dict(self._cls.FromString(data))
