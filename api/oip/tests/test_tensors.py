"""The tensor mapping of protobuf messages, both ways, and the rules for shapes and datatypes."""

import math
from typing import Any

import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from api.oip.exceptions import InvalidInferRequest, UnmappableField
from api.oip.tensors import Tensor, TensorSpec, fit, mapping_for
from api.oip.tests import shapes_pb2
from proto import model_a_pb2, model_b_pb2


def _specs(message_class: type[Message]) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(s.name, s.datatype, s.shape) for s in mapping_for(message_class.DESCRIPTOR).specs]


def _to_message(message_class: type[Message], *tensors: Tensor) -> Any:
    mapping = mapping_for(message_class.DESCRIPTOR)
    return mapping.to_message(message_class, {t.name: t for t in tensors})


def _tensors(message: Message) -> dict[str, Tensor]:
    return {t.name: t for t in mapping_for(message.DESCRIPTOR).from_message(message)}


def test_model_a_is_one_bytes_tensor_each_way() -> None:
    assert _specs(model_a_pb2.ModelARequest) == [("data", "BYTES", (1,))]
    assert _specs(model_a_pb2.ModelAResponse) == [("reply", "BYTES", (1,))]
    request = _to_message(model_a_pb2.ModelARequest, Tensor("data", "BYTES", (1,), [b"hi"]))
    assert request == model_a_pb2.ModelARequest(data="hi")
    reply = _tensors(model_a_pb2.ModelAResponse(reply="ok"))
    assert reply == {"reply": Tensor("reply", "BYTES", (1,), ["ok"])}


def test_model_b_features_and_the_probabilities_map() -> None:
    assert _specs(model_b_pb2.ModelBRequest) == [("features", "FP64", (-1,))]
    assert _specs(model_b_pb2.ModelBResponse) == [
        ("label", "BYTES", (1,)),
        ("probabilities", "FP64", (-1,)),
        ("probabilities_keys", "BYTES", (-1,)),
    ]
    features = Tensor("features", "FP64", (4,), [5.1, 3.5, 1.4, 0.2])
    request = _to_message(model_b_pb2.ModelBRequest, features)
    assert list(request.features) == [5.1, 3.5, 1.4, 0.2]
    response = model_b_pb2.ModelBResponse(
        label="setosa", probabilities={"virginica": 0.1, "setosa": 0.7, "versicolor": 0.2}
    )
    out = _tensors(response)
    assert out["label"].data == ["setosa"]
    # Keys ascending, values in the same order.
    assert out["probabilities_keys"] == Tensor(
        "probabilities_keys", "BYTES", (3,), ["setosa", "versicolor", "virginica"]
    )
    assert out["probabilities"] == Tensor("probabilities", "FP64", (3,), [0.7, 0.2, 0.1])


def test_every_scalar_type_has_its_datatype() -> None:
    assert _specs(shapes_pb2.Scalars) == [
        ("f64", "FP64", (1,)),
        ("f32", "FP32", (1,)),
        ("i32", "INT32", (1,)),
        ("i64", "INT64", (1,)),
        ("u32", "UINT32", (1,)),
        ("u64", "UINT64", (1,)),
        ("s32", "INT32", (1,)),
        ("s64", "INT64", (1,)),
        ("x32", "UINT32", (1,)),
        ("x64", "UINT64", (1,)),
        ("sx32", "INT32", (1,)),
        ("sx64", "INT64", (1,)),
        ("flag", "BOOL", (1,)),
        ("text", "BYTES", (1,)),
        ("blob", "BYTES", (1,)),
        ("color", "BYTES", (1,)),
    ]


def test_repeated_fields_are_one_dimensional() -> None:
    specs = _specs(shapes_pb2.Repeated)
    assert {shape for _, _, shape in specs} == {(-1,)}
    message = shapes_pb2.Repeated(
        i64=[1, -2],
        flags=[True, False],
        texts=["a", "b"],
        blobs=[b"\xff"],
        colors=[shapes_pb2.RED, shapes_pb2.GREEN],
    )
    out = _tensors(message)
    assert out["i64"] == Tensor("i64", "INT64", (2,), [1, -2])
    assert out["flags"].data == [True, False]
    assert out["texts"].data == ["a", "b"]
    assert out["blobs"].data == [b"\xff"]
    assert out["colors"].data == ["RED", "GREEN"]
    assert out["f64"] == Tensor("f64", "FP64", (0,), [])
    back = _to_message(shapes_pb2.Repeated, *out.values())
    assert back == message


def test_maps_of_any_key_type() -> None:
    assert _specs(shapes_pb2.Maps) == [
        ("scores", "FP64", (-1,)),
        ("scores_keys", "BYTES", (-1,)),
        ("names", "BYTES", (-1,)),
        ("names_keys", "INT64", (-1,)),
        ("counts", "INT32", (-1,)),
        ("counts_keys", "BOOL", (-1,)),
    ]
    message = shapes_pb2.Maps(
        scores={"b": 2.0, "a": 1.0}, names={10: "ten", -1: "minus"}, counts={True: 3}
    )
    out = _tensors(message)
    assert out["names_keys"].data == [-1, 10]
    assert out["names"].data == ["minus", "ten"]
    assert _to_message(shapes_pb2.Maps, *out.values()) == message


def test_a_map_needs_its_keys_and_values_of_equal_length() -> None:
    values = Tensor("scores", "FP64", (2,), [1.0, 2.0])
    with pytest.raises(InvalidInferRequest, match="needs its keys in input 'scores_keys'"):
        _to_message(shapes_pb2.Maps, values)
    with pytest.raises(InvalidInferRequest, match="'scores' is missing"):
        _to_message(shapes_pb2.Maps, Tensor("scores_keys", "BYTES", (1,), [b"a"]))
    with pytest.raises(InvalidInferRequest, match="2 values but 'scores_keys' has 1 keys"):
        _to_message(shapes_pb2.Maps, values, Tensor("scores_keys", "BYTES", (1,), [b"a"]))
    with pytest.raises(InvalidInferRequest, match="repeats a key"):
        _to_message(shapes_pb2.Maps, values, Tensor("scores_keys", "BYTES", (2,), ["a", "a"]))


def test_nested_messages_are_flattened_with_dotted_names() -> None:
    assert _specs(shapes_pb2.Nested) == [
        ("box.label", "BYTES", (1,)),
        ("box.low.x", "FP64", (1,)),
        ("box.low.y", "FP64", (1,)),
        ("box.high.x", "FP64", (1,)),
        ("box.high.y", "FP64", (1,)),
        ("box.weights", "FP32", (-1,)),
        ("box.weights_keys", "BYTES", (-1,)),
        ("id", "INT32", (1,)),
    ]
    message = shapes_pb2.Nested(
        box=shapes_pb2.Box(
            label="cat",
            low=shapes_pb2.Point(x=1, y=2),
            high=shapes_pb2.Point(x=3, y=4),
            weights={"w": 0.5},
        ),
        id=7,
    )
    out = _tensors(message)
    assert out["box.high.y"].data == [4.0]
    assert out["box.weights"].data == [0.5]
    assert _to_message(shapes_pb2.Nested, *out.values()) == message
    # An unset nested message reads as its defaults.
    assert _tensors(shapes_pb2.Nested(id=1))["box.low.x"].data == [0.0]


def test_oneof_members_are_left_out_unless_set() -> None:
    out = _tensors(shapes_pb2.Choice(number=2.5, plain=1))
    assert sorted(out) == ["number", "plain"]
    out = _tensors(shapes_pb2.Choice(point=shapes_pb2.Point(x=1), hint=0))
    assert sorted(out) == ["hint", "plain", "point.x", "point.y"]


def test_two_members_of_one_oneof_are_refused() -> None:
    with pytest.raises(InvalidInferRequest, match=r"'text' and 'number'.*oneof \('value'\)"):
        _to_message(
            shapes_pb2.Choice,
            Tensor("text", "BYTES", (1,), ["a"]),
            Tensor("number", "FP64", (1,), [1.0]),
        )
    message = _to_message(shapes_pb2.Choice, Tensor("point.x", "FP64", (1,), [1.0]))
    assert message.WhichOneof("value") == "point"


@pytest.mark.parametrize(
    ("message_class", "field", "what"),
    [
        (shapes_pb2.RepeatedMessages, "points", "a repeated message"),
        (shapes_pb2.MessageMap, "points", "a map whose values are messages"),
        (shapes_pb2.Recursive, "child", "a message that contains itself"),
    ],
)
def test_unmappable_fields_are_named(message_class: type[Message], field: str, what: str) -> None:
    with pytest.raises(UnmappableField, match=f"field '{field}' of .* is {what}") as caught:
        mapping_for(message_class.DESCRIPTOR)
    assert caught.value.field == field


def test_two_fields_mapping_to_one_tensor_name_are_refused() -> None:
    with pytest.raises(UnmappableField, match="two fields map to the tensor 'm_keys'"):
        mapping_for(shapes_pb2.Clash.DESCRIPTOR)


def test_left_out_inputs_keep_their_defaults_and_unknown_ones_are_refused() -> None:
    assert _to_message(shapes_pb2.Scalars) == shapes_pb2.Scalars()
    with pytest.raises(InvalidInferRequest, match="unknown input 'nope'; the inputs are: f64"):
        _to_message(shapes_pb2.Scalars, Tensor("nope", "FP64", (1,), [1.0]))


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (Tensor("i32", "INT32", (1,), [2**31]), "out of the range of INT32"),
        (Tensor("u32", "UINT32", (1,), [-1]), "out of the range of UINT32"),
        (Tensor("f32", "FP32", (1,), [1e39]), "out of the range of FP32"),
        (Tensor("text", "BYTES", (1,), [b"\xff"]), "not UTF-8 text"),
        (Tensor("color", "BYTES", (1,), [b"BLUE"]), "'BLUE' is not one of COLOR_UNSPECIFIED"),
    ],
)
def test_values_that_do_not_fit_their_field_are_refused(tensor: Tensor, message: str) -> None:
    with pytest.raises(InvalidInferRequest, match=message) as caught:
        _to_message(shapes_pb2.Scalars, tensor)
    assert caught.value.field == tensor.name


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        # Checked in bulk: the element at fault is found behind a NaN or an infinity too.
        (Tensor("f32", "FP32", (3,), [0.5, float("nan"), -1e39]), r"-1e\+39 is out of"),
        (Tensor("f32", "FP32", (3,), [float("inf"), 1e39, 0.0]), r"1e\+39 is out of"),
        (Tensor("i32", "INT32", (3,), [0, 7, -(2**31) - 1]), "out of the range of INT32"),
    ],
)
def test_repeated_values_that_do_not_fit_are_named(tensor: Tensor, message: str) -> None:
    with pytest.raises(InvalidInferRequest, match=message):
        _to_message(shapes_pb2.Repeated, tensor)


def test_repeated_floats_keep_nan_and_infinities() -> None:
    data = [float("nan"), float("inf"), -float("inf"), 1.5]
    out = _to_message(shapes_pb2.Repeated, Tensor("f32", "FP32", (4,), data))
    assert math.isnan(out.f32[0])
    assert list(out.f32)[1:] == [float("inf"), -float("inf"), 1.5]


def test_enums_and_bytes_from_strings() -> None:
    message = _to_message(
        shapes_pb2.Scalars,
        Tensor("color", "BYTES", (1,), ["GREEN"]),
        Tensor("blob", "BYTES", (1,), ["é"]),
    )
    assert message.color == shapes_pb2.GREEN
    assert message.blob == "é".encode()


FEATURES = TensorSpec("features", "FP64", (-1,))
DATA = TensorSpec("data", "BYTES", (1,))


@pytest.mark.parametrize(
    ("spec", "shape", "count", "batched"),
    [
        (FEATURES, (4,), 4, False),
        (FEATURES, (1, 4), 4, True),
        (FEATURES, (0,), 0, False),
        (DATA, (1,), 1, False),
        (DATA, (), 1, False),
        (DATA, (1, 1), 1, True),
    ],
)
def test_shapes_with_and_without_a_batch_of_one(
    spec: TensorSpec, shape: tuple[int, ...], count: int, batched: bool
) -> None:
    tensor = Tensor(spec.name, spec.datatype, shape, [0] * count)
    fitted, with_batch = fit(spec, tensor, "m")
    assert fitted.shape == (count,)
    assert with_batch is batched


def test_a_batch_larger_than_one_is_refused_with_advice() -> None:
    tensor = Tensor("features", "FP32", (2, 4), [0.0] * 8)
    with pytest.raises(InvalidInferRequest, match=r"batch of 2 .* one request per item"):
        fit(FEATURES, tensor, "model_b")


@pytest.mark.parametrize(
    ("spec", "shape"),
    [(DATA, (2,)), (DATA, (1, 1, 1)), (FEATURES, ()), (FEATURES, (1, 2, 2))],
)
def test_shapes_that_fit_no_rule_are_refused(spec: TensorSpec, shape: tuple[int, ...]) -> None:
    count = 1
    for dim in shape:
        count *= dim
    tensor = Tensor(spec.name, spec.datatype, shape, [0] * count)
    with pytest.raises(InvalidInferRequest, match="expects"):
        fit(spec, tensor, "m")


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
def test_float_datatypes_are_interchangeable(datatype: str) -> None:
    fitted, _ = fit(FEATURES, Tensor("features", datatype, (1,), [1.5]), "m")
    assert fitted.datatype == "FP64"


@pytest.mark.parametrize("datatype", ["INT8", "UINT64", "INT64"])
def test_integer_datatypes_are_interchangeable(datatype: str) -> None:
    spec = TensorSpec("i32", "INT32", (1,))
    assert fit(spec, Tensor("i32", datatype, (1,), [3]), "m")[0].datatype == "INT32"


@pytest.mark.parametrize(
    ("spec", "datatype", "hint"),
    [
        (FEATURES, "BYTES", r"expects FP64 \(FP16, FP32 also accepted\)"),
        (FEATURES, "INT32", "expects FP64"),
        (DATA, "FP32", "expects BYTES$"),
        (TensorSpec("flag", "BOOL", (1,)), "INT8", "expects BOOL$"),
    ],
)
def test_wrong_datatypes_are_refused_naming_what_is_expected(
    spec: TensorSpec, datatype: str, hint: str
) -> None:
    with pytest.raises(InvalidInferRequest, match=hint):
        fit(spec, Tensor(spec.name, datatype, (1,), [1]), "m")


_SCALARS = st.builds(
    shapes_pb2.Scalars,
    f64=st.floats(allow_nan=False),
    f32=st.floats(width=32, allow_nan=False),
    i32=st.integers(-(2**31), 2**31 - 1),
    i64=st.integers(-(2**63), 2**63 - 1),
    u32=st.integers(0, 2**32 - 1),
    u64=st.integers(0, 2**64 - 1),
    s32=st.integers(-(2**31), 2**31 - 1),
    sx64=st.integers(-(2**63), 2**63 - 1),
    flag=st.booleans(),
    text=st.text(),
    blob=st.binary(),
    color=st.sampled_from([0, 1, 2]),
)


@settings(deadline=None, database=None)  # no timing flakes on a loaded machine
@given(_SCALARS)
def test_scalars_round_trip(message: Message) -> None:
    back = _to_message(shapes_pb2.Scalars, *_tensors(message).values())
    assert back == message


@settings(deadline=None, database=None)  # no timing flakes on a loaded machine
@given(
    st.builds(
        shapes_pb2.Repeated,
        f32=st.lists(st.floats(width=32, allow_nan=False)),
        u64=st.lists(st.integers(0, 2**64 - 1)),
        texts=st.lists(st.text()),
        blobs=st.lists(st.binary()),
    ),
    st.dictionaries(st.text(), st.floats(allow_nan=False)),
)
def test_repeated_and_maps_round_trip(repeated: Message, scores: dict[str, float]) -> None:
    assert _to_message(shapes_pb2.Repeated, *_tensors(repeated).values()) == repeated
    maps = shapes_pb2.Maps(scores=scores)
    assert _to_message(shapes_pb2.Maps, *_tensors(maps).values()) == maps
