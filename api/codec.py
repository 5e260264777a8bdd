"""JSON (protobuf JSON mapping) <-> protobuf bytes for a model's messages.

The edge of the system: every request body is checked here before it becomes a task. It must
be a JSON object no deeper than the limit, fit the model's request message, and hold only
finite numbers (JSON has no NaN or infinity, and the protobuf mapping's "NaN" / "Infinity"
strings are refused too: no model can do anything sensible with them).

What is accepted is exactly what the message's schema in ``api.json_schema`` (``READ``) says,
the schema the OpenAPI document publishes: a body protobuf's parser takes is also checked
against it (the parser takes more than the mapping's forms: ``true`` or ``"1.5"`` for a
double, ``"1_000"`` for an integer), and a body the fast path takes fits it by construction.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from api.catalog import ModelInfo
from api.exceptions import InvalidRequest, InvalidResult, TaskFailed
from api.json_schema import Direction, standalone_schema
from api.schema_check import Checker, compile_schema
from proto import task_pb2

_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)"')
_BAD_FIELD = re.compile(r"Failed to parse (\S+) field")
_AT_PATH = re.compile(r" at ([\w.\[\]]+)\.?$")
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


def field_of(error: str) -> str | None:
    """Return the request field a protobuf ``ParseError`` message is about, if it names one."""
    first_line = error.splitlines()[0] if error else ""
    for pattern in (_UNKNOWN_FIELD, _BAD_FIELD):
        match = pattern.search(first_line)
        if match:
            name = match.group(1)
            at = _AT_PATH.search(first_line)
            path = at.group(1).rstrip(".") if at else ""
            if "." in path:
                # "at Outer.inner.leaf[0]": drop the top-level message name.
                return path.split(".", 1)[1]
            return name
    return None


def _depth(document: Any, limit: int) -> int:
    """How deep ``document`` nests (stops counting past ``limit``)."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
    return deepest


def load_json_object(body: bytes, model: str, max_depth: int) -> dict[str, Any]:
    """Parse a request body that must be a JSON object; raise ``InvalidRequest`` otherwise."""
    try:
        document = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"body is not valid JSON: {e}", model=model, field="body") from e
    # Only a body with enough brackets can nest too deeply: count them before walking it.
    if body.count(b"[") + body.count(b"{") > max_depth and _depth(document, max_depth) > max_depth:
        raise InvalidRequest(
            f"body nests deeper than {max_depth} levels", model=model, field="body"
        )
    if not isinstance(document, dict):
        raise InvalidRequest(
            "body must be a JSON object (the model's request message)", model=model, field="body"
        )
    return document


def parse_request(
    body: bytes, request_class: type[Message], model: str, max_depth: int = 32
) -> bytes:
    """Turn a JSON body into the serialized request message; raise ``InvalidRequest``."""
    document = load_json_object(body, model, max_depth)
    message = request_class()
    if _fast_parse(document, message):
        return message.SerializeToString()  # the fast path sets finite numbers only
    message = request_class()
    _slow_parse(document, message, model)
    problem = _request_check(message.DESCRIPTOR)(document)
    if problem is not None:
        raise InvalidRequest(problem.message, model=model, field=problem.path or "body")
    if _has_floats(message.DESCRIPTOR):
        field = _non_finite(message)
        if field is not None:
            raise InvalidRequest(
                f"{field} holds a number that is not finite (NaN or infinity)",
                model=model,
                field=field,
            )
    return message.SerializeToString()


@cache
def _request_check(descriptor: Descriptor) -> Checker:
    """The check of a request body against ``descriptor``'s published schema."""
    return compile_schema(standalone_schema(descriptor, Direction.READ))


def _slow_parse(document: dict[str, Any], message: Message, model: str) -> None:
    """``json_format.ParseDict``, its errors turned into ``InvalidRequest``."""
    try:
        json_format.ParseDict(document, message)
    except json_format.ParseError as e:
        text = str(e).splitlines()[0]
        raise InvalidRequest(text, model=model, field=field_of(text)) from e
    except RecursionError as e:
        raise InvalidRequest("body nests too deeply", model=model, field="body") from e


# The fast path: a request whose every key names a plain scalar field (or a repeated double)
# and whose every value is of the JSON type that field takes without conversion is set on the
# message directly. ``json_format.ParseDict`` would build the same message from it (a
# property test compares the two); anything else (another type, a oneof, a key given twice,
# a non-ASCII string, a value a field refuses) is left to ``ParseDict``, which also words the
# errors.
_STR, _BOOL, _INT, _DOUBLE, _DOUBLES = range(5)
_INTS = frozenset(
    {
        FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64,
    }
)  # fmt: skip


def _kind(field: FieldDescriptor) -> int | None:
    if field.containing_oneof is not None:
        return None
    if field.is_repeated:
        return _DOUBLES if field.type == FieldDescriptor.TYPE_DOUBLE else None
    if field.type == FieldDescriptor.TYPE_STRING:
        return _STR
    if field.type == FieldDescriptor.TYPE_BOOL:
        return _BOOL
    if field.type in _INTS:
        return _INT
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return _DOUBLE
    return None


@cache
def _plain_fields(descriptor: Descriptor) -> dict[str, tuple[str, int]] | None:
    """JSON key (field name and JSON name) -> (field name, kind) of the fast path's fields;
    None for a message the fast path does not take (proto2 ``required`` fields)."""
    if any(field.is_required for field in descriptor.fields):
        return None
    plain: dict[str, tuple[str, int]] = {}
    for field in descriptor.fields:
        kind = _kind(field)
        if kind is not None:
            plain[field.name] = plain[field.json_name] = (field.name, kind)
    return plain


def _finite_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


def _fast_parse(document: dict[str, Any], message: Message) -> bool:
    """Fill ``message`` from ``document`` on the fast path; False (message untouched or
    partly set: discard it) when ``document`` needs ``ParseDict``."""
    plain = _plain_fields(message.DESCRIPTOR)
    if plain is None:
        return False
    seen: set[str] = set()
    try:
        for key, value in document.items():
            entry = plain.get(key)
            if entry is None:
                return False
            name, kind = entry
            if name in seen:
                return False
            seen.add(name)
            kind_of_value = type(value)
            if kind == _STR:
                if kind_of_value is not str or not value.isascii():
                    return False
                setattr(message, name, value)
            elif kind == _BOOL:
                if kind_of_value is not bool:
                    return False
                setattr(message, name, value)
            elif kind == _INT:
                if kind_of_value is not int:
                    return False
                setattr(message, name, value)
            elif kind == _DOUBLE:
                if not _finite_number(value):
                    return False
                setattr(message, name, float(value))
            else:  # _DOUBLES
                if kind_of_value is not list or not all(map(_finite_number, value)):
                    return False
                getattr(message, name).extend([float(item) for item in value])
    except (ValueError, TypeError, OverflowError):  # e.g. an integer out of the field's range
        return False
    return True


@cache
def _has_floats(descriptor: Descriptor) -> bool:
    """True when a message type holds float or double fields (at any depth)."""
    seen: set[str] = set()
    stack = [descriptor]
    while stack:
        current = stack.pop()
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        for field in current.fields:
            if field.type in _FLOATS:
                return True
            if field.message_type is not None:
                stack.append(field.message_type)
    return False


def _non_finite(message: Message, prefix: str = "") -> str | None:
    """The path of the first field holding NaN or infinity, or None."""
    for field, value in message.ListFields():
        name = prefix + field.name
        if field.type in _FLOATS:
            values = value if field.is_repeated else [value]
            for i, number in enumerate(values):
                if not math.isfinite(number):
                    return f"{name}[{i}]" if field.is_repeated else name
        elif field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                for key, item in value.items():
                    if value_field.type in _FLOATS and not math.isfinite(item):
                        return f"{name}[{key}]"
                    if value_field.message_type is not None:
                        found = _non_finite(item, f"{name}[{key}].")
                        if found:
                            return found
            else:
                items = value if field.is_repeated else [value]
                for i, item in enumerate(items):
                    sub = f"{name}[{i}]." if field.is_repeated else f"{name}."
                    found = _non_finite(item, sub)
                    if found:
                        return found
    return None


def render_response(payload: bytes, response_class: type[Message], model: str) -> dict[str, Any]:
    """Turn a serialized response message into its JSON form (fields as named in the .proto)."""
    message = response_class()
    try:
        message.ParseFromString(payload)
    except DecodeError as e:
        raise InvalidResult(
            f"the worker returned an unreadable {response_class.DESCRIPTOR.full_name}", model=model
        ) from e
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def response_json(result: task_pb2.TaskResult, model: ModelInfo) -> dict[str, Any]:
    """Return the response message as JSON, or raise ``TaskFailed`` for an error result."""
    if result.WhichOneof("outcome") == "response":
        return render_response(result.response, model.response_class, model.name)
    error = result.error
    raise TaskFailed(
        error.message or "the task failed",
        code=task_pb2.TaskError.Code.Name(error.code),
        model=model.name,
        task_id=result.task_id,
        field=error.field or None,
    )
