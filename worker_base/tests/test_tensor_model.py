"""Tensor models: derived messages with their tensor options, checked requests, batches."""

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

import worker_base
from conveyor.descriptors import file_descriptor_set, find_message, load_pool
from proto import tensor_pb2
from worker_base import InvalidRequest, TensorModel, TensorSpec
from worker_base.exceptions import InvalidOutput


class Doubler(TensorModel):
    """x (FP32, batched, 2 columns) -> y = 2x; counts its calls."""

    name = "doubler"
    max_batch_size = 8
    inputs = (TensorSpec("x", "FP32", (-1, 2)),)
    outputs = (TensorSpec("y", "FP32", (-1, 2)),)

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    async def infer(self, inputs: dict[str, npt.NDArray[Any]]) -> Mapping[str, npt.ArrayLike]:
        x = inputs["x"]
        self.calls.append(x.shape)
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": x * 2}


class Echo(TensorModel):
    """Any tensors, given at construction, answered unchanged (outputs named as the inputs)."""

    name = "echo-model"

    def __init__(self, *specs: TensorSpec) -> None:
        self.inputs = specs
        self.outputs = specs

    async def infer(self, inputs: dict[str, npt.NDArray[Any]]) -> Mapping[str, npt.ArrayLike]:
        return inputs


def _request_class(model: TensorModel) -> type[Message]:
    return message_factory.GetMessageClass(cast(Descriptor, model.get_request_format()))


def _option(field: Any) -> tuple[str, list[int]]:
    spec = field.GetOptions().Extensions[tensor_pb2.tensor]
    return spec.datatype, list(spec.dims)


def _request(model: TensorModel, **tensors: tuple[Sequence[int], bytes]) -> bytes:
    message = _request_class(model)()
    for name, (shape, raw) in tensors.items():
        getattr(message, name).shape.extend(shape)
        getattr(message, name).raw = raw
    return message.SerializeToString()


def _fp32(rows: Sequence[Sequence[float]]) -> tuple[Sequence[int], bytes]:
    array = np.array(rows, "<f4")
    return array.shape, array.tobytes()


def _array(response: Message | Exception, name: str, dtype: str) -> npt.NDArray[Any]:
    assert isinstance(response, Message), response
    tensor = getattr(response, name)
    return np.frombuffer(tensor.raw, dtype).reshape(tuple(tensor.shape))


def _bytes_raw(*elements: bytes) -> bytes:
    return b"".join(len(e).to_bytes(4, "little") + e for e in elements)


def test_the_messages_carry_each_tensor_spec_as_an_option() -> None:
    model = Doubler()
    request, response = model.get_request_format(), model.get_response_format()
    assert request.full_name == "conveyor.models.doubler.Request"
    assert response.full_name == "conveyor.models.doubler.Response"
    [field] = request.fields
    assert field.name == "x"
    assert field.message_type is not None
    assert field.message_type.full_name == "conveyor.v1.Tensor"
    assert _option(field) == ("FP32", [-1, 2])


def test_the_options_survive_the_registrys_descriptor_set() -> None:
    model = Echo(TensorSpec("image", "UINT8", (-1, 4, 4, 3)), TensorSpec("tags", "BYTES", (-1,)))
    request = model.get_request_format()
    pool = load_pool(file_descriptor_set(request, model.get_response_format()))
    rebuilt = find_message(pool, request.full_name)
    assert request.full_name == "conveyor.models.echo_model.Request"
    options = {field.name: _option(field) for field in rebuilt.fields}
    assert options == {"image": ("UINT8", [-1, 4, 4, 3]), "tags": ("BYTES", [-1])}


def test_specs_set_by_the_constructor_and_the_lazy_export() -> None:
    assert worker_base.TensorModel is TensorModel
    model = Echo(TensorSpec("a", "INT64", (3,)))
    assert [f.name for f in model.get_response_format().fields] == ["a"]
    assert not model.batching
    assert Doubler().batching


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (("x.1", "FP32", (1,)), "not an identifier"),
        (("x", "FLOAT", (1,)), "unknown datatype"),
        (("x", "FP32", (-2,)), "dimensions"),
    ],
)
def test_a_bad_spec_is_refused(spec: tuple[str, str, tuple[int, ...]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TensorSpec(*spec)


@pytest.mark.asyncio
async def test_process_request_decodes_infers_and_encodes() -> None:
    model = Doubler()
    response = await model.process_request(_request(model, x=_fp32([[1, 2], [3, 4]])))
    assert _array(response, "y", "<f4").tolist() == [[2, 4], [6, 8]]


@pytest.mark.parametrize(
    ("tensors", "field", "message"),
    [
        ({}, "x", "missing"),
        ({"x": ((2,), b"\0" * 8)}, "x", r"shape \[2\], expected \[-1, 2\]"),
        ({"x": ((1, 3), b"\0" * 12)}, "x", "expected"),
        ({"x": ((1, 2), b"\0" * 7)}, "x", "7 bytes of data; shape \\[1, 2\\] of FP32 takes 8"),
    ],
)
@pytest.mark.asyncio
async def test_a_request_that_does_not_fit_names_its_tensor(
    tensors: dict[str, tuple[Sequence[int], bytes]], field: str, message: str
) -> None:
    model = Doubler()
    with pytest.raises(InvalidRequest, match=message) as raised:
        await model.process_request(_request(model, **tensors))
    assert raised.value.field == field


@pytest.mark.asyncio
async def test_a_body_that_is_not_the_request_is_invalid() -> None:
    with pytest.raises(InvalidRequest, match="not a doubler request"):
        await Doubler().process_request(b"\xff\xff")


@pytest.mark.asyncio
async def test_bytes_and_bool_tensors() -> None:
    model = Echo(TensorSpec("texts", "BYTES", (-1,)), TensorSpec("flags", "BOOL", (2,)))
    body = _request(model, texts=((3,), _bytes_raw(b"a", b"", b"\xffbc")), flags=((2,), b"\1\0"))
    response = await model.process_request(body)
    assert isinstance(response, Message)
    assert response.texts.raw == _bytes_raw(b"a", b"", b"\xffbc")  # type: ignore[attr-defined]
    assert _array(response, "flags", "?").tolist() == [True, False]
    for tensors, message in [
        ({"texts": ((2,), _bytes_raw(b"a"))}, "1 BYTES elements; shape \\[2\\] takes 2"),
        ({"texts": ((1,), b"\5\0\0\0ab")}, "truncated"),
        ({"texts": ((1,), b"\5\0")}, "truncated"),
        ({"texts": ((0,), b""), "flags": ((2,), b"\1\2")}, "BOOL elements are bytes 0 or 1"),
    ]:
        tensors.setdefault("flags", ((2,), b"\0\0"))
        with pytest.raises(InvalidRequest, match=message):
            await model.process_request(_request(model, **tensors))


@pytest.mark.asyncio
async def test_fp16_round_trip() -> None:
    model = Echo(TensorSpec("h", "FP16", (2, -1)))
    array = np.array([[0.5, -1.25, 65504], [1e-3, 0, 3]], "<f2")
    response = await model.process_request(_request(model, h=(array.shape, array.tobytes())))
    assert _array(response, "h", "<f2").tolist() == array.tolist()


class Outputs(TensorModel):
    """Answers whatever ``result`` is set to."""

    name = "outputs"
    inputs = (TensorSpec("x", "FP32", (-1,)),)
    outputs = (TensorSpec("y", "FP32", (-1,)), TensorSpec("s", "BYTES", (-1,)))
    result: Mapping[str, Any] = {}

    async def infer(self, inputs: dict[str, npt.NDArray[Any]]) -> Mapping[str, npt.ArrayLike]:
        return self.result


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"y": [1.0]}, "no output s"),
        ({"y": [[1.0]], "s": [b"a"]}, r"shape \[1, 1\], not \[-1\]"),
        ({"y": ["a"], "s": [b"a"]}, "not FP32"),
        ({"y": [1.0], "s": [1.0]}, "not BYTES"),
        ({"y": [1.0], "s": np.array([1, b"a"], object)}, "holds a int"),
    ],
)
@pytest.mark.asyncio
async def test_outputs_that_do_not_match_the_specs(result: dict[str, Any], message: str) -> None:
    model = Outputs()
    model.result = result
    with pytest.raises(InvalidOutput, match=message):
        await model.process_request(_request(model, x=((1,), b"\0" * 4)))


@pytest.mark.asyncio
async def test_outputs_cast_within_their_kind_and_text_is_utf8() -> None:
    model = Outputs()
    model.result = {"y": np.array([1.5], np.float64), "s": np.array(["é"], object)}
    response = await model.process_request(_request(model, x=((1,), b"\0" * 4)))
    assert _array(response, "y", "<f4").tolist() == [1.5]
    assert response.s.raw == _bytes_raw("é".encode())  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_batch_runs_stacked_once_and_is_split_by_rows() -> None:
    model = Doubler()
    bodies = [
        _request(model, x=_fp32([[1, 1]])),
        b"\xff\xff",
        _request(model, x=_fp32([[2, 2], [3, 3]])),
        _request(model, x=((0, 2), b"")),
        _request(model, x=_fp32([[4, 4], [5, 5], [6, 6]])),
    ]
    outcomes = await model.process_batch(bodies)
    assert model.calls == [(6, 2)]
    assert _array(outcomes[0], "y", "<f4").tolist() == [[2, 2]]
    assert isinstance(outcomes[1], InvalidRequest)
    assert _array(outcomes[2], "y", "<f4").tolist() == [[4, 4], [6, 6]]
    assert _array(outcomes[3], "y", "<f4").shape == (0, 2)
    assert _array(outcomes[4], "y", "<f4").tolist() == [[8, 8], [10, 10], [12, 12]]


@pytest.mark.asyncio
async def test_a_failed_stacked_call_fails_only_its_own_request() -> None:
    model = Doubler()
    bodies = [_request(model, x=_fp32(rows)) for rows in ([[1, 1]], [[-1, 1]], [[2, 2]])]
    outcomes = await model.process_batch(bodies)
    assert model.calls == [(3, 2), (1, 2), (1, 2), (1, 2)]
    assert _array(outcomes[0], "y", "<f4").tolist() == [[2, 2]]
    assert isinstance(outcomes[1], ValueError)
    assert _array(outcomes[2], "y", "<f4").tolist() == [[4, 4]]


class Images(TensorModel):
    """Images of any size: only those of one size stack."""

    name = "images"
    inputs = (TensorSpec("image", "UINT8", (-1, -1, -1)),)
    outputs = (TensorSpec("mean", "FP64", (-1,)),)

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    async def infer(self, inputs: dict[str, npt.NDArray[Any]]) -> Mapping[str, npt.ArrayLike]:
        image = inputs["image"]
        self.calls.append(image.shape)
        return {"mean": image.reshape(image.shape[0], -1).mean(axis=1)}


@pytest.mark.asyncio
async def test_requests_stack_in_groups_whose_other_dimensions_agree() -> None:
    model = Images()
    sizes = [(1, 2, 2), (2, 3, 3), (1, 2, 2), (1, 3, 3)]
    bodies = [
        _request(model, image=(size, bytes([i]) * int(np.prod(size))))
        for i, size in enumerate(sizes)
    ]
    outcomes = await model.process_batch(bodies)
    assert model.calls == [(2, 2, 2), (3, 3, 3)]
    assert [_array(o, "mean", "<f8").tolist() for o in outcomes] == [[0], [1, 1], [2], [3]]


@pytest.mark.asyncio
async def test_a_model_without_a_batch_dimension_runs_requests_one_by_one() -> None:
    model = Echo(TensorSpec("a", "INT32", (2,)))
    bodies = [_request(model, a=((2,), np.array([i, i], "<i4").tobytes())) for i in range(3)]
    outcomes = await model.process_batch(bodies)
    assert [_array(o, "a", "<i4").tolist() for o in outcomes] == [[0, 0], [1, 1], [2, 2]]


@pytest.mark.asyncio
async def test_the_example_request_is_a_valid_request() -> None:
    model = Echo(TensorSpec("x", "FP32", (-1, 3)), TensorSpec("t", "BYTES", (2,)))
    example = model.example_request()
    message = json_format.ParseDict(example, _request_class(model)())
    response = await model.process_request(message.SerializeToString())
    assert _array(response, "x", "<f4").tolist() == [[0, 0, 0]]
    assert Echo(TensorSpec("image", "UINT8", (-1, 224, 224, 3))).example_request() == {}
