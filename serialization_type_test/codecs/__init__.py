"""Every wire format the benchmark measures, behind the two-method :class:`Codec` interface.

:data:`CODECS` lists them in display order; :func:`make_codec` builds one for a payload kind.
The ``protobuf`` codec takes generated messages (see ``input``), every other codec plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from serialization_type_test.codecs.avro_codec import AvroCodec
from serialization_type_test.codecs.base import (
    Codec,
    SerializationTestError,
    UnknownCodecError,
    UnknownKindError,
)
from serialization_type_test.codecs.cbor_codec import CborCodec
from serialization_type_test.codecs.json_codec import JsonCodec
from serialization_type_test.codecs.msgpack_codec import MsgpackCodec
from serialization_type_test.codecs.orjson_codec import OrjsonCodec
from serialization_type_test.codecs.pickle_codec import PickleCodec
from serialization_type_test.codecs.protobuf_codec import (
    ProtobufCodec,
    ProtobufDictCodec,
    backend,
)

__all__ = [
    "BASELINE",
    "CODECS",
    "Codec",
    "CodecSpec",
    "SerializationTestError",
    "UnknownCodecError",
    "UnknownKindError",
    "make_codec",
    "protobuf_backend",
]

protobuf_backend = backend

BASELINE: Final = "json"
"""The codec every run includes and every ratio is relative to."""


@dataclass(frozen=True)
class CodecSpec:
    """How to build a codec and what it takes: plain dicts or generated protobuf messages."""

    name: str
    factory: Callable[[str], Codec[Any]]
    input: Literal["dict", "message"]
    wire_safe: bool
    description: str


CODECS: Final[dict[str, CodecSpec]] = {
    spec.name: spec
    for spec in (
        CodecSpec("json", lambda _k: JsonCodec(), "dict", True, "stdlib json (baseline)"),
        CodecSpec("orjson", lambda _k: OrjsonCodec(), "dict", True, "orjson"),
        CodecSpec("msgpack", lambda _k: MsgpackCodec(), "dict", True, "MessagePack"),
        CodecSpec("cbor", lambda _k: CborCodec(), "dict", True, "CBOR (cbor2)"),
        CodecSpec("avro", AvroCodec, "dict", True, "Avro binary (fastavro), schema per kind"),
        CodecSpec("protobuf", ProtobufCodec, "message", True, "protobuf, generated messages"),
        CodecSpec(
            "protobuf+dict", ProtobufDictCodec, "dict", True, "protobuf incl. dict<->message"
        ),
        CodecSpec("pickle", lambda _k: PickleCodec(), "dict", False, "pickle: UNSAFE, reference"),
    )
}


def make_codec(name: str, kind: str) -> Codec[Any]:
    """Build codec ``name`` for payload ``kind``."""
    try:
        spec = CODECS[name]
    except KeyError as e:
        raise UnknownCodecError(f"unknown codec {name!r}; known: {', '.join(CODECS)}") from e
    return spec.factory(kind)
