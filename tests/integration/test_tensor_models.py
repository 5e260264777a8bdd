"""A tensor model (declared tensors, ``affine.proto``) on a real stack, through
``tritonclient.http`` (JSON and binary data), ``tritonclient.grpc`` and ``/predict``: values,
shapes, a batch in one request, the metadata and configuration, and refusals."""

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.integration.stack import Stack, free_port
from tests.integration.tensor_model import MATRIX

ROWS = np.array([[1, 2, 3, 4], [0.5, 0, -1, 2], [0, 0, 0, 1]], dtype=np.float32)
IMAGES = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3)


class TensorServed(Stack):
    """A registry, a gateway with gRPC on a free port, and one tensor model worker."""

    def __init__(self) -> None:
        self.grpc_port = free_port()
        super().__init__(RESULT_TTL="600", GRPC_PORT=str(self.grpc_port))
        try:
            self.model = self.model_name("affine")
            self.start_worker("tests.integration.tensor_model", self.model)
        except BaseException:
            self.close()
            raise


@pytest.fixture(scope="module")
def stack() -> Iterator[TensorServed]:
    with TensorServed() as stack:
        yield stack


@pytest.fixture
def http_client(stack: TensorServed) -> Iterator[triton_http.InferenceServerClient]:
    client = triton_http.InferenceServerClient(
        httpx.URL(stack.api_url).netloc.decode(), network_timeout=30.0
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def grpc_client(stack: TensorServed) -> Iterator[triton_grpc.InferenceServerClient]:
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{stack.grpc_port}")
    try:
        yield client
    finally:
        client.close()


def _inputs(module: Any, binary: bool | None = None) -> list[Any]:
    x = module.InferInput("x", list(ROWS.shape), "FP32")
    image = module.InferInput("image", list(IMAGES.shape), "UINT8")
    for tensor, array in ((x, ROWS), (image, IMAGES)):
        if binary is None:
            tensor.set_data_from_numpy(array)
        else:
            tensor.set_data_from_numpy(array, binary_data=binary)
    return [x, image]


def _check(result: Any) -> None:
    y = result.as_numpy("y")
    assert y.dtype == np.float32 and y.shape == (3, 2)
    np.testing.assert_allclose(y, ROWS @ np.array(MATRIX, dtype=np.float32), rtol=1e-6)
    brightness = result.as_numpy("brightness")
    assert brightness.dtype == np.int64
    assert brightness.tolist() == [int(image.sum()) for image in IMAGES]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_http_a_batch_of_three(
    http_client: triton_http.InferenceServerClient, stack: TensorServed, binary: bool
) -> None:
    outputs = [
        triton_http.InferRequestedOutput(name, binary_data=binary) for name in ("y", "brightness")
    ]
    _check(http_client.infer(stack.model, _inputs(triton_http, binary), outputs=outputs))


def test_grpc_a_batch_of_three(
    grpc_client: triton_grpc.InferenceServerClient, stack: TensorServed
) -> None:
    _check(grpc_client.infer(stack.model, _inputs(triton_grpc)))


def test_metadata_and_configuration(
    http_client: triton_http.InferenceServerClient,
    grpc_client: triton_grpc.InferenceServerClient,
    stack: TensorServed,
) -> None:
    meta = http_client.get_model_metadata(stack.model)
    assert meta["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "image", "datatype": "UINT8", "shape": [-1, 2, 2, 3]},
    ]
    assert meta["outputs"][1] == {"name": "brightness", "datatype": "INT64", "shape": [-1]}
    config = http_client.get_model_config(stack.model)
    assert config["max_batch_size"] == 2**31 - 1
    assert config["input"][0] == {"name": "x", "data_type": "TYPE_FP32", "dims": [4]}
    grpc_config = grpc_client.get_model_config(stack.model).config
    assert grpc_config.max_batch_size == 2**31 - 1
    assert list(grpc_config.input[1].dims) == [2, 2, 3]


@pytest.mark.parametrize(
    ("shape", "datatype", "message"),
    [
        ([3, 5], "FP32", "input 'x' has shape [3, 5]; model '{model}' expects [-1, 4]"),
        ([3, 4], "FP64", "input 'x' has datatype FP64; model '{model}' expects FP32"),
    ],
)
def test_wrong_shapes_and_datatypes_are_refused(
    http_client: triton_http.InferenceServerClient,
    grpc_client: triton_grpc.InferenceServerClient,
    stack: TensorServed,
    shape: list[int],
    datatype: str,
    message: str,
) -> None:
    expected = message.format(model=stack.model)
    dtype = np.float64 if datatype == "FP64" else np.float32
    array = np.zeros(shape, dtype=dtype)
    for module, client in ((triton_http, http_client), (triton_grpc, grpc_client)):
        x = module.InferInput("x", shape, datatype)
        x.set_data_from_numpy(array)
        with pytest.raises(InferenceServerException) as caught:
            client.infer(stack.model, [x])
        assert expected in str(caught.value.message())
        status = "400" if module is triton_http else "StatusCode.INVALID_ARGUMENT"
        assert caught.value.status() == status


def test_predict_in_the_protobuf_json_mapping(stack: TensorServed) -> None:
    raw = base64.b64encode(ROWS[:1].tobytes()).decode()
    response = stack.http.post(f"/predict/{stack.model}", json={"x": {"shape": [1, 4], "raw": raw}})
    assert response.status_code == 200, response.text
    y = response.json()["y"]
    assert y["shape"] == ["1", "2"]
    values = struct.unpack("<2f", base64.b64decode(y["raw"]))
    np.testing.assert_allclose(values, (ROWS[:1] @ np.array(MATRIX, dtype=np.float32))[0])
    described = stack.http.get(f"/models/{stack.model}").json()
    x = described["request"]["fields"][0]
    assert (x["name"], x["tensor"]) == ("x", {"datatype": "FP32", "dims": [-1, 4]})
