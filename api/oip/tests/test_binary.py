"""The binary tensor data codec: element layouts, body splitting, and round trips."""

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.oip.binary import (
    HEADER_LENGTH,
    BinaryReader,
    decode_elements,
    encode_elements,
    join_body,
    split_body,
)
from api.oip.datatypes import FLOAT_MAXIMA, INTEGER_RANGES, STRUCT_FORMATS
from api.oip.exceptions import InvalidInferRequest


def test_layouts_are_little_endian_and_native_size() -> None:
    assert encode_elements("INT32", [1, -2]) == b"\x01\x00\x00\x00\xfe\xff\xff\xff"
    assert encode_elements("UINT16", [258]) == b"\x02\x01"
    assert encode_elements("FP64", [1.5]) == struct.pack("<d", 1.5)
    assert encode_elements("FP16", [1.0]) == b"\x00\x3c"
    assert encode_elements("BOOL", [True, False]) == b"\x01\x00"


def test_bytes_elements_are_length_prefixed() -> None:
    encoded = encode_elements("BYTES", [b"ab", "é", b""])
    assert encoded == b"\x02\x00\x00\x00ab" + b"\x02\x00\x00\x00\xc3\xa9" + b"\x00\x00\x00\x00"
    assert decode_elements("BYTES", encoded, "t") == [b"ab", "é".encode(), b""]


def test_partial_elements_are_refused_naming_the_tensor() -> None:
    with pytest.raises(InvalidInferRequest, match="'x': 6 bytes are not whole FP32"):
        decode_elements("FP32", b"\x00" * 6, "x")


@pytest.mark.parametrize("raw", [b"\x05\x00\x00\x00abc", b"\x01\x00"])
def test_truncated_bytes_elements_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidInferRequest, match="ends inside an element") as caught:
        decode_elements("BYTES", raw, "words")
    assert caught.value.field == "words"


def test_bool_bytes_must_be_zero_or_one() -> None:
    assert decode_elements("BOOL", b"\x00\x01", "b") == [False, True]
    with pytest.raises(InvalidInferRequest, match="0 or 1"):
        decode_elements("BOOL", b"\x02", "b")


def test_body_without_header_is_all_json() -> None:
    assert split_body(b'{"a": 1}', None) == (b'{"a": 1}', b"")


def test_body_splits_at_the_header_length() -> None:
    assert split_body(b'{"a":1}\x01\x02', "7") == (b'{"a":1}', b"\x01\x02")
    assert join_body(b'{"a":1}', [b"\x01", b"\x02"]) == b'{"a":1}\x01\x02'


@pytest.mark.parametrize("header", ["0", "-3", "99", "seven", ""])
def test_header_length_outside_the_body_is_refused(header: str) -> None:
    with pytest.raises(InvalidInferRequest, match=HEADER_LENGTH):
        split_body(b"{}xx", header)


def test_reader_hands_out_chunks_in_order_and_checks_the_rest() -> None:
    reader = BinaryReader(b"abcdef")
    assert reader.take(2, "first") == b"ab"
    assert reader.take(0, "empty") == b""
    with pytest.raises(InvalidInferRequest, match="binary_data_size is 5 but only 4"):
        reader.take(5, "second")
    assert reader.take(3, "second") == b"cde"
    with pytest.raises(InvalidInferRequest, match="1 bytes of binary data"):
        reader.finish()


@pytest.mark.parametrize("size", [-1, 1.5, "2", True, None])
def test_reader_refuses_sizes_that_are_not_counts(size: Any) -> None:
    with pytest.raises(InvalidInferRequest, match="binary_data_size must be a byte count"):
        BinaryReader(b"ab").take(size, "t")


def _elements(datatype: str) -> st.SearchStrategy[list[Any]]:
    if datatype in INTEGER_RANGES:
        low, high = INTEGER_RANGES[datatype]
        return st.lists(st.integers(low, high))
    if datatype == "BOOL":
        return st.lists(st.booleans())
    width = {"FP16": 16, "FP32": 32, "FP64": 64}[datatype]
    return st.lists(st.floats(width=width, allow_nan=False))  # type: ignore[arg-type]


@pytest.mark.parametrize("datatype", sorted(STRUCT_FORMATS))
@settings(deadline=None, database=None)  # no timing flakes on a loaded machine
@given(data=st.data())
def test_fixed_size_round_trip(datatype: str, data: st.DataObject) -> None:
    values = data.draw(_elements(datatype))
    encoded = encode_elements(datatype, values)
    assert len(encoded) == len(values) * struct.calcsize(STRUCT_FORMATS[datatype])
    assert decode_elements(datatype, encoded, "t") == values


@settings(deadline=None, database=None)  # no timing flakes on a loaded machine
@given(st.lists(st.binary(max_size=300)))
def test_bytes_round_trip(values: list[bytes]) -> None:
    assert decode_elements("BYTES", encode_elements("BYTES", values), "t") == values


@settings(deadline=None, database=None)  # no timing flakes on a loaded machine
@given(
    st.binary(min_size=2, max_size=200),
    st.lists(st.lists(st.binary(max_size=20), max_size=4), max_size=4),
)
def test_body_round_trip(header: bytes, tensors: list[list[bytes]]) -> None:
    buffers = [encode_elements("BYTES", values) for values in tensors]
    head, rest = split_body(join_body(header, buffers), str(len(header)))
    assert head == header
    reader = BinaryReader(rest)
    decoded = [decode_elements("BYTES", reader.take(len(b), "t"), "t") for b in buffers]
    reader.finish()
    assert decoded == tensors


def test_float_maxima_are_the_formats_own() -> None:
    for datatype, maximum in FLOAT_MAXIMA.items():
        code = "<" + STRUCT_FORMATS[datatype]
        assert struct.unpack(code, struct.pack(code, maximum))[0] == maximum
