"""The ONNX worker on the example graphs: its tensors are the graph's, and a request or a batch
through it gives what ONNX Runtime gives in-process."""

from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import onnxruntime
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from onnx import TensorProto, helper

from models.onnx.__main__ import BUNDLED_MODEL, ServerSettings
from worker_base import InvalidRequest, TensorModel, TensorSpec
from worker_base.onnx_model import OnnxModel, OnnxSettings

EXAMPLES = BUNDLED_MODEL.parent
IRIS = EXAMPLES / "iris.onnx"
IMAGE = EXAMPLES / "image.onnx"


def _model(path: Path, **settings: Any) -> OnnxModel:
    return OnnxModel(OnnxSettings(model_path=path, **settings))


def _raw(model: TensorModel, name: str, shape: tuple[int, ...], raw: bytes) -> bytes:
    request = message_factory.GetMessageClass(cast(Descriptor, model.get_request_format()))()
    getattr(request, name).shape.extend(shape)
    getattr(request, name).raw = raw
    return request.SerializeToString()


def _body(model: TensorModel, **arrays: npt.NDArray[Any]) -> bytes:
    request = message_factory.GetMessageClass(cast(Descriptor, model.get_request_format()))()
    for name, array in arrays.items():
        getattr(request, name).shape.extend(array.shape)
        getattr(request, name).raw = array.tobytes()
    return request.SerializeToString()


def _output(response: Message | Exception, name: str, dtype: str) -> npt.NDArray[Any]:
    assert isinstance(response, Message), response
    tensor = getattr(response, name)
    return np.frombuffer(tensor.raw, dtype).reshape(tuple(tensor.shape))


def test_the_specs_are_the_graphs() -> None:
    iris = _model(IRIS)
    assert (iris.name, iris.version) == ("iris", "1")
    assert list(iris.inputs) == [TensorSpec("features", "FP32", (-1, 4))]
    assert list(iris.outputs) == [
        TensorSpec("label", "INT64", (-1,)),
        TensorSpec("probabilities", "FP32", (-1, 3)),
    ]
    assert iris.batching and iris.max_batch_size == 32
    image = _model(IMAGE, model_name="classifier", model_version="7")
    assert (image.name, image.version) == ("classifier", "7")
    assert list(image.inputs) == [TensorSpec("image", "UINT8", (-1, 224, 224, 3))]
    assert list(image.outputs) == [TensorSpec("scores", "FP32", (-1, 1000))]
    assert image.get_request_format().full_name == "conveyor.models.classifier.Request"


def test_the_in_repo_server_serves_the_bundled_image_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_PATH", raising=False)
    monkeypatch.delenv("MODEL_NAME", raising=False)
    model = OnnxModel(ServerSettings())
    assert model.name == "onnx"
    assert model.settings.model_path == BUNDLED_MODEL


@pytest.mark.asyncio
async def test_iris_scores_match_onnxruntime_alone() -> None:
    model = _model(IRIS)
    await model.load()
    features = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], "<f4")
    label, probabilities = onnxruntime.InferenceSession(str(IRIS)).run(None, {"features": features})
    assert label.tolist() == [0, 2, 1]
    single = await model.process_request(_body(model, features=features))
    assert _output(single, "label", "<i8").tolist() == label.tolist()
    np.testing.assert_allclose(_output(single, "probabilities", "<f4"), probabilities, rtol=1e-5)
    bodies = [_body(model, features=features[i : i + 1]) for i in range(3)]
    batch = await model.process_batch(bodies)
    for i, response in enumerate(batch):
        assert _output(response, "label", "<i8").tolist() == [label[i]]
        np.testing.assert_allclose(
            _output(response, "probabilities", "<f4"), probabilities[i : i + 1], rtol=1e-5
        )


@pytest.mark.asyncio
async def test_image_scores_match_onnxruntime_alone() -> None:
    model = _model(IMAGE)
    await model.load()
    images = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    [scores] = onnxruntime.InferenceSession(str(IMAGE)).run(None, {"image": images})
    assert scores.shape == (3, 1000)
    single = await model.process_request(_body(model, image=images[:1]))
    np.testing.assert_allclose(_output(single, "scores", "<f4"), scores[:1], rtol=1e-4, atol=1e-5)
    bodies = [_body(model, image=images[:2]), b"\xff", _body(model, image=images[2:])]
    batch = await model.process_batch(bodies)
    np.testing.assert_allclose(_output(batch[0], "scores", "<f4"), scores[:2], rtol=1e-4, atol=1e-5)
    assert isinstance(batch[1], InvalidRequest)
    np.testing.assert_allclose(_output(batch[2], "scores", "<f4"), scores[2:], rtol=1e-4, atol=1e-5)
    wrong = _body(model, image=np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(InvalidRequest, match="expected"):
        await model.process_request(wrong)


def _graph(path: Path, input_type: int, name: str, shape: list[Any]) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], ["out:0"])],
        "identity",
        [helper.make_tensor_value_info(name, input_type, shape)],
        [helper.make_tensor_value_info("out:0", input_type, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.asyncio
async def test_names_become_identifiers_and_strings_bytes(tmp_path: Path) -> None:
    path = _graph(tmp_path / "echo.onnx", TensorProto.STRING, "text.1", [None])
    model = _model(path)
    assert list(model.inputs) == [TensorSpec("text_1", "BYTES", (-1,))]
    assert list(model.outputs) == [TensorSpec("out_0", "BYTES", (-1,))]
    await model.load()
    text = "\2\0\0\0hi\3\0\0\0é!".encode()
    response = await model.process_request(_raw(model, "text_1", (2,), text))
    assert response.out_0.raw == text  # type: ignore[attr-defined]
    with pytest.raises(InvalidRequest, match="UTF-8"):
        await model.process_request(_raw(model, "text_1", (2,), b"\2\0\0\0hi\1\0\0\0\xff"))


def test_a_graph_without_a_batch_dimension_does_not_batch(tmp_path: Path) -> None:
    model = _model(_graph(tmp_path / "fixed.onnx", TensorProto.DOUBLE, "x", [2, "n"]))
    assert list(model.inputs) == [TensorSpec("x", "FP64", (2, -1))]
    assert not model.batching and model.max_batch_size == 1


def test_a_type_without_a_datatype_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tensor\\(bfloat16\\) has no tensor datatype"):
        _model(_graph(tmp_path / "bf16.onnx", TensorProto.BFLOAT16, "x", [1]))
