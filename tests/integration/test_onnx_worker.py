"""The ONNX worker as a real process (``python -m models.onnx``) serving both examples: model_b's
classifier converted to ONNX (its derived messages registered with their tensor options;
``/predict`` and ``/v2`` answer as ONNX Runtime does in-process; a request of the wrong shape is
refused naming the tensor), and the image model, inferred by ``tritonclient`` over REST with
binary data and over gRPC, a batch of images in one request, with the scores of ONNX Runtime
in-process."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import numpy as np
import onnxruntime
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from conveyor.descriptors import find_message, load_pool
from models.onnx.__main__ import BUNDLED_MODEL
from proto import tensor_pb2
from tests.integration.stack import Stack, free_port

IRIS = BUNDLED_MODEL.parent / "iris.onnx"
IMAGES = np.random.default_rng(33).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)


class OnnxServed(Stack):
    """A registry and a gateway with gRPC on a free port (each test starts its worker)."""

    def __init__(self) -> None:
        self.grpc_port = free_port()
        super().__init__(GRPC_PORT=str(self.grpc_port))


@pytest.fixture(scope="module")
def stack() -> Iterator[OnnxServed]:
    with OnnxServed() as stack:
        yield stack


def _tensor(array: np.ndarray) -> dict[str, object]:
    return {"shape": list(array.shape), "raw": base64.b64encode(array.tobytes()).decode()}


def test_the_onnx_worker_serves_iris(stack: OnnxServed) -> None:
    model = stack.model_name("iris")
    stack.start_worker("models.onnx", model, MODEL_PATH=str(IRIS), METRICS_PORT="0")

    detail = stack.http.get(f"{stack.registry_url}/models/{model}").json()
    pool = load_pool(base64.b64decode(detail["request"]["descriptor_set"]))
    request = find_message(pool, detail["request"]["type"])
    [field] = request.fields
    option: tensor_pb2.TensorSpec = field.GetOptions().Extensions[tensor_pb2.tensor]  # type: ignore[index]
    assert (field.name, option.datatype, list(option.dims)) == ("features", "FP32", [-1, 4])
    assert detail["versions"][0]["version"] == "1"

    features = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], "<f4")
    label, probabilities = onnxruntime.InferenceSession(str(IRIS)).run(None, {"features": features})
    answer = stack.http.post(f"/predict/{model}", json={"features": _tensor(features)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [int(d) for d in body["label"]["shape"]] == [2]
    assert np.frombuffer(base64.b64decode(body["label"]["raw"]), "<i8").tolist() == label.tolist()
    served = np.frombuffer(base64.b64decode(body["probabilities"]["raw"]), "<f4")
    np.testing.assert_allclose(served.reshape(2, 3), probabilities, rtol=1e-5)

    wrong = stack.http.post(f"/predict/{model}", json={"features": _tensor(features[:, :3])})
    assert wrong.status_code == 422, wrong.text
    assert "features" in wrong.text

    v2 = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 4],
                      "data": features.ravel().tolist()}]}  # fmt: skip
    answer = stack.http.post(f"/v2/models/{model}/infer", json=v2)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert (outputs["label"]["datatype"], outputs["label"]["shape"]) == ("INT64", [2])
    assert outputs["label"]["data"] == label.tolist()
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]["data"]).reshape(2, 3), probabilities, rtol=1e-5
    )


def test_tritonclient_infers_the_image_model_as_onnx_runtime_does(stack: OnnxServed) -> None:
    model = stack.model_name("image")
    stack.start_worker("models.onnx", model, MODEL_PATH=str(BUNDLED_MODEL), METRICS_PORT="0")
    (want,) = onnxruntime.InferenceSession(str(BUNDLED_MODEL)).run(None, {"image": IMAGES})

    http = triton_http.InferenceServerClient(
        httpx.URL(stack.api_url).netloc.decode(), network_timeout=60.0
    )
    try:
        metadata = http.get_model_metadata(model)
        assert metadata["inputs"] == [{"name": "image", "datatype": "UINT8",
                                       "shape": [-1, 224, 224, 3]}]  # fmt: skip
        assert metadata["outputs"] == [{"name": "scores", "datatype": "FP32",
                                        "shape": [-1, 1000]}]  # fmt: skip
        image = triton_http.InferInput("image", list(IMAGES.shape), "UINT8")
        image.set_data_from_numpy(IMAGES, binary_data=True)
        scores = triton_http.InferRequestedOutput("scores", binary_data=True)
        result = http.infer(model, [image], outputs=[scores])
        np.testing.assert_allclose(result.as_numpy("scores"), want, rtol=1e-4, atol=1e-5)
    finally:
        http.close()

    grpc = triton_grpc.InferenceServerClient(f"127.0.0.1:{stack.grpc_port}")
    try:
        image = triton_grpc.InferInput("image", [1, 224, 224, 3], "UINT8")
        image.set_data_from_numpy(IMAGES[:1])
        result = grpc.infer(model, [image])
        np.testing.assert_allclose(result.as_numpy("scores"), want[:1], rtol=1e-4, atol=1e-5)
    finally:
        grpc.close()
