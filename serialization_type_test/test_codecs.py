"""Every codec round-trips every payload: the fixed examples and hypothesis-generated ones."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serialization_type_test import codecs, payloads
from serialization_type_test.codecs.protobuf_codec import MESSAGES, ProtobufDictCodec

F32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
F64 = st.floats(allow_nan=False, allow_infinity=False)
I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(max_size=40)
FLOATS = st.lists(F32, max_size=64)

STRATEGIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    payloads.TEXT: st.fixed_dictionaries({"data": st.text(max_size=200)}),
    payloads.FEATURES: st.fixed_dictionaries({"features": FLOATS}),
    payloads.TENSOR: st.fixed_dictionaries(
        {"shape": st.lists(I64, max_size=4), "values": st.lists(F32, max_size=256)}
    ),
    payloads.BATCH: st.fixed_dictionaries(
        {
            "requests": st.lists(
                st.fixed_dictionaries({"task_id": TEXT, "model": TEXT, "features": FLOATS}),
                max_size=8,
            )
        }
    ),
    payloads.NESTED: st.fixed_dictionaries(
        {
            "id": TEXT,
            "tags": st.lists(TEXT, max_size=5),
            "meta": st.dictionaries(TEXT, TEXT, max_size=5),
            "items": st.lists(
                st.fixed_dictionaries(
                    {
                        "name": TEXT,
                        "count": I64,
                        "score": F64,
                        "ok": st.booleans(),
                        "children": st.lists(
                            st.fixed_dictionaries({"key": TEXT, "value": F64}), max_size=4
                        ),
                    }
                ),
                max_size=4,
            ),
        }
    ),
}


def _input(codec_name: str, kind: str, value: dict[str, Any]) -> Any:
    if codecs.CODECS[codec_name].input == "message":
        return MESSAGES[kind](**value)
    return value


def test_strategies_cover_every_kind() -> None:
    assert set(STRATEGIES) == set(payloads.KINDS)


@pytest.mark.parametrize("codec_name", list(codecs.CODECS))
@pytest.mark.parametrize("payload", payloads.example_payloads(), ids=lambda p: p.name)
def test_example_payload_round_trips(codec_name: str, payload: payloads.Payload) -> None:
    codec = codecs.make_codec(codec_name, payload.kind)
    value = _input(codec_name, payload.kind, payload.value)
    data = codec.encode(value)
    assert isinstance(data, bytes)
    assert data
    assert codec.decode(data) == value


@pytest.mark.parametrize("codec_name", list(codecs.CODECS))
@pytest.mark.parametrize("kind", payloads.KINDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_values_round_trip(codec_name: str, kind: str, data: st.DataObject) -> None:
    value = _input(codec_name, kind, data.draw(STRATEGIES[kind]))
    codec = codecs.make_codec(codec_name, kind)
    assert codec.decode(codec.encode(value)) == value


@given(value=STRATEGIES[payloads.NESTED])
@settings(max_examples=50, deadline=None)
def test_protobuf_dict_codec_matches_message_bytes(value: dict[str, Any]) -> None:
    codec = ProtobufDictCodec(payloads.NESTED)
    message = MESSAGES[payloads.NESTED](**value)
    decoded = MESSAGES[payloads.NESTED].FromString(codec.encode(value))
    assert decoded == message
    assert codec.to_message(value) == message


def test_schema_codecs_refuse_unknown_kind() -> None:
    for name in ("avro", "protobuf", "protobuf+dict"):
        with pytest.raises(codecs.UnknownKindError, match="no schema"):
            codecs.make_codec(name, "no-such-kind")


def test_unknown_codec_is_reported() -> None:
    with pytest.raises(codecs.UnknownCodecError, match="known:"):
        codecs.make_codec("xml", payloads.TEXT)
    assert issubclass(codecs.UnknownCodecError, codecs.SerializationTestError)


def test_codecs_satisfy_the_protocol_and_label_pickle_unsafe() -> None:
    for name, spec in codecs.CODECS.items():
        codec = spec.factory(payloads.TEXT)
        assert isinstance(codec, codecs.Codec)
        assert codec.name == name
        assert codec.wire_safe == spec.wire_safe == (name != "pickle")


def test_public_names() -> None:
    assert sorted(codecs.__all__) == sorted(
        [
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
    )
    assert codecs.protobuf_backend() in {"upb", "cpp", "python"}
