"""The message contracts a model may declare, checked against its descriptors when the worker
starts: a model that says it follows one and does not fails to start, naming what is wrong.

Text generation (``Model.text_generation``, the ``text-generation`` feature,
docs/protocol.md): the request message has a string ``prompt`` and may have an integer
``max_tokens``, an integer ``seed`` and a floating-point ``temperature``; the response message
(each piece of a stream) has a string ``text``. None of them repeated.
"""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf.descriptor import FieldDescriptor

from conveyor.descriptors import MessageDescriptor
from conveyor.errors import SchemaError

__all__ = ["check_text_generation", "text_generation_problems"]

_STRING = frozenset({FieldDescriptor.TYPE_STRING})
_INTEGER = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOAT = frozenset({FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE})

# (field, accepted types, what they are called, required)
_REQUEST: tuple[tuple[str, Collection[int], str, bool], ...] = (
    ("prompt", _STRING, "a string", True),
    ("max_tokens", _INTEGER, "an integer", False),
    ("seed", _INTEGER, "an integer", False),
    ("temperature", _FLOAT, "a float or double", False),
)
_RESPONSE: tuple[tuple[str, Collection[int], str, bool], ...] = (
    ("text", _STRING, "a string", True),
)


def text_generation_problems(request: MessageDescriptor, response: MessageDescriptor) -> list[str]:
    """What keeps ``request``/``response`` from following the text-generation contract (empty:
    they follow it)."""
    return _problems(request, _REQUEST) + _problems(response, _RESPONSE)


def check_text_generation(request: MessageDescriptor, response: MessageDescriptor) -> None:
    """Raise ``SchemaError`` naming every problem when the messages do not follow the
    text-generation contract."""
    problems = text_generation_problems(request, response)
    if problems:
        raise SchemaError(
            "the model sets text_generation but its messages do not follow the text-generation "
            "contract: " + "; ".join(problems)
        )


def _problems(
    message: MessageDescriptor, fields: tuple[tuple[str, Collection[int], str, bool], ...]
) -> list[str]:
    problems = []
    for name, types, kind, required in fields:
        field = message.fields_by_name.get(name)
        if field is None:
            if required:
                problems.append(f"{message.full_name} has no field {name!r} ({kind})")
            continue
        if field.type not in types or field.is_repeated:
            problems.append(f"{message.full_name}.{name} must be {kind}, not repeated")
    return problems
