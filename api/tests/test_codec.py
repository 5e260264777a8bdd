"""JSON bodies become request messages, or 422 errors naming the field."""

import pytest

from api.codec import field_of, parse_request, render_response
from api.exceptions import InvalidRequest, InvalidResult
from proto import model_a_pb2, model_b_pb2


def test_valid_body_is_serialized() -> None:
    payload = parse_request(b'{"features": [1, 2.5]}', model_b_pb2.ModelBRequest, "m")
    assert list(model_b_pb2.ModelBRequest.FromString(payload).features) == [1.0, 2.5]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{oops", "body"),
        (b"", "body"),
        (b"[1, 2]", "body"),
        (b'"text"', "body"),
        (b'{"dat": "x"}', "dat"),
        (b'{"data": 5}', "data"),
    ],
)
def test_invalid_bodies_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(body, model_a_pb2.ModelARequest, "model_a")
    assert caught.value.field == field
    assert caught.value.model == "model_a"


def test_nested_element_path_is_named() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(b'{"features": [1, "x"]}', model_b_pb2.ModelBRequest, "m")
    assert caught.value.field == "features[1]"


def test_field_of_unrecognised_message_is_none() -> None:
    assert field_of("something else went wrong") is None


def test_response_keeps_default_values() -> None:
    payload = model_a_pb2.ModelAResponse(reply="").SerializeToString()
    assert render_response(payload, model_a_pb2.ModelAResponse, "m") == {"reply": ""}


def test_unreadable_response_is_a_gateway_error_not_a_bare_value_error() -> None:
    with pytest.raises(InvalidResult) as caught:
        render_response(b"\xff\xff\xff", model_a_pb2.ModelAResponse, "m")
    assert caught.value.code == "bad_result"
    assert caught.value.model == "m"
