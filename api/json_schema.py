"""Protobuf message descriptors -> JSON Schema, in the protobuf JSON mapping the gateway speaks.

Two directions, because the gateway reads and writes a message differently (``api.codec``):

- ``READ``, a request body as the gateway accepts it: each field under its JSON name
  (``fooBar``) or its .proto name (``foo_bar``), any of them ``null`` (the field's default);
  64- and 32-bit integers as JSON integers or decimal strings, in the type's range; floats as
  finite JSON numbers (the mapping's ``"NaN"`` / ``"Infinity"`` strings are refused, and so are
  numbers as strings); bytes as base64 (standard or URL-safe, padding optional); enums by name
  or number; maps as objects whose keys are strings (of the key's integer, ``true`` /
  ``false``); no unknown field; at most one non-null member of a ``oneof``; a proto2
  ``required`` field present and not null.
- ``WRITE``, a response as the gateway renders it (``MessageToDict`` with the .proto names and
  every field without presence): each field under its .proto name, present unless it has
  presence (a message, an ``optional``, a ``oneof`` member); 64-bit integers as decimal
  strings; floats as numbers or ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; bytes as standard
  base64; enums by name (by number when the value is unknown to an open enum).

(The gateway reads JSON numbers past the 64-bit integers as doubles, so an integer literal
within 2**10 below -2**63 reads as -2**63.)

A tensor field (a ``conveyor.v1.Tensor`` with the ``(conveyor.v1.tensor)`` option) is the
Tensor message, ``shape`` and base64 ``raw``, described with its declared datatype and dims.

Well-known types take their special forms (``Timestamp`` an RFC 3339 string, ``Duration``
``"1.5s"``, wrappers their value, ``Struct`` / ``Value`` / ``ListValue`` any JSON object, value
or array). Their pattern checks the form; protobuf checks what a pattern cannot (a month
past 12, a ``Timestamp`` before year 1, the type an ``Any`` names).

The schemas use a small part of JSON Schema 2020-12 (``type``, ``enum``, ``minimum``,
``maximum``, ``pattern`` anchored with ``^...$``, ``items``, ``properties``, ``required``,
``additionalProperties``, ``propertyNames``, ``anyOf``, ``allOf``, ``not``, ``$ref``; the rest are
annotations), which ``api.schema_check`` validates: a schema here is both the documentation of
a model's messages and the gateway's check of a request.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from conveyor.descriptors import tensor_option

__all__ = [
    "FLOAT_MAX",
    "Direction",
    "JsonSchema",
    "MessageSchemas",
    "decimal_range_pattern",
    "message_schemas",
    "standalone_schema",
]

JsonSchema = dict[str, Any]
"""A JSON Schema (2020-12) as a JSON-ready dict."""

FLOAT_MAX: Final = 3.4028234663852886e38
"""The largest finite 32-bit float: a ``float`` field takes no larger magnitude."""

_NULL: Final[JsonSchema] = {"type": "null"}
_NOT_NULL: Final[JsonSchema] = {"not": _NULL}
_NON_FINITE: Final = ("NaN", "Infinity", "-Infinity")
_BASE64_ANY: Final = "^(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2}(?:==)?|[A-Za-z0-9+/_-]{3}=?)?$"
_BASE64_STANDARD: Final = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_TIMESTAMP: Final = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.][0-9]{1,9})?"
    "(?:Z|[+-][0-9]{2}:[0-9]{2})$"
)
_DURATION: Final = "^-?[0-9]{1,12}(?:[.][0-9]{1,9})?s$"
_PATH: Final = "[A-Za-z][A-Za-z0-9]*(?:[.][A-Za-z][A-Za-z0-9]*)*"
_FIELD_MASK: Final = f"^(?:{_PATH}(?:,{_PATH})*)?$"


class Direction(enum.Enum):
    """Which side of the codec a schema describes (see the module doc)."""

    READ = "input"
    """A request body, as the gateway accepts it."""
    WRITE = "output"
    """A response, as the gateway renders it."""


@dataclass(frozen=True)
class MessageSchemas:
    """A message type's schema: ``definitions`` holds one schema per message type reached
    (the root included), keyed by the names ``name`` gave; ``root`` is the root's key."""

    root: str
    definitions: dict[str, JsonSchema] = field(default_factory=dict)


def decimal_range_pattern(low: int, high: int) -> str:
    """An anchored pattern matching exactly the decimal strings of the integers from ``low``
    to ``high`` (``low <= 0 <= high``): no leading zeros or ``+``; ``-0`` is zero."""
    if not low <= 0 <= high:
        raise ValueError("the range must hold zero")
    alternatives = [_up_to(str(high))]
    if low < 0:
        alternatives.append(f"-{_up_to(str(-low))}")
    else:
        alternatives.append("-0")
    return f"^(?:{'|'.join(alternatives)})$"


def _up_to(limit: str) -> str:
    """A pattern of the decimal strings (no leading zeros) of 0 to ``limit``."""
    length = len(limit)
    if length == 1:
        return _digits("0", limit)
    parts = ["[0-9]"]
    if length > 2:
        parts.append(f"[1-9][0-9]{{1,{length - 2}}}")
    for i in range(length):
        low = "1" if i == 0 else "0"
        high = chr(ord(limit[i]) - 1)
        if high >= low:
            rest = length - i - 1
            tail = f"[0-9]{{{rest}}}" if rest > 1 else "[0-9]" if rest == 1 else ""
            parts.append(f"{limit[:i]}{_digits(low, high)}{tail}")
    parts.append(limit)
    return "(?:" + "|".join(parts) + ")"


def _digits(low: str, high: str) -> str:
    return low if low == high else f"[{low}-{high}]"


_INT_RANGES: Final[dict[int, tuple[int, int, str]]] = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1, "int32"),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1, "int32"),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1, "int32"),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1, "uint32"),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1, "uint32"),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1, "int64"),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1, "int64"),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1, "int64"),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1, "uint64"),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1, "uint64"),
}


def _integer(kind: int, direction: Direction) -> JsonSchema:
    low, high, fmt = _INT_RANGES[kind]
    as_string: JsonSchema = {
        "type": "string",
        "pattern": decimal_range_pattern(low, high),
        "description": f"{'a' if fmt.startswith('u') else 'an'} {fmt} as a decimal string",
    }
    if direction is Direction.WRITE and fmt in ("int64", "uint64"):
        return {**as_string, "format": fmt}
    as_number: JsonSchema = {"type": "integer", "format": fmt, "minimum": low, "maximum": high}
    if direction is Direction.WRITE:
        return as_number
    return {"anyOf": [as_number, as_string]}


def _float(kind: int, direction: Direction) -> JsonSchema:
    number: JsonSchema = {"type": "number"}
    if kind == FieldDescriptor.TYPE_FLOAT:
        number.update(format="float", minimum=-FLOAT_MAX, maximum=FLOAT_MAX)
    else:
        number["format"] = "double"
    if direction is Direction.READ:
        return number
    return {"anyOf": [number, {"type": "string", "enum": list(_NON_FINITE)}]}


def _enum(enum_type: EnumDescriptor, direction: Direction) -> JsonSchema:
    names = [value.name for value in enum_type.values]
    if enum_type.full_name == "google.protobuf.NullValue":
        return _NULL if direction is Direction.WRITE else {"anyOf": [_NULL, {"enum": names}]}
    by_name: JsonSchema = {"type": "string", "enum": names, "title": enum_type.full_name}
    closed = bool(getattr(enum_type, "is_closed", False))
    if direction is Direction.WRITE:
        if closed:
            return by_name
        # An open enum holds any int32; a value without a name is written as its number.
        unnamed = sorted({value.number for value in enum_type.values})
        return {"anyOf": [by_name, {"type": "integer", "not": {"enum": unnamed},
                                    "minimum": -(2**31), "maximum": 2**31 - 1}]}  # fmt: skip
    if closed:
        numbers = sorted({value.number for value in enum_type.values})
        return {"anyOf": [by_name, {"type": "integer", "enum": numbers}]}
    return {"anyOf": [by_name, {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}]}


def _scalar(item: FieldDescriptor, direction: Direction) -> JsonSchema:
    kind = item.type
    if kind in _INT_RANGES:
        return _integer(kind, direction)
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _float(kind, direction)
    if kind == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == FieldDescriptor.TYPE_STRING:
        return {"type": "string"}
    if kind == FieldDescriptor.TYPE_BYTES:
        pattern = _BASE64_ANY if direction is Direction.READ else _BASE64_STANDARD
        return {"type": "string", "contentEncoding": "base64", "pattern": pattern}
    if kind == FieldDescriptor.TYPE_ENUM and item.enum_type is not None:
        return _enum(item.enum_type, direction)
    raise ValueError(f"{item.full_name}: no JSON form for protobuf type {kind}")


_WRAPPERS: Final = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)


def _well_known(message: Descriptor, direction: Direction) -> JsonSchema | None:
    """The special JSON form of a well-known type, or None for an ordinary message."""
    name = message.full_name
    if name in _WRAPPERS:
        return _scalar(message.fields_by_name["value"], direction)
    special: dict[str, JsonSchema] = {
        "google.protobuf.Timestamp": {"type": "string", "format": "date-time",
                                      "pattern": _TIMESTAMP},
        "google.protobuf.Duration": {"type": "string", "pattern": _DURATION},
        "google.protobuf.FieldMask": {"type": "string", "pattern": _FIELD_MASK},
        "google.protobuf.Struct": {"type": "object"},
        "google.protobuf.ListValue": {"type": "array"},
        "google.protobuf.Value": {},
        "google.protobuf.Any": {"type": "object", "required": ["@type"],
                                "properties": {"@type": {"type": "string"}}},
    }  # fmt: skip
    found = special.get(name)
    return None if found is None else {**found, "title": name}


class _Builder:
    def __init__(self, direction: Direction, name: Callable[[str], str], ref_template: str) -> None:
        self.direction = direction
        self.name = name
        self.ref_template = ref_template
        self.definitions: dict[str, JsonSchema] = {}

    def ref(self, message: Descriptor) -> JsonSchema:
        key = self.name(message.full_name)
        if key not in self.definitions:
            self.definitions[key] = {}  # reserved first: a recursive message refers to itself
            self.definitions[key] = self.message(message)
        return {"$ref": self.ref_template.format(name=key)}

    def value(self, item: FieldDescriptor) -> JsonSchema:
        """The schema of one value of ``item`` (an element, for a repeated field)."""
        if item.message_type is None:
            return _scalar(item, self.direction)
        special = _well_known(item.message_type, self.direction)
        return special if special is not None else self.ref(item.message_type)

    def field(self, item: FieldDescriptor) -> JsonSchema:
        """The schema of ``item``'s JSON value (without the ``null`` a request may give)."""
        message = item.message_type
        option = tensor_option(item)
        if option is not None and message is not None and not item.is_repeated:
            dims = ", ".join(map(str, option.dims))
            return {
                **self.value(item),
                "description": f"a {option.datatype} tensor of dims [{dims}] (-1: any size): "
                "its shape, and raw, its elements in row-major order as little-endian bytes "
                "(the Open Inference Protocol's binary tensor format) in base64",
            }
        if message is not None and message.GetOptions().map_entry:
            key = message.fields_by_name["key"]
            if key.type == FieldDescriptor.TYPE_BOOL:
                names: JsonSchema = {"enum": ["true", "false"]}
            elif key.type in _INT_RANGES:
                low, high, _ = _INT_RANGES[key.type]
                names = {"pattern": decimal_range_pattern(low, high)}
            else:
                names = {}
            schema: JsonSchema = {
                "type": "object",
                "additionalProperties": self.value(message.fields_by_name["value"]),
            }
            if names:
                schema["propertyNames"] = names
            return schema
        if item.is_repeated:
            return {"type": "array", "items": self.value(item)}
        return self.value(item)

    def message(self, message: Descriptor) -> JsonSchema:
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        either: list[JsonSchema] = []  # a required field under either of its two names
        for item in message.fields:
            schema = self.field(item)
            if self.direction is Direction.WRITE:
                properties[item.name] = schema
                if item.is_required or not item.has_presence:
                    required.append(item.name)
                continue
            if item.is_required:  # proto2: may not be left out, nor be null
                names = dict.fromkeys([item.json_name, item.name])
                if len(names) == 1:
                    required.append(item.name)
                else:
                    either.append(
                        {
                            "anyOf": [{"required": [name]} for name in names],
                            "description": f"an object with the field {item.json_name} "
                            f"(or {item.name})",
                        }
                    )
            else:
                schema = _nullable(schema)
            properties[item.json_name] = schema
            if item.name != item.json_name:
                properties[item.name] = {
                    **schema,
                    "description": f"{item.json_name} under its .proto name",
                }
        schema = {
            "type": "object",
            "title": message.full_name,
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        if either:
            schema["allOf"] = either
        if self.direction is Direction.READ:
            exclusive = _one_of_constraint(message)
            if exclusive is not None:
                schema["not"] = exclusive
        return schema


def _nullable(schema: JsonSchema) -> JsonSchema:
    """``schema`` or ``null`` (a request may give any field as ``null``: its default)."""
    if set(schema) == {"anyOf"}:
        return {"anyOf": [*schema["anyOf"], _NULL]}
    kind = schema.get("type")
    if isinstance(kind, str) and set(schema) <= {
        "type",
        "format",
        "items",
        "minimum",
        "maximum",
        "pattern",
        "contentEncoding",
    }:
        return {**schema, "type": [kind, "null"]}  # fmt: skip
    if schema == {}:
        return schema
    return {"anyOf": [schema, _NULL]}


def _one_of_constraint(message: Descriptor) -> JsonSchema | None:
    """What a request may not hold: two non-null keys of one ``oneof`` (of two of its
    members, or the JSON and .proto names of one member: protobuf refuses both)."""
    pairs: list[JsonSchema] = []
    groups: list[str] = []
    for group in message.oneofs:
        keys: list[str] = []
        for member in group.fields:
            keys += dict.fromkeys((member.json_name, member.name))
        if len(keys) > 1:
            groups.append(f"{group.name} ({', '.join(keys)})")
        for i, first in enumerate(keys):
            for second in keys[i + 1 :]:
                pairs.append(
                    {
                        "required": [first, second],
                        "properties": {first: _NOT_NULL, second: _NOT_NULL},
                    }
                )
    if not pairs:
        return None
    return {
        "anyOf": pairs,
        "description": "holds more than one non-null field of the oneof " + ", ".join(groups),
    }


def message_schemas(
    descriptor: Descriptor,
    direction: Direction,
    *,
    name: Callable[[str], str] = lambda full_name: full_name,
    ref_template: str = "#/$defs/{name}",
) -> MessageSchemas:
    """The schemas of ``descriptor`` and of every message type it reaches, in ``direction``.

    ``name`` maps a message's full name to its key among the definitions (unique per message
    type); ``ref_template`` turns a key into a ``$ref`` (``"#/components/schemas/{name}"`` in an
    OpenAPI document)."""
    builder = _Builder(direction, name, ref_template)
    special = _well_known(descriptor, direction)
    key = name(descriptor.full_name)
    if special is not None:
        builder.definitions[key] = special
    else:
        builder.ref(descriptor)
    return MessageSchemas(root=key, definitions=builder.definitions)


def standalone_schema(descriptor: Descriptor, direction: Direction) -> JsonSchema:
    """One self-contained JSON Schema document for ``descriptor`` in ``direction``."""
    schemas = message_schemas(descriptor, direction)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/$defs/{schemas.root}",
        "$defs": schemas.definitions,
    }
