"""tritonclient's HTTP client, unchanged, against the gateway's Open Inference Protocol API.

Runs against ``OIP_BASE_URL`` when set (a real stack), else against the gateway app with fakes
behind it (see conftest.py).
"""

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.oip.target import Target

IRIS_SETOSA = [[5.1, 3.5, 1.4, 0.2]]


@pytest.fixture
def client(target: Target) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(target.host_port, network_timeout=30.0)
    try:
        yield client
    finally:
        client.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_server_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "conveyor"
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_ready_and_metadata(client: triton.InferenceServerClient, target: Target) -> None:
    assert client.is_model_ready(target.model_a)
    assert client.is_model_ready(target.model_b)
    model_a = client.get_model_metadata(target.model_a)
    assert model_a["name"] == target.model_a
    assert model_a["inputs"] == [{"name": "data", "datatype": "BYTES", "shape": [1]}]
    assert model_a["outputs"] == [{"name": "reply", "datatype": "BYTES", "shape": [1]}]
    model_b = client.get_model_metadata(target.model_b)
    assert model_b["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1]}]
    assert [o["name"] for o in model_b["outputs"]] == [
        "label",
        "probabilities",
        "probabilities_keys",
    ]
    version = model_b["versions"][0]
    assert client.is_model_ready(target.model_b, version)
    assert client.get_model_metadata(target.model_b, version)["name"] == target.model_b


@pytest.mark.parametrize("binary_in", [False, True])
@pytest.mark.parametrize("binary_out", [False, True])
def test_infer_bytes_on_model_a(
    client: triton.InferenceServerClient, target: Target, binary_in: bool, binary_out: bool
) -> None:
    text = triton.InferInput("data", [1], "BYTES")
    text.set_data_from_numpy(np.array(["héllo"], dtype=np.object_), binary_data=binary_in)
    reply = triton.InferRequestedOutput("reply", binary_data=binary_out)
    result = client.infer(target.model_a, [text], outputs=[reply], request_id="a-1")
    answer = result.as_numpy("reply")
    assert answer is not None
    assert answer.shape == (1,)
    assert _text(answer[0]) == "Processed message: héllo"
    response = result.get_response()
    assert (response["model_name"], response["id"]) == (target.model_a, "a-1")


@pytest.mark.parametrize("binary_in", [False, True])
@pytest.mark.parametrize("binary_out", [False, True])
def test_infer_fp32_batch_of_one_on_model_b(
    client: triton.InferenceServerClient, target: Target, binary_in: bool, binary_out: bool
) -> None:
    features = triton.InferInput("features", [1, 4], "FP32")
    features.set_data_from_numpy(np.array(IRIS_SETOSA, dtype=np.float32), binary_data=binary_in)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary_out)
        for name in ("label", "probabilities", "probabilities_keys")
    ]
    result = client.infer(target.model_b, [features], outputs=outputs)
    label = result.as_numpy("label")
    probabilities = result.as_numpy("probabilities")
    keys = result.as_numpy("probabilities_keys")
    assert label is not None and probabilities is not None and keys is not None
    assert label.shape == (1, 1)
    assert probabilities.shape == keys.shape == (1, 3)
    assert probabilities.dtype == np.float64
    assert _text(label[0, 0]) == "setosa"
    assert abs(float(probabilities.sum()) - 1.0) < 1e-6
    assert _text(keys[0, int(probabilities.argmax())]) == "setosa"


def test_infer_without_outputs_answers_all_in_binary(
    client: triton.InferenceServerClient, target: Target
) -> None:
    features = triton.InferInput("features", [4], "FP64")
    features.set_data_from_numpy(np.array(IRIS_SETOSA[0], dtype=np.float64))
    result = client.infer(target.model_b, [features])
    outputs = {o["name"]: o for o in result.get_response()["outputs"]}
    assert set(outputs) == {"label", "probabilities", "probabilities_keys"}
    assert all("binary_data_size" in o["parameters"] for o in outputs.values())
    label = result.as_numpy("label")
    assert label is not None and label.shape == (1,)


def test_infer_on_a_version(client: triton.InferenceServerClient, target: Target) -> None:
    version = client.get_model_metadata(target.model_a)["versions"][0]
    text = triton.InferInput("data", [1, 1], "BYTES")
    text.set_data_from_numpy(np.array([["v"]], dtype=np.object_))
    result = client.infer(target.model_a, [text], model_version=version)
    assert result.get_response()["model_version"] == version
    answer = result.as_numpy("reply")
    assert answer is not None and answer.shape == (1, 1)


def test_an_unknown_model_raises_a_readable_error(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata("no_such_model_here")
    assert caught.value.status() == "404"
    assert "no_such_model_here" in caught.value.message()
    assert str(caught.value).startswith("[404] ")
    assert not client.is_model_ready("no_such_model_here")


def test_an_unknown_version_raises_404(
    client: triton.InferenceServerClient, target: Target
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata(target.model_b, "999999")
    assert caught.value.status() == "404"


def test_wrong_datatype_and_big_batches_are_400(
    client: triton.InferenceServerClient, target: Target
) -> None:
    words = triton.InferInput("features", [4], "BYTES")
    words.set_data_from_numpy(np.array(["a", "b", "c", "d"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as caught:
        client.infer(target.model_b, [words])
    assert caught.value.status() == "400"
    assert "expects FP64" in caught.value.message()
    batch = triton.InferInput("features", [2, 4], "FP32")
    batch.set_data_from_numpy(np.array(IRIS_SETOSA * 2, dtype=np.float32))
    with pytest.raises(InferenceServerException, match="one request per call"):
        client.infer(target.model_b, [batch])


def test_paths_the_gateway_lacks_raise_a_readable_error(
    client: triton.InferenceServerClient, target: Target
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.get_trace_settings(target.model_a)
    assert caught.value.status() == "404"
    assert "no such path" in caught.value.message()


def test_statistics_of_a_model_and_of_every_model(
    client: triton.InferenceServerClient, target: Target
) -> None:
    of_b = client.get_inference_statistics(target.model_b)["model_stats"]
    assert {s["name"] for s in of_b} == {target.model_b}
    stat = of_b[0]
    assert set(stat["inference_stats"]) >= {"success", "fail", "queue", "compute_infer"}
    assert all(set(d) == {"count", "ns"} for d in stat["inference_stats"].values())
    version = stat["version"]
    one = client.get_inference_statistics(target.model_b, version)["model_stats"]
    assert [(s["name"], s["version"]) for s in one] == [(target.model_b, version)]
    every = client.get_inference_statistics()["model_stats"]
    assert {target.model_a, target.model_b} <= {s["name"] for s in every}
    with pytest.raises(InferenceServerException) as caught:
        client.get_inference_statistics("no_such_model_here")
    assert caught.value.status() == "404"


def test_model_configuration(client: triton.InferenceServerClient, target: Target) -> None:
    config = client.get_model_config(target.model_b)
    assert config["name"] == target.model_b
    assert config["platform"] == "conveyor_protobuf"
    assert config["input"] == [{"name": "features", "data_type": "TYPE_FP64", "dims": [-1]}]
    assert config["output"][0] == {"name": "label", "data_type": "TYPE_STRING", "dims": [1]}
    assert config["version_policy"] == {"all": {}}
    assert isinstance(config["max_batch_size"], int)
    version = client.get_model_metadata(target.model_a)["versions"][0]
    assert client.get_model_config(target.model_a, version)["name"] == target.model_a


def test_repository_index(client: triton.InferenceServerClient, target: Target) -> None:
    index = client.get_model_repository_index()
    served = [e for e in index if e["name"] in (target.model_a, target.model_b)]
    assert {e["name"] for e in served} == {target.model_a, target.model_b}
    assert all(e["state"] == "READY" for e in served)


@pytest.mark.parametrize("action", ["load", "unload"])
def test_load_and_unload_are_refused_readably(
    client: triton.InferenceServerClient, target: Target, action: str
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        getattr(client, f"{action}_model")(target.model_a)
    assert caught.value.status() == "501"
    assert caught.value.message().startswith("unsupported: models register themselves")
