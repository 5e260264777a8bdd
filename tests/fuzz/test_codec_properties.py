"""Property tests of the gateway's JSON <-> protobuf conversion (``api.codec``).

Whatever the body, ``parse_request`` returns the serialized message or raises
``InvalidRequest`` (a 422), never anything else; a valid message survives the round trip; and
``render_response`` turns any bytes into a JSON object or ``InvalidResult`` (a 502).
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.codec import _fast_parse, parse_request, render_response
from api.exceptions import InvalidRequest, InvalidResult
from proto import model_a_pb2, model_b_pb2, task_pb2

# Messages of every shape the codec meets: a string, repeated doubles and a map of doubles,
# and the task envelope (nested messages, enums, a oneof, bytes, 64-bit integers).
MESSAGES: list[type[Message]] = [
    model_a_pb2.ModelARequest,
    model_b_pb2.ModelBRequest,
    model_b_pb2.ModelBResponse,
    task_pb2.Task,
    task_pb2.TaskResult,
]

PROPERTIES = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson encodes
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "1e309", "-0", "0x10", "\x00", "\r\n"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
field_names = st.sampled_from(
    ["data", "features", "label", "probabilities", "task_id", "payload", "error", "response",
     "deadline_unix_ms", "priority", "attempt", "code", "message", "outcome", "x"]
)  # fmt: skip
objects = st.dictionaries(field_names, json_values, max_size=6)


def _check_parse(body: bytes, message: type[Message]) -> bytes | None:
    try:
        return parse_request(body, message, "fuzz_model", max_depth=32)
    except InvalidRequest as e:
        assert e.model == "fuzz_model"
        assert e.message
        return None


@PROPERTIES
@given(body=st.binary(max_size=300), message=st.sampled_from(MESSAGES))
def test_any_bytes_parse_or_invalid_request(body: bytes, message: type[Message]) -> None:
    _check_parse(body, message)


@PROPERTIES
@given(document=objects, message=st.sampled_from(MESSAGES))
def test_any_json_object_parses_or_invalid_request(
    document: dict[str, Any], message: type[Message]
) -> None:
    payload = _check_parse(orjson.dumps(document), message)
    if payload is not None:
        parsed = message.FromString(payload)
        assert _finite(json_format.MessageToDict(parsed))


@PROPERTIES
@given(
    number=st.integers(min_value=2**64, max_value=2**200) | st.integers(max_value=-(2**63) - 1),
    field=field_names,
    message=st.sampled_from(MESSAGES),
)
def test_huge_integers_parse_or_invalid_request(
    number: int, field: str, message: type[Message]
) -> None:
    _check_parse(json.dumps({field: number}).encode(), message)


@PROPERTIES
@given(depth=st.integers(min_value=1, max_value=5000), opener=st.sampled_from(["[", '{"a":']))
def test_deep_bodies_are_refused(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    body = (opener * depth + "1" + closer * depth).encode()
    assert _check_parse(b'{"data": ' + body + b"}", model_a_pb2.ModelARequest) is None


@PROPERTIES
@given(features=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20))
def test_finite_features_round_trip(features: list[float]) -> None:
    payload = parse_request(
        json.dumps({"features": features}).encode(), model_b_pb2.ModelBRequest, "model_b"
    )
    assert list(model_b_pb2.ModelBRequest.FromString(payload).features) == features


@PROPERTIES
@given(
    features=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=5),
    bad=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e309", "-1e400"]),
    at=st.integers(min_value=0, max_value=5),
)
def test_non_finite_features_are_refused(features: list[float], bad: str, at: int) -> None:
    items = [json.dumps(f) for f in features]
    items.insert(min(at, len(items)), bad if bad.startswith(("1", "-1")) else json.dumps(bad))
    body = ('{"features": [' + ", ".join(items) + "]}").encode()
    assert _check_parse(body, model_b_pb2.ModelBRequest) is None


@PROPERTIES
@given(data=st.text(max_size=200))
def test_text_round_trips(data: str) -> None:
    payload = parse_request(orjson.dumps({"data": data}), model_a_pb2.ModelARequest, "model_a")
    assert model_a_pb2.ModelARequest.FromString(payload).data == data


# Documents the fast path takes: the names (and JSON names) of plain fields, with values of
# the types it accepts and some it must leave to ParseDict.
plain_values = (
    st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.text(max_size=20)
    | st.lists(st.floats() | st.integers(min_value=-(2**64), max_value=2**64), max_size=5)
    | st.none()
)
plain_names = st.sampled_from(
    ["data", "features", "task_id", "taskId", "model", "deadline_unix_ms", "deadlineUnixMs",
     "priority", "attempt", "result_ttl_seconds", "redelivered", "worker_id", "workerId",
     "payload", "label"]
)  # fmt: skip
plain_objects = st.dictionaries(plain_names, plain_values, max_size=6)


@PROPERTIES
@given(document=plain_objects | objects, message=st.sampled_from(MESSAGES))
def test_the_fast_path_builds_what_parse_dict_builds(
    document: dict[str, Any], message: type[Message]
) -> None:
    fast = message()
    if not _fast_parse(document, fast):
        return  # left to ParseDict
    slow = message()
    json_format.ParseDict(document, slow)  # accepts what the fast path accepted
    assert fast == slow
    assert fast.SerializeToString(deterministic=True) == slow.SerializeToString(deterministic=True)


def test_the_fast_path_takes_the_benchmarks_bodies() -> None:
    assert _fast_parse({"data": "example"}, model_a_pb2.ModelARequest())
    assert _fast_parse({"features": [5.1, 3.5, 1, 0.2]}, model_b_pb2.ModelBRequest())


@PROPERTIES
@given(payload=st.binary(max_size=300), message=st.sampled_from(MESSAGES))
def test_any_response_bytes_render_or_invalid_result(
    payload: bytes, message: type[Message]
) -> None:
    try:
        rendered = render_response(payload, message, "fuzz_model")
    except InvalidResult as e:
        assert e.model == "fuzz_model"
        return
    assert isinstance(rendered, dict)
    json.dumps(rendered)  # plain JSON, ready to be answered


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True
