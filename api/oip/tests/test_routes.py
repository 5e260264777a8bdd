"""Every /v2 path on the real gateway app with a fake catalog and dispatcher behind it."""

import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.catalog import ModelInfo
from api.exceptions import (
    ModelUnavailable,
    Overloaded,
    RegistryUnavailable,
    ResultTimeout,
)
from api.oip.tests import shapes_pb2
from api.oip.tests.fakes import FakeCatalog, FakeDispatcher, fake_gateway
from proto import model_a_pb2, model_b_pb2, task_pb2


@pytest.fixture
def client() -> Iterator[TestClient]:
    yield TestClient(fake_gateway())  # no lifespan: nothing connects


def _catalog(client: TestClient) -> FakeCatalog:
    catalog: FakeCatalog = client.app.state.catalog  # type: ignore[attr-defined]
    return catalog


def _dispatcher(client: TestClient) -> FakeDispatcher:
    dispatcher: FakeDispatcher = client.app.state.dispatcher  # type: ignore[attr-defined]
    return dispatcher


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str)
    return str(body["error"])


IRIS = {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [[5.1, 3.5, 1.4, 0.2]]}
TEXT = {"name": "data", "shape": [1], "datatype": "BYTES", "data": ["hello"]}


def test_server_metadata_lists_the_extensions(client: TestClient) -> None:
    assert client.get("/v2").json() == {
        "name": "conveyor",
        "version": "1",
        "extensions": [
            "binary_tensor_data",
            "statistics",
            "model_configuration",
            "model_repository",
        ],
    }


def test_health(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}


@pytest.mark.parametrize("down", ["brokers", "registry"])
def test_not_ready_is_503(client: TestClient, down: str) -> None:
    if down == "brokers":
        _dispatcher(client).brokers_up = False
    else:
        _catalog(client).registry_up = False
    response = client.get("/v2/health/ready")
    assert response.status_code == 503
    assert response.json()["ready"] is False
    assert "unreachable" in response.json()["error"]


def test_model_metadata(client: TestClient) -> None:
    assert client.get("/v2/models/model_a").json() == {
        "name": "model_a",
        "versions": ["1"],
        "platform": "conveyor_protobuf",
        "inputs": [{"name": "data", "datatype": "BYTES", "shape": [1]}],
        "outputs": [{"name": "reply", "datatype": "BYTES", "shape": [1]}],
    }
    model_b = client.get("/v2/models/model_b/versions/1").json()
    assert model_b["versions"] == ["1", "2"]
    assert model_b["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1]}]
    assert model_b["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1]},
        {"name": "probabilities_keys", "datatype": "BYTES", "shape": [-1]},
    ]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/model_b/versions/9", "model 'model_b' has no version '9'"),
        ("/v2/models/model_b/versions/9/ready", "model 'model_b' has no version '9'"),
        ("/v2/models/nope", "unknown model 'nope'"),
        ("/v2/models/nope/ready", "unknown model 'nope'"),
        ("/v2/models/nope/versions/1", "unknown model 'nope'"),
    ],
)
def test_unknown_models_and_versions_are_404(client: TestClient, path: str, message: str) -> None:
    assert _error(client.get(path), 404) == message


def test_unknown_version_infer_is_404(client: TestClient) -> None:
    response = client.post("/v2/models/model_b/versions/9/infer", json={"inputs": [IRIS]})
    assert _error(response, 404) == "model 'model_b' has no version '9'"
    assert _dispatcher(client).runs == []


def test_model_ready_follows_the_live_instances(client: TestClient) -> None:
    assert client.get("/v2/models/model_a/ready").json() == {"name": "model_a", "ready": True}
    assert client.get("/v2/models/model_b/versions/2/ready").status_code == 200
    dead = ModelInfo(
        "model_a", "1", ("1",), 0, model_a_pb2.ModelARequest, model_a_pb2.ModelAResponse
    )
    _catalog(client).put(dead)
    response = client.get("/v2/models/model_a/versions/1/ready")
    assert response.status_code == 503
    assert response.json()["ready"] is False
    infer = client.post("/v2/models/model_a/infer", json={"inputs": [TEXT]})
    assert _error(infer, 503) == "model 'model_a' version 1 has no live worker"
    assert _dispatcher(client).runs == []


def test_infer_json_on_model_a(client: TestClient) -> None:
    response = client.post("/v2/models/model_a/infer", json={"id": "abc", "inputs": [TEXT]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "model_name": "model_a",
        "model_version": "1",
        "id": "abc",
        "outputs": [
            {
                "name": "reply",
                "datatype": "BYTES",
                "shape": [1],
                "data": ["Processed message: hello"],
            }
        ],
    }
    (run,) = _dispatcher(client).runs
    assert model_a_pb2.ModelARequest.FromString(run.payload).data == "hello"
    assert (run.request_id, run.priority) == ("abc", 0)
    assert 4.0 < run.timeout <= 5.0  # counted from the request's arrival


def test_infer_fp32_batch_of_one_on_model_b_answers_batched_outputs(client: TestClient) -> None:
    response = client.post("/v2/models/model_b/infer", json={"inputs": [IRIS]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "2"  # the default: the highest live version
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"]["data"] == ["setosa"]
    assert outputs["label"]["shape"] == [1, 1]
    assert outputs["probabilities"]["shape"] == [1, 3]
    assert outputs["probabilities_keys"]["data"] == ["setosa", "versicolor", "virginica"]
    sent = model_b_pb2.ModelBRequest.FromString(_dispatcher(client).runs[0].payload)
    assert [round(x, 5) for x in sent.features] == [5.1, 3.5, 1.4, 0.2]


def test_the_version_path_runs_that_version(client: TestClient) -> None:
    response = client.post("/v2/models/model_b/versions/1/infer", json={"inputs": [IRIS]})
    assert response.json()["model_version"] == "1"
    assert _dispatcher(client).runs[0].model.version == "1"


def test_timeout_and_priority_reach_the_dispatcher_with_tritons_meanings(
    client: TestClient,
) -> None:
    # Triton's: timeout in microseconds, priority 1 the highest (Conveyor's 9).
    request = {"inputs": [TEXT], "parameters": {"timeout": 12_000_000, "priority": 1}}
    assert client.post("/v2/models/model_a/infer", json=request).status_code == 200
    run = _dispatcher(client).runs[0]
    assert run.priority == 9
    assert 11.0 < run.timeout <= 12.0  # counted from the request's arrival
    too_long = {"inputs": [TEXT], "parameters": {"timeout": 61_000_000}}
    message = _error(client.post("/v2/models/model_a/infer", json=too_long), 400)
    assert "microseconds" in message and "at most 60000000" in message


def test_wrong_datatype_is_400(client: TestClient) -> None:
    request = {"inputs": [{**IRIS, "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]}
    response = client.post("/v2/models/model_b/infer", json=request)
    assert _error(response, 400) == (
        "input 'features' has datatype BYTES; model 'model_b' expects FP64 "
        "(FP16, FP32 also accepted)"
    )


def test_binary_request_and_response(client: TestClient) -> None:
    raw = struct.pack("<4f", 6.7, 3.0, 5.2, 2.3)
    header = json.dumps(
        {
            "inputs": [{**IRIS, "data": None, "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [
                {"name": "label", "parameters": {"binary_data": True}},
                {"name": "probabilities", "parameters": {"binary_data": False}},
            ],
        }
    ).encode()
    response = client.post(
        "/v2/models/model_b/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    head = json.loads(response.content[:length])
    label, probabilities = head["outputs"]
    assert label["parameters"] == {"binary_data_size": 13}
    assert response.content[length:] == struct.pack("<I", 9) + b"virginica"
    assert len(probabilities["data"]) == 3


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ResultTimeout("no result within 5 s", model="model_a", task_id="t"), 504),
        (ModelUnavailable("model 'model_a' has no live worker", model="model_a"), 503),
        (RegistryUnavailable("registry down"), 503),
    ],
)
def test_dispatcher_errors_keep_their_status(
    client: TestClient, error: Exception, status: int
) -> None:
    _dispatcher(client).error = error
    response = client.post("/v2/models/model_a/infer", json={"inputs": [TEXT]})
    assert _error(response, status) == str(error)


def test_an_overload_error_is_429_with_its_headers(client: TestClient) -> None:
    _dispatcher(client).error = Overloaded("too many requests for model_a", retry_after=2)
    response = client.post("/v2/models/model_a/infer", json={"inputs": [TEXT]})
    assert _error(response, 429) == "too many requests for model_a"
    assert response.headers["retry-after"] == "2"


@pytest.mark.parametrize(
    ("code", "status"),
    [("INVALID_ARGUMENT", 400), ("MODEL_ERROR", 500), ("DEADLINE_EXCEEDED", 504)],
)
def test_task_errors_map_to_status(client: TestClient, code: str, status: int) -> None:
    def failing(model: ModelInfo, payload: bytes) -> task_pb2.TaskResult:
        error = task_pb2.TaskError(code=code, message=f"{code.lower()} happened")
        return task_pb2.TaskResult(model=model.name, error=error)

    _dispatcher(client).responders["model_a"] = failing
    response = client.post("/v2/models/model_a/infer", json={"inputs": [TEXT]})
    assert _error(response, status) == f"{code.lower()} happened"


def test_the_models_own_rejection_is_400(client: TestClient) -> None:
    three = {"name": "features", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]}
    response = client.post("/v2/models/model_b/infer", json={"inputs": [three]})
    assert _error(response, 400) == "expected 4 features, got 3"


def test_an_unreadable_worker_response_is_502(client: TestClient) -> None:
    def garbage(model: ModelInfo, payload: bytes) -> task_pb2.TaskResult:
        return task_pb2.TaskResult(model=model.name, response=b"\xff\xff\xff")

    _dispatcher(client).responders["model_a"] = garbage
    response = client.post("/v2/models/model_a/infer", json={"inputs": [TEXT]})
    assert "unreadable" in _error(response, 502)


def test_an_unexpected_exception_is_a_500_without_details(client: TestClient) -> None:
    _dispatcher(client).error = RuntimeError("the dispatcher broke")
    response = client.post("/v2/models/model_a/infer", json={"inputs": [TEXT]})
    assert _error(response, 500) == "internal error; see the gateway's log"


def test_a_model_with_an_unmappable_field_says_which(client: TestClient) -> None:
    _catalog(client).put(
        ModelInfo(
            "points",
            "1",
            ("1",),
            1,
            shapes_pb2.RepeatedMessages,
            model_a_pb2.ModelAResponse,
        )
    )
    message = _error(client.get("/v2/models/points"), 400)
    assert message.startswith("field 'points' of conveyor.test.oip.RepeatedMessages is a repeat")
    assert _error(client.post("/v2/models/points/infer", json={"inputs": []}), 400) == message


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/models/model_a/trace/setting", 404),
        ("GET", "/v2/logging", 404),
        ("GET", "/v2/", 404),
        ("POST", "/v2", 405),
        ("GET", "/v2/models/model_a/infer", 405),
        ("DELETE", "/v2/models/model_a", 405),
    ],
)
def test_unknown_paths_and_methods_use_the_v2_error(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    _error(response, status)
    if status == 405:
        assert response.headers["allow"]


def test_paths_outside_v2_keep_the_gateways_error_object(client: TestClient) -> None:
    assert client.get("/nowhere").json()["error"]["code"] == "not_found"
