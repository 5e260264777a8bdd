"""A tensor model (declared tensors) over real gRPC on loopback, fakes behind it: raw bytes
passed through both ways, typed contents, a batch in one request, refusals as statuses."""

import struct
from typing import Any

import grpc
import pytest

from api.grpc.tests.served import served
from api.oip.tests import declared_pb2
from api.oip.tests.fakes import FakeCatalog, FakeDispatcher, affine, affine_model, affine_rows
from proto.oip import grpc_service_pb2 as pb

pytestmark = pytest.mark.asyncio

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -1.0, 2.0], [0.0, 0.0, 0.0, 1.0]]
FLAT = [v for row in ROWS for v in row]
EXPECTED = [v for row in affine_rows(ROWS) for v in row]


def _fakes() -> dict[str, Any]:
    return {
        "catalog": FakeCatalog(affine_model()),
        "dispatcher": FakeDispatcher({"affine": affine}),
    }


def _x(shape: list[int], datatype: str = "FP32") -> pb.ModelInferRequest.InferInputTensor:
    return pb.ModelInferRequest.InferInputTensor(name="x", datatype=datatype, shape=shape)


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(p - q) < 1e-5 for p, q in zip(a, b, strict=True))


async def test_metadata_has_the_declared_dims() -> None:
    async with served(**_fakes()) as s:
        meta = await s.stub.ModelMetadata(pb.ModelMetadataRequest(name="affine"))
        assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
            ("x", "FP32", [-1, 4]),
            ("image", "UINT8", [-1, 2, 2, 3]),
        ]
        assert [(t.name, list(t.shape)) for t in meta.outputs] == [("y", [-1, 2]), ("words", [-1])]


async def test_raw_bytes_pass_through_with_a_batch_of_three() -> None:
    raw = struct.pack("<12f", *FLAT)
    image = bytes(range(12)) * 2
    async with served(**_fakes()) as s:
        image_input = pb.ModelInferRequest.InferInputTensor(
            name="image", datatype="UINT8", shape=[2, 2, 2, 3]
        )
        response = await s.stub.ModelInfer(
            pb.ModelInferRequest(
                model_name="affine",
                inputs=[_x([3, 4]), image_input],
                raw_input_contents=[raw, image],
            )
        )
        request: Any = declared_pb2.Affine.FromString(s.dispatcher.runs[0].payload)
        assert (request.x.raw, request.image.raw) == (raw, image)
        y, words = response.outputs
        assert (y.name, y.datatype, list(y.shape)) == ("y", "FP32", [3, 2])
        assert (words.datatype, list(words.shape)) == ("BYTES", [5])
        assert _close(list(struct.unpack("<6f", response.raw_output_contents[0])), EXPECTED)
        assert response.raw_output_contents[1].endswith(b"image 1: 66")


async def test_typed_contents_both_ways() -> None:
    async with served(**_fakes()) as s:
        given = _x([3, 4])
        given.contents.fp32_contents.extend(FLAT)
        response = await s.stub.ModelInfer(
            pb.ModelInferRequest(model_name="affine", inputs=[given])
        )
        y, words = response.outputs
        assert list(y.shape) == [3, 2]
        assert _close(list(y.contents.fp32_contents), EXPECTED)
        assert list(words.contents.bytes_contents) == [b"row 0", b"row 1", b"row 2"]
        assert not response.raw_output_contents


@pytest.mark.parametrize(
    ("given", "raw", "message"),
    [
        (_x([3, 5]), bytes(60), "input 'x' has shape [3, 5]; model 'affine' expects [-1, 4]"),
        (_x([3, 4], "FP64"), bytes(96), "input 'x' has datatype FP64; model 'affine' expects"),
        (_x([3, 4]), bytes(44), "input 'x': shape [3, 4] holds 12 FP32 elements, 48 bytes"),
    ],
)
async def test_wrong_inputs_are_invalid_argument(
    given: pb.ModelInferRequest.InferInputTensor, raw: bytes, message: str
) -> None:
    async with served(**_fakes()) as s:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await s.stub.ModelInfer(
                pb.ModelInferRequest(model_name="affine", inputs=[given], raw_input_contents=[raw])
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert message in (caught.value.details() or "")
        assert not s.dispatcher.runs
