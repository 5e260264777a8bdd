"""The JSON Schema of a message, field kind by field kind, read and written (api.json_schema),
and the check of a document against it (api.schema_check), compared with jsonschema-rs."""

from __future__ import annotations

import base64
import json
from typing import Any, cast

import jsonschema_rs
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from api.codec import parse_request, render_response
from api.exceptions import InvalidRequest
from api.json_schema import (
    FLOAT_MAX,
    Direction,
    JsonSchema,
    decimal_range_pattern,
    message_schemas,
    standalone_schema,
)
from api.schema_check import compile_schema
from api.tests import closed_pb2, kinds_pb2
from proto import model_a_pb2, model_b_pb2


def _descriptor(message: type[Message]) -> Descriptor:
    return cast(Descriptor, message.DESCRIPTOR)


READ = standalone_schema(_descriptor(kinds_pb2.Kinds), Direction.READ)
WRITE = standalone_schema(_descriptor(kinds_pb2.Kinds), Direction.WRITE)
READ_KINDS = READ["$defs"]["conveyor.test.Kinds"]
WRITE_KINDS = WRITE["$defs"]["conveyor.test.Kinds"]


def _accepted(document: dict[str, Any], message: Any = kinds_pb2.Kinds) -> bool:
    try:
        parse_request(json.dumps(document).encode(), message, "m")
    except InvalidRequest:
        return False
    return True


def _valid(schema: JsonSchema, document: Any) -> bool:
    return bool(jsonschema_rs.validator_for(schema).is_valid(document))


# --- the schemas, kind by kind -------------------------------------------------------------


def test_model_b_features_are_an_array_of_numbers() -> None:
    schema = standalone_schema(_descriptor(model_b_pb2.ModelBRequest), Direction.READ)
    features = schema["$defs"]["conveyor.v1.ModelBRequest"]["properties"]["features"]
    assert features == {"type": ["array", "null"], "items": {"type": "number", "format": "double"}}


def test_model_b_response_is_written_with_every_field() -> None:
    schema = standalone_schema(_descriptor(model_b_pb2.ModelBResponse), Direction.WRITE)
    response = schema["$defs"]["conveyor.v1.ModelBResponse"]
    assert response["required"] == ["label", "probabilities"]
    assert response["additionalProperties"] is False
    probability = response["properties"]["probabilities"]["additionalProperties"]
    assert {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]} in probability["anyOf"]


@pytest.mark.parametrize(
    ("field", "low", "high"),
    [
        ("anInt32", -(2**31), 2**31 - 1),
        ("aSint32", -(2**31), 2**31 - 1),
        ("aSfixed32", -(2**31), 2**31 - 1),
        ("aUint32", 0, 2**32 - 1),
        ("aFixed32", 0, 2**32 - 1),
        ("anInt64", -(2**63), 2**63 - 1),
        ("aSint64", -(2**63), 2**63 - 1),
        ("aSfixed64", -(2**63), 2**63 - 1),
        ("aUint64", 0, 2**64 - 1),
        ("aFixed64", 0, 2**64 - 1),
    ],
)
def test_integers_are_read_as_numbers_or_decimal_strings_in_range(
    field: str, low: int, high: int
) -> None:
    for value in (low, high, str(low), str(high), 0, "0", 7.0):
        assert _valid(READ, {field: value}), value
        assert _accepted({field: value}), value
    # (JSON numbers past the 64-bit integers are read as doubles: 2**63 + 1 below the
    # smallest int64 would read as the smallest, so the test steps further out.)
    for value in (low - 2**12, high + 1, str(low - 1), str(high + 1), 1.5, True, "+1", "1_0",
                  "01", " 1", "1e2", "", "1\n"):  # fmt: skip
        assert not _valid(READ, {field: value}), value
        assert not _accepted({field: value}), value


def test_64_bit_integers_are_written_as_strings_32_bit_as_numbers() -> None:
    message = kinds_pb2.Kinds(an_int64=-(2**63), a_uint64=2**64 - 1, an_int32=-5, a_uint32=7)
    written = render_response(message.SerializeToString(), kinds_pb2.Kinds, "m")
    assert written["an_int64"] == str(-(2**63))
    assert written["a_uint64"] == str(2**64 - 1)
    assert written["an_int32"] == -5
    assert _valid(WRITE, written)
    assert WRITE_KINDS["properties"]["an_int64"]["type"] == "string"
    assert WRITE_KINDS["properties"]["an_int32"]["type"] == "integer"


def test_floats_are_finite_numbers_in_range() -> None:
    number: Any
    for number in (0, -1.5, 1e300, 2**70):
        assert _accepted({"aDouble": number})
    assert _accepted({"aFloat": FLOAT_MAX})
    value: Any
    for field in ("aDouble", "aFloat"):
        for value in (True, "1.5", "NaN", "Infinity", "-Infinity", "1_0", [1.0]):
            assert not _valid(READ, {field: value}), value
            assert not _accepted({field: value}), value
    assert not _valid(READ, {"aFloat": 3.5e38})
    assert not _accepted({"aFloat": 3.5e38})


def test_non_finite_floats_are_written_as_the_mappings_strings() -> None:
    message = kinds_pb2.Kinds(a_double=float("nan"), a_float=float("-inf"))
    written = render_response(message.SerializeToString(), kinds_pb2.Kinds, "m")
    assert (written["a_double"], written["a_float"]) == ("NaN", "-Infinity")
    assert _valid(WRITE, written)


def test_bools_and_strings_take_their_own_json_type_only() -> None:
    assert _accepted({"aBool": False, "aString": "é\u0000"})
    for document in ({"aBool": 1}, {"aBool": "true"}, {"aString": 5}, {"aString": ["x"]}):
        assert not _valid(READ, document)
        assert not _accepted(document)


def test_bytes_are_base64_standard_or_url_safe_with_or_without_padding() -> None:
    raw = bytes(range(250, 256)) + b"\xfb\xff"
    for text in (
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        "",
    ):
        assert _valid(READ, {"someBytes": text}), text
        payload = parse_request(f'{{"someBytes": "{text}"}}'.encode(), kinds_pb2.Kinds, "m")
        assert kinds_pb2.Kinds.FromString(payload).some_bytes == (raw if text else b"")
    for text in ("A", "AB=", "A B=", "ab!d", "AAAAA", "QQ==="):
        assert not _valid(READ, {"someBytes": text}), text
        assert not _accepted({"someBytes": text}), text
    written = render_response(
        kinds_pb2.Kinds(some_bytes=raw).SerializeToString(), kinds_pb2.Kinds, "m"
    )
    assert written["some_bytes"] == base64.b64encode(raw).decode()
    assert _valid(WRITE, written)


def test_enums_are_read_by_name_or_number_and_written_by_name() -> None:
    value: Any
    for value in ("RED", 2, 99, 0):
        assert _valid(READ, {"colour": value}), value
        assert _accepted({"colour": value}), value
    for value in ("red", "1", True, 2**31, 1.5):
        assert not _valid(READ, {"colour": value}), value
        assert not _accepted({"colour": value}), value
    written = render_response(
        kinds_pb2.Kinds(colour=kinds_pb2.GREEN).SerializeToString(), kinds_pb2.Kinds, "m"
    )
    assert written["colour"] == "GREEN"
    unnamed = kinds_pb2.Kinds()
    unnamed.colours.append(cast(kinds_pb2.Colour, 42))  # an open enum keeps unnamed numbers
    written = render_response(unnamed.SerializeToString(), kinds_pb2.Kinds, "m")
    assert written["colours"] == [42]
    assert _valid(WRITE, written)
    assert not _valid(WRITE, {**written, "colours": [1]})  # a named value is written by name


def test_a_closed_enum_takes_only_its_values_and_required_fields_are_required() -> None:
    schema = standalone_schema(_descriptor(closed_pb2.Closed), Direction.READ)
    assert _valid(schema, {"name": "x", "size": "LARGE"})
    assert _valid(schema, {"name": "x", "size": 3})
    assert not _valid(schema, {"name": "x", "size": 2})
    assert not _valid(schema, {"size": 1})
    assert not _valid(schema, {"name": None})
    assert _accepted({"name": "x", "size": 1}, closed_pb2.Closed)
    assert not _accepted({"size": 1}, closed_pb2.Closed)  # missing: refused, never a crash
    assert not _accepted({}, closed_pb2.Closed)
    assert not _accepted({"name": "x", "size": 2}, closed_pb2.Closed)


def test_nested_and_recursive_messages_are_references() -> None:
    inner = READ_KINDS["properties"]["inner"]
    assert {"$ref": "#/$defs/conveyor.test.Inner"} in inner["anyOf"]
    child = READ["$defs"]["conveyor.test.Inner"]["properties"]["child"]
    assert {"$ref": "#/$defs/conveyor.test.Inner"} in child["anyOf"]
    document = {"inner": {"label": "a", "child": {"child": {"label": "c"}}}}
    assert _valid(READ, document)
    assert _accepted(document)
    assert not _accepted({"inner": {"child": {"colour": "RED"}}})
    assert not _accepted({"inner": "text"})


def test_repeated_fields_are_arrays_without_null_elements() -> None:
    assert _accepted({"int64s": [1, "2"], "inners": [{"label": "a"}, {}]})
    document: dict[str, Any]
    for document in ({"int64s": [None]}, {"inners": [None]}, {"int64s": 1}, {"inners": {}}):
        assert not _valid(READ, document)
        assert not _accepted(document)


def test_maps_are_objects_with_keys_of_the_key_type() -> None:
    document: dict[str, Any] = {
        "byName": {"a": 1.5},
        "byNumber": {"-3": {"label": "x"}},
        "byTruth": {"true": "y"},
    }
    assert _valid(READ, document)
    assert _accepted(document)
    bad: dict[str, Any]
    for bad in (
        {"byNumber": {"x": {}}},
        {"byNumber": {"01": {}}},
        {"byNumber": {"2147483648": {}}},
        {"byTruth": {"1": "y"}},
        {"byName": {"a": None}},
        {"byName": {"a": "1.5"}},
        {"byName": []},
    ):
        assert not _valid(READ, bad), bad
        assert not _accepted(bad), bad
    written = render_response(
        kinds_pb2.Kinds(
            by_number={-3: kinds_pb2.Inner()}, by_truth={False: "n"}
        ).SerializeToString(),
        kinds_pb2.Kinds,
        "m",
    )
    assert written["by_number"] == {"-3": {"label": ""}}
    assert written["by_truth"] == {"false": "n"}
    assert _valid(WRITE, written)


def test_a_oneof_takes_at_most_one_non_null_member() -> None:
    assert _accepted({"text": "a"})
    assert _accepted({"text": "a", "number": None})
    assert not _valid(READ, {"text": "a", "number": 1})
    assert not _accepted({"text": "a", "number": 1})
    assert not _accepted({"otherName": "a", "renamed": "b", "text": "t", "number": 2})


def test_json_name_and_proto_name_are_both_read_the_proto_name_written() -> None:
    for key in ("otherName", "renamed"):
        assert key in READ_KINDS["properties"]
        assert _accepted({key: "x"})
    assert "anInt32" in READ_KINDS["properties"]
    assert "an_int32" in READ_KINDS["properties"]
    fields = _descriptor(kinds_pb2.Kinds).fields
    assert set(WRITE_KINDS["properties"]) == {field.name for field in fields}
    assert not _accepted({"other_name": "x"})


def test_null_is_every_fields_default() -> None:
    document = {field.json_name: None for field in _descriptor(kinds_pb2.Kinds).fields}
    assert _valid(READ, document)
    assert _accepted(document)


def test_presence_decides_which_written_fields_are_required() -> None:
    required = set(WRITE_KINDS["required"])
    assert {"an_int32", "int64s", "by_name", "colour", "some_bytes"} <= required
    assert not {"inner", "text", "number", "maybe", "when", "wrapped"} & required
    written = render_response(b"", kinds_pb2.Kinds, "m")
    assert set(written) == required
    assert _valid(WRITE, written)


def test_well_known_types_take_their_json_forms() -> None:
    document: dict[str, Any] = {
        "when": "2024-02-29T12:00:00.5Z",
        "howLong": "-1.25s",
        "wrapped": "12",
        "anything": {"a": [1, None, {"b": True}]},
        "value": [1, "x"],
    }
    assert _valid(READ, document)
    assert _accepted(document)
    bad: dict[str, Any]
    for bad in ({"when": "yesterday"}, {"howLong": "5"}, {"wrapped": 1.5}, {"anything": []}):
        assert not _valid(READ, bad), bad
        assert not _accepted(bad), bad
    message = kinds_pb2.Kinds()
    json_format.ParseDict(document, message)
    written = render_response(message.SerializeToString(), kinds_pb2.Kinds, "m")
    assert _valid(WRITE, written)


def test_names_and_references_follow_the_callers_template() -> None:
    schemas = message_schemas(
        _descriptor(kinds_pb2.Kinds),
        Direction.WRITE,
        name=lambda full_name: f"m.{full_name}-output",
        ref_template="#/components/schemas/{name}",
    )
    assert schemas.root == "m.conveyor.test.Kinds-output"
    assert set(schemas.definitions) == {schemas.root, "m.conveyor.test.Inner-output"}
    inner = schemas.definitions[schemas.root]["properties"]["inner"]
    assert inner == {"$ref": "#/components/schemas/m.conveyor.test.Inner-output"}


def test_model_a_fast_path_documents_still_fit() -> None:
    schema = standalone_schema(_descriptor(model_a_pb2.ModelARequest), Direction.READ)
    assert _valid(schema, {"data": "x"})
    assert not _valid(schema, {"data": "x", "other": 1})


# --- decimal ranges ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    bounds=st.sampled_from([(0, 9), (0, 10), (-1, 0), (0, 2**32 - 1), (-(2**31), 2**31 - 1),
                            (-(2**63), 2**63 - 1), (0, 2**64 - 1), (-100, 99)]),
    number=st.integers(min_value=-(2**66), max_value=2**66)
    | st.sampled_from([0, 9, 10, 99, 100, 2**31, 2**32, 2**63, 2**64]).flatmap(
        lambda n: st.sampled_from([n - 1, n, n + 1, -n - 1, -n, -n + 1])
    ),
)  # fmt: skip
def test_decimal_range_pattern_is_exactly_the_range(bounds: tuple[int, int], number: int) -> None:
    low, high = bounds
    check = compile_schema({"type": "string", "pattern": decimal_range_pattern(low, high)})
    assert (check(str(number)) is None) == (low <= number <= high)
    assert check(f"0{abs(number)}") is not None  # no leading zeros
    assert check(f"+{abs(number)}") is not None


# --- the checker agrees with jsonschema-rs -------------------------------------------------

keys = st.sampled_from([*sorted(READ_KINDS["properties"]), "unknown", "@type"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["RED", "0", "-0", "12", "01", "+1", "1_0", "1e2", "1.5", "NaN", "AB==",
                       "true", "2024-01-01T00:00:00Z", "1s", "x\n", "4294967296", ""])
    | st.text(max_size=8)
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(keys | st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)
documents = st.dictionaries(keys, values, max_size=4)


@settings(max_examples=1500, deadline=None)
@given(document=documents)
def test_the_checker_agrees_with_jsonschema_rs_and_the_codec(document: dict[str, Any]) -> None:
    """The gateway's checker says what the reference validator says of the published schema,
    and the codec accepts exactly the documents it says fit."""
    valid = _valid(READ, document)
    assert (compile_schema(READ)(document) is None) == valid
    assert _accepted(document) == valid


@settings(max_examples=300, deadline=None)
@given(document=documents)
def test_whatever_the_codec_accepts_is_written_back_within_the_write_schema(
    document: dict[str, Any],
) -> None:
    try:
        payload = parse_request(json.dumps(document).encode(), kinds_pb2.Kinds, "m")
    except InvalidRequest:
        return
    assert _valid(WRITE, render_response(payload, kinds_pb2.Kinds, "m"))


def test_a_problem_names_the_field_and_says_what_is_wrong() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(b'{"features": [1, true]}', model_b_pb2.ModelBRequest, "m")
    assert caught.value.field == "features[1]"
    assert "number" in caught.value.message
    with pytest.raises(InvalidRequest) as caught:
        parse_request(b'{"anInt64": "1_000"}', kinds_pb2.Kinds, "m")
    assert caught.value.field == "anInt64"
    assert "int64 as a decimal string" in caught.value.message


def test_the_checker_refuses_a_keyword_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="minItems"):
        compile_schema({"type": "array", "minItems": 1})
    with pytest.raises(ValueError, match="anchored"):
        compile_schema({"pattern": "[0-9]+"})
