"""The ONNX worker as a real process (``python -m models.onnx``) serving model_b's classifier
converted to ONNX: it registers its derived messages with their tensor options, answers
``/predict`` as ONNX Runtime does in-process, and refuses a request of the wrong shape naming
the tensor."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import numpy as np
import onnxruntime
import pytest

from conveyor.descriptors import find_message, load_pool
from models.onnx.__main__ import BUNDLED_MODEL
from proto import tensor_pb2
from tests.integration.stack import Stack

IRIS = BUNDLED_MODEL.parent / "iris.onnx"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack() as stack:
        yield stack


def _tensor(array: np.ndarray) -> dict[str, object]:
    return {"shape": list(array.shape), "raw": base64.b64encode(array.tobytes()).decode()}


def test_the_onnx_worker_serves_iris(stack: Stack) -> None:
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
