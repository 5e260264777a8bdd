"""``InferFastPath`` answers exactly as the FastAPI infer route it skips."""

import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.exceptions import Overloaded
from api.oip.fast_path import InferFastPath, infer_target
from api.oip.tests.fakes import FakeDispatcher, fake_gateway

TEXT = {"name": "data", "shape": [1], "datatype": "BYTES", "data": ["hello"]}
IRIS = {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/v2/models/model_a/infer", ("model_a", None)),
        ("/v2/models/model_b/versions/2/infer", ("model_b", "2")),
        ("/v2/models/stats/infer", ("stats", None)),
        ("/v2/models//infer", None),
        ("/v2/models/model_b/versions//infer", None),
        ("/v2/models/model_b/version/2/infer", None),
        ("/v2/models/model_a/generate", None),
        ("/v2/models/model_a/infer/more", None),
        ("/v2/models/model_a", None),
        ("/predict/model_a", None),
        ("/v2/models/infer", None),
    ],
)
def test_infer_target_takes_only_the_infer_paths(
    path: str, target: tuple[str, str | None] | None
) -> None:
    assert infer_target(path) == target


@pytest.fixture
def clients() -> Iterator[tuple[TestClient, TestClient]]:
    """The gateway app, and the same app (the same fakes) without ``InferFastPath``."""
    app = fake_gateway()
    state = app.state
    without = fake_gateway(state.catalog, state.dispatcher, state.stats, state.settings)
    fast_path: object = InferFastPath
    without.user_middleware = [m for m in without.user_middleware if m.cls is not fast_path]
    assert len(without.user_middleware) == len(app.user_middleware) - 1
    yield TestClient(app), TestClient(without)


REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/v2/models/model_a/infer", {"json": {"id": "1", "inputs": [TEXT]}}),
    ("/v2/models/model_b/infer", {"json": {"id": "2", "inputs": [IRIS]}}),
    ("/v2/models/model_b/versions/1/infer", {"json": {"id": "3", "inputs": [IRIS]}}),
    (
        "/v2/models/model_b/infer",
        {"json": {"id": "4", "inputs": [IRIS], "parameters": {"binary_data_output": True}}},
    ),
    ("/v2/models/nope/infer", {"json": {"inputs": [TEXT]}}),
    ("/v2/models/model_b/versions/9/infer", {"json": {"inputs": [IRIS]}}),
    ("/v2/models/model_a/infer", {"content": b"{not json", "headers": {"Content-Type": "x/y"}}),
    ("/v2/models/model_a/infer", {"json": {"inputs": [{**TEXT, "datatype": "FP99"}]}}),
    ("/v2/models/model_a/infer", {"json": {"inputs": [TEXT], "parameters": {"timeout": -1}}}),
    ("/v2/models/model_a/infer", {"content": b"", "headers": {"Content-Type": "application/json"}}),
    ("/v2/models/model_a/infer", {"json": {"id": "6", "inputs": []}}),
    ("/v2/models/model_b/infer?version=1", {"json": {"id": "7", "inputs": [IRIS]}}),
    ("/v2/models/model_b/infer?version=", {"json": {"id": "8", "inputs": [IRIS]}}),
    ("/v2/models/model_b/infer?version=%20", {"json": {"id": "9", "inputs": [IRIS]}}),
]


@pytest.mark.parametrize(("path", "call"), REQUESTS)
def test_the_fast_path_answers_as_the_route(
    clients: tuple[TestClient, TestClient], path: str, call: dict[str, Any]
) -> None:
    fast, route = (client.post(path, **call) for client in clients)
    assert fast.status_code == route.status_code, (fast.text, route.text)
    assert fast.headers["content-type"] == route.headers["content-type"]
    assert fast.content == route.content


def test_binary_inputs_answer_alike(clients: tuple[TestClient, TestClient]) -> None:
    raw = struct.pack("<4f", 5.1, 3.5, 1.4, 0.2)
    features = {"name": "features", "shape": [1, 4], "datatype": "FP32"}
    header = json.dumps(
        {"id": "5", "inputs": [{**features, "parameters": {"binary_data_size": len(raw)}}]}
    ).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }
    answers = [client.post("/v2/models/model_b/infer", content=header + raw, headers=headers)
               for client in clients]  # fmt: skip
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].content == answers[1].content


def test_errors_raised_by_the_dispatcher_are_the_protocols(
    clients: tuple[TestClient, TestClient],
) -> None:
    dispatcher: FakeDispatcher = clients[0].app.state.dispatcher  # type: ignore[attr-defined]
    for error, status in ((Overloaded("busy", retry_after=3), 429), (RuntimeError("x"), 500)):
        dispatcher.error = error
        answers = [client.post("/v2/models/model_a/infer", json={"inputs": [TEXT]})
                   for client in clients]  # fmt: skip
        assert [a.status_code for a in answers] == [status, status]
        assert answers[0].json() == answers[1].json()
        assert list(answers[0].json()) == ["error"]


def test_other_methods_and_paths_reach_the_router(
    clients: tuple[TestClient, TestClient],
) -> None:
    fast, _ = clients
    answer = fast.post("/v2/models/model_b/infer?version=1", json={"inputs": [IRIS]})
    assert answer.json()["model_version"] == "1"  # the route reads the query's version
    assert fast.post("/v2/models/model_b/infer?version=", json={"inputs": []}).status_code == 404
    assert fast.get("/v2/models/model_a/infer").status_code == 405
    assert fast.post("/v2/models//infer", json={}).status_code == 404
    assert fast.get("/v2/models/model_a").json()["name"] == "model_a"
