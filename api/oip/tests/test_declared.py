"""Declared tensors (``conveyor.v1.Tensor`` fields with the ``(conveyor.v1.tensor)`` option): their
specs, the shapes and datatypes they take, their bytes both ways, and their JSON schema."""

import base64
import struct
from typing import Any

import pytest
from google.protobuf.message import Message

from api.json_schema import Direction, standalone_schema
from api.oip.exceptions import InvalidInferRequest, UnmappableField
from api.oip.tensors import Tensor, TensorSpec, fit, mapping_for
from api.oip.tests import declared_pb2
from api.schema_check import compile_schema
from conveyor.descriptors import describe_message, file_descriptor_set, load_pool, message_class

X = TensorSpec("x", "FP32", (-1, 4), declared=True)


def _rebuilt(message_class_: type[Message]) -> type[Message]:
    """The message class as the gateway has it: rebuilt from a descriptor set, in a new pool."""
    descriptor = message_class_.DESCRIPTOR
    pool = load_pool(file_descriptor_set(descriptor))
    return message_class(pool, descriptor.full_name)


def _specs(message_class_: type[Message]) -> list[tuple[str, str, tuple[int, ...], bool]]:
    return [
        (s.name, s.datatype, s.shape, s.declared)
        for s in mapping_for(message_class_.DESCRIPTOR).specs
    ]


@pytest.mark.parametrize("rebuilt", [False, True], ids=["generated", "rebuilt"])
def test_a_declared_tensor_is_one_tensor_of_its_datatype_and_dims(rebuilt: bool) -> None:
    request = _rebuilt(declared_pb2.Affine) if rebuilt else declared_pb2.Affine
    response = _rebuilt(declared_pb2.AffineResult) if rebuilt else declared_pb2.AffineResult
    assert _specs(request) == [
        ("x", "FP32", (-1, 4), True),
        ("image", "UINT8", (-1, 2, 2, 3), True),
    ]
    assert _specs(response) == [("y", "FP32", (-1, 2), True), ("words", "BYTES", (-1,), True)]
    assert mapping_for(request.DESCRIPTOR).declared == {"x", "image"}
    assert mapping_for(request.DESCRIPTOR).specs[0].metadata() == {
        "name": "x",
        "datatype": "FP32",
        "shape": [-1, 4],
    }


def test_a_tensor_field_without_the_option_is_an_ordinary_message() -> None:
    assert _specs(declared_pb2.Mixed) == [
        ("grid", "INT16", (2, -1), True),
        ("scale", "FP32", (1,), False),
        ("plain.shape", "INT64", (-1,), False),
        ("plain.raw", "BYTES", (1,), False),
        ("flags", "BOOL", (-1,), True),
        ("half", "FP16", (-1,), True),
    ]
    assert mapping_for(declared_pb2.Mixed.DESCRIPTOR).declared == {"grid", "flags", "half"}


@pytest.mark.parametrize(
    ("message_class_", "what"),
    [
        (declared_pb2.OptionOnFloats, "not a conveyor.v1.Tensor"),
        (declared_pb2.UnknownDatatype, "a tensor of unknown datatype 'FP8'"),
        (declared_pb2.RepeatedTensors, "a repeated conveyor.v1.Tensor"),
    ],
)
def test_the_option_where_it_has_no_meaning_is_unmappable(
    message_class_: type[Message], what: str
) -> None:
    with pytest.raises(UnmappableField, match=f"field 'x' of .* is {what}"):
        mapping_for(message_class_.DESCRIPTOR)


@pytest.mark.parametrize("shape", [(1, 4), (3, 4), (0, 4)])
def test_any_batch_along_the_leading_minus_one(shape: tuple[int, int]) -> None:
    raw = bytes(4 * shape[0] * 4)
    tensor = Tensor("x", "FP32", shape, [], raw)
    assert fit(X, tensor, "m") == (tensor, False)
    listed = Tensor("x", "FP32", shape, [0.0] * (shape[0] * 4))
    assert fit(X, listed, "m") == (listed, False)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (
            Tensor("x", "FP32", (4,), [], bytes(16)),
            r"input 'x' has shape \[4\]; model 'm' expects \[-1, 4\] \(-1: any size\)",
        ),
        (Tensor("x", "FP32", (2, 5), [], bytes(40)), r"has shape \[2, 5\]; model 'm' expects"),
        (Tensor("x", "FP32", (1, 1, 4), [], bytes(16)), r"has shape \[1, 1, 4\]"),
        (Tensor("x", "FP64", (1, 4), [], bytes(32)), "has datatype FP64; model 'm' expects FP32$"),
        (
            Tensor("x", "FP32", (2, 4), [], bytes(28)),
            r"input 'x': shape \[2, 4\] holds 8 FP32 elements, 32 bytes, but the data is 28",
        ),
    ],
)
def test_wrong_shapes_datatypes_and_byte_counts_are_refused(tensor: Tensor, message: str) -> None:
    with pytest.raises(InvalidInferRequest, match=message) as caught:
        fit(X, tensor, "m")
    assert caught.value.field == "x"


def test_bool_and_bytes_data_are_checked() -> None:
    flags = TensorSpec("flags", "BOOL", (-1,), declared=True)
    assert fit(flags, Tensor("flags", "BOOL", (2,), [], b"\x01\x00"), "m")[1] is False
    with pytest.raises(InvalidInferRequest, match="must be the byte 0 or 1"):
        fit(flags, Tensor("flags", "BOOL", (2,), [], b"\x01\x02"), "m")
    words = TensorSpec("words", "BYTES", (-1,), declared=True)
    two = struct.pack("<I", 2) + b"hi" + struct.pack("<I", 0)
    assert fit(words, Tensor("words", "BYTES", (2,), [], two), "m")[0].raw == two
    with pytest.raises(InvalidInferRequest, match=r"shape \[3\] holds 3 elements but .* has 2"):
        fit(words, Tensor("words", "BYTES", (3,), [], two), "m")
    with pytest.raises(InvalidInferRequest, match="ends inside an element"):
        fit(words, Tensor("words", "BYTES", (2,), [], two[:-1]), "m")


def test_bytes_pass_through_both_ways() -> None:
    raw = struct.pack("<8f", *range(8))
    image = bytes(range(24))
    mapping = mapping_for(declared_pb2.Affine.DESCRIPTOR)
    message: Any = mapping.to_message(
        declared_pb2.Affine,
        {
            "x": Tensor("x", "FP32", (2, 4), [], raw),
            "image": Tensor("image", "UINT8", (2, 2, 2, 3), [], image),
        },
    )
    assert list(message.x.shape) == [2, 4]
    assert message.x.raw == raw
    assert list(message.image.shape) == [2, 2, 2, 3]
    assert message.image.raw == image
    out = {t.name: t for t in mapping.from_message(message)}
    assert out["x"] == Tensor("x", "FP32", (2, 4), [], raw)
    assert out["x"].elements() == [float(i) for i in range(8)]
    assert out["image"].binary() is out["image"].raw == image


def test_listed_elements_are_packed() -> None:
    mapping = mapping_for(declared_pb2.Mixed.DESCRIPTOR)
    message: Any = mapping.to_message(
        declared_pb2.Mixed,
        {
            "grid": Tensor("grid", "INT16", (2, 2), [1, -2, 3, -4]),
            "flags": Tensor("flags", "BOOL", (3,), [True, False, True]),
            "half": Tensor("half", "FP16", (1,), [1.5]),
            "scale": Tensor("scale", "FP32", (1,), [2.0]),
        },
    )
    assert message.grid.raw == struct.pack("<4h", 1, -2, 3, -4)
    assert message.flags.raw == b"\x01\x00\x01"
    assert message.half.raw == struct.pack("<e", 1.5)
    assert message.scale == 2.0


def test_a_declared_output_left_unset_is_left_out() -> None:
    message = declared_pb2.AffineResult()
    message.y.shape.extend([0, 2])
    out = mapping_for(declared_pb2.AffineResult.DESCRIPTOR).from_message(message)
    assert [t.name for t in out] == ["y"]
    assert out[0].shape == (0, 2)


def test_the_registry_describes_the_declared_datatype_and_dims() -> None:
    fields = describe_message(_rebuilt(declared_pb2.Mixed).DESCRIPTOR)["fields"]
    by_name = {f["name"]: f for f in fields}
    assert by_name["grid"]["tensor"] == {"datatype": "INT16", "dims": [2, -1]}
    assert by_name["grid"]["message_type"] == "conveyor.v1.Tensor"
    assert "tensor" not in by_name["plain"]
    assert "tensor" not in by_name["scale"]


def test_the_json_schema_describes_a_declared_tensor() -> None:
    request: Any = _rebuilt(declared_pb2.Affine).DESCRIPTOR
    schema = standalone_schema(request, Direction.READ)
    x = schema["$defs"]["conveyor.test.oip.Affine"]["properties"]["x"]
    [declared, null] = x["anyOf"]
    assert null == {"type": "null"}
    assert declared["$ref"] == "#/$defs/conveyor.v1.Tensor"
    assert declared["description"].startswith("a FP32 tensor of dims [-1, 4] (-1: any size)")
    tensor = schema["$defs"]["conveyor.v1.Tensor"]["properties"]
    assert tensor["shape"]["type"] == ["array", "null"]
    assert tensor["raw"]["contentEncoding"] == "base64"
    check = compile_schema(schema)
    raw = base64.b64encode(struct.pack("<4f", 1, 2, 3, 4)).decode()
    assert check({"x": {"shape": [1, "4"], "raw": raw}}) is None
    assert check({"x": {"shape": [1, 4], "raw": "not base64!"}}) is not None
    response: Any = _rebuilt(declared_pb2.AffineResult).DESCRIPTOR
    written = standalone_schema(response, Direction.WRITE)
    y = written["$defs"]["conveyor.test.oip.AffineResult"]["properties"]["y"]
    assert "BYTES" not in y["description"] and "FP32 tensor of dims [-1, 2]" in y["description"]
