"""The generate extension on the real gateway app with fakes behind it: the request's fields in,
the response's out, at once and as Server-Sent Events, and the protocol's errors."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.exceptions import ModelUnavailable
from api.oip.tests import text_pb2
from api.oip.tests.fakes import (
    FakeCatalog,
    FakeDispatcher,
    echo,
    failed,
    fake_gateway,
    model_a,
    pieces,
    restarted_after,
    text_model,
    words,
)


@pytest.fixture
def client() -> Iterator[TestClient]:
    catalog = FakeCatalog([*model_a(), *text_model(versions=("1", "2"))])
    dispatcher = FakeDispatcher({"model_a": echo}, scripts={"model_t": words})
    yield TestClient(fake_gateway(catalog, dispatcher))


def _fakes(client: TestClient) -> FakeDispatcher:
    dispatcher: FakeDispatcher = client.app.state.dispatcher  # type: ignore[attr-defined]
    return dispatcher


def _events(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    blocks = [block for block in response.text.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in blocks), blocks
    return [json.loads(block.removeprefix("data: ")) for block in blocks]


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"]
    return str(body["error"])


def test_generate(client: TestClient) -> None:
    response = client.post(
        "/v2/models/model_t/generate",
        json={"prompt": "hi", "max_tokens": 3, "seed": 5, "parameters": {"priority": 1}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["model_name", "model_version", "text"]
    assert (body["model_name"], body["model_version"]) == ("model_t", "2")
    assert len(body["text"].split()) == 3
    run = _fakes(client).runs[0]
    assert run.priority == 9  # Triton's 1, the highest
    sent = text_pb2.TextRequest.FromString(run.payload)
    assert (sent.prompt, sent.max_tokens, sent.seed) == ("hi", 3, 5)


def test_generate_on_any_model_and_version(client: TestClient) -> None:
    body = client.post("/v2/models/model_a/generate", json={"data": "x"}).json()
    assert body == {"model_name": "model_a", "model_version": "1", "reply": "Processed message: x"}
    body = client.post("/v2/models/model_t/versions/1/generate", json={"prompt": "p"}).json()
    assert body["model_version"] == "1"


def test_generate_stream_is_the_same_text(client: TestClient) -> None:
    asked = {"prompt": "hi", "max_tokens": 4, "seed": 2}
    events = _events(client.post("/v2/models/model_t/generate_stream", json=asked))
    assert len(events) == 4
    assert {(e["model_name"], e["model_version"]) for e in events} == {("model_t", "2")}
    whole = client.post("/v2/models/model_t/generate", json=asked).json()["text"]
    assert "".join(e["text"] for e in events) == whole


def test_generate_stream_of_a_model_that_answers_once(client: TestClient) -> None:
    events = _events(client.post("/v2/models/model_a/generate_stream", json={"data": "x"}))
    assert events == [
        {"model_name": "model_a", "model_version": "1", "reply": "Processed message: x"}
    ]


def test_a_restart_is_hidden(client: TestClient) -> None:
    _fakes(client).scripts["model_t"] = restarted_after(2)
    asked = {"prompt": "hi", "max_tokens": 4, "seed": 2}
    events = _events(client.post("/v2/models/model_t/generate_stream", json=asked))
    _fakes(client).scripts["model_t"] = words
    whole = client.post("/v2/models/model_t/generate", json=asked).json()["text"]
    assert "".join(e["text"] for e in events) == whole


def test_an_error_once_begun_is_the_last_event(client: TestClient) -> None:
    _fakes(client).scripts["model_t"] = lambda model, payload: [
        *pieces([" a"]),
        failed(model, "out of words"),
    ]
    events = _events(client.post("/v2/models/model_t/generate_stream", json={"prompt": "p"}))
    assert events == [
        {"model_name": "model_t", "model_version": "2", "text": " a"},
        {"error": "out of words"},
    ]


def test_an_error_before_the_stream_is_a_plain_error(client: TestClient) -> None:
    _fakes(client).error = ModelUnavailable("no worker", model="model_t")
    response = client.post("/v2/models/model_t/generate_stream", json={"prompt": "p"})
    assert _error(response, 503) == "no worker"
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("body", "words_in_message"),
    [
        ({"prompt": "p", "text_input": "x"}, "unknown input 'text_input'"),
        ({"prompt": 3}, "prompt"),
        ({"prompt": "p", "parameters": []}, "parameters must be an object"),
        ({"prompt": "p", "parameters": {"timeout": -1}}, "timeout"),
        ({"prompt": "p", "parameters": {"sequence_id": 4}}, "sequences"),
    ],
)
def test_bad_requests_are_400(client: TestClient, body: Any, words_in_message: str) -> None:
    for path in ("generate", "generate_stream"):
        response = client.post(f"/v2/models/model_t/{path}", json=body)
        assert words_in_message in _error(response, 400)


def test_not_json_and_unknown_models(client: TestClient) -> None:
    assert "JSON" in _error(client.post("/v2/models/model_t/generate", content=b"[1"), 400)
    assert _error(client.post("/v2/models/nope/generate", json={}), 404)
    assert _error(client.get("/v2/models/model_t/generate"), 405)
