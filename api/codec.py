"""JSON (protobuf JSON mapping) <-> protobuf bytes for a model's messages."""

import json
import re
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from api.exceptions import InvalidRequest, InvalidResult

_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)"')
_BAD_FIELD = re.compile(r"Failed to parse (\S+) field")
_AT_PATH = re.compile(r" at ([\w.\[\]]+)\.?$")


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


def parse_request(body: bytes, request_class: type[Message], model: str) -> bytes:
    """Turn a JSON body into the serialized request message; raise ``InvalidRequest``."""
    try:
        document = json.loads(body) if body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidRequest(f"body is not valid JSON: {e}", model=model, field="body") from e
    if not isinstance(document, dict):
        raise InvalidRequest(
            "body must be a JSON object (the model's request message)", model=model, field="body"
        )
    message = request_class()
    try:
        json_format.ParseDict(document, message)
    except json_format.ParseError as e:
        text = str(e).splitlines()[0]
        raise InvalidRequest(text, model=model, field=field_of(text)) from e
    return message.SerializeToString()


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
