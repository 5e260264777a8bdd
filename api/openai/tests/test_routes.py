"""The /v1 paths on the real gateway app, with a fake catalog and dispatcher behind it: the
objects OpenAI's format has, streamed and not, its errors, and a worker's restart hidden."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.edge import Admission
from api.exceptions import Overloaded
from api.oip.tests import text_pb2
from api.oip.tests.fakes import (
    FakeCatalog,
    FakeDispatcher,
    done,
    echo,
    failed,
    fake_gateway,
    model_a,
    pieces,
    restarted_after,
    text_model,
    word_list,
    words,
)
from conveyor.streams import Restart


def _dispatcher() -> FakeDispatcher:
    return FakeDispatcher({"model_a": echo}, scripts={"model_t": words})


@pytest.fixture
def client() -> Iterator[TestClient]:
    catalog = FakeCatalog([*model_a(), *text_model(), *text_model("model_idle", instances=0)])
    yield TestClient(fake_gateway(catalog, _dispatcher()))


def _fakes(client: TestClient) -> FakeDispatcher:
    dispatcher: FakeDispatcher = client.app.state.dispatcher  # type: ignore[attr-defined]
    return dispatcher


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def _events(response: Any) -> list[str]:
    """The ``data:`` of each event, in order."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            events.append(block.removeprefix("data: "))
    return events


def _expected(max_tokens: int | None, seed: int) -> str:
    request = text_pb2.TextRequest(seed=seed)
    if max_tokens is not None:
        request.max_tokens = max_tokens
    return "".join(word_list(request.SerializeToString()))


def test_models_lists_the_live_text_generators(client: TestClient) -> None:
    assert client.get("/v1/models").json() == {
        "object": "list",
        "data": [{"id": "model_t", "object": "model", "created": 0, "owned_by": "conveyor"}],
    }
    assert client.get("/v1/models/model_t").json()["id"] == "model_t"
    assert client.get("/v1/models/model_t:1").json()["id"] == "model_t:1"
    for other in ("model_a", "model_idle", "nope"):
        assert _error(client.get(f"/v1/models/{other}"), 404)["code"] == "model_not_found"


def test_completion(client: TestClient) -> None:
    response = client.post(
        "/v1/completions", json={"model": "model_t", "prompt": "a b c", "max_tokens": 5, "seed": 7}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["model"] == "model_t"
    assert body["choices"] == [
        {"index": 0, "text": _expected(5, 7), "logprobs": None, "finish_reason": "length"}
    ]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    sent = text_pb2.TextRequest.FromString(_fakes(client).streams[0].payload)
    assert (sent.prompt, sent.max_tokens, sent.seed) == ("a b c", 5, 7)
    assert not sent.HasField("temperature")


def test_chat_completion_renders_the_conversation(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "model_t",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            ],
            "max_completion_tokens": 3,
            "seed": 1,
            "temperature": 0.5,
        },
    )
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == _expected(3, 1)
    assert choice["finish_reason"] == "length"
    sent = text_pb2.TextRequest.FromString(_fakes(client).streams[0].payload)
    assert sent.prompt == "system: Be brief.\nuser: Hello\nassistant:"
    assert sent.temperature == 0.5


def test_stop_without_max_tokens(client: TestClient) -> None:
    response = client.post("/v1/completions", json={"model": "model_t", "prompt": "x"})
    assert response.json()["choices"][0]["finish_reason"] == "stop"


def test_streamed_completion_is_the_same_text(client: TestClient) -> None:
    asked = {"model": "model_t", "prompt": "p", "max_tokens": 4, "seed": 3}
    events = _events(client.post("/v1/completions", json={**asked, "stream": True}))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert len({c["id"] for c in chunks}) == 1
    assert all("usage" not in c for c in chunks)
    texts = [c["choices"][0]["text"] for c in chunks]
    assert texts == [*word_list_of(asked), ""]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 4 + ["length"]
    whole = client.post("/v1/completions", json=asked).json()["choices"][0]["text"]
    assert "".join(texts) == whole


def word_list_of(asked: dict[str, Any]) -> list[str]:
    request = text_pb2.TextRequest(seed=asked["seed"], max_tokens=asked["max_tokens"])
    return word_list(request.SerializeToString())


def test_streamed_chat_with_usage(client: TestClient) -> None:
    asked = {
        "model": "model_t",
        "messages": [{"role": "user", "content": "one two"}],
        "max_tokens": 2,
        "seed": 9,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = _events(client.post("/v1/chat/completions", json=asked))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    first, *middle, last, used = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"] for c in middle] == [
        {"content": text} for text in word_list_of({"seed": 9, "max_tokens": 2})
    ]
    assert last["choices"][0] == {
        "index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"
    }  # fmt: skip
    assert all(c["usage"] is None for c in chunks[:-1])
    assert used["choices"] == []
    # "user: one two\nassistant:" is four words.
    assert used["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}


def test_a_restart_is_hidden_when_the_run_repeats_the_pieces(client: TestClient) -> None:
    _fakes(client).scripts["model_t"] = restarted_after(2)
    asked = {"model": "model_t", "prompt": "p", "max_tokens": 5, "seed": 4, "stream": True}
    events = _events(client.post("/v1/completions", json=asked))
    texts = [json.loads(e)["choices"][0]["text"] for e in events[:-1]]
    assert texts == [*word_list_of(asked), ""]
    assert events[-1] == "[DONE]"
    # Not streamed: the pieces of the run that finished are counted.
    whole = client.post("/v1/completions", json={**asked, "stream": False}).json()
    assert whole["usage"]["completion_tokens"] == 5


def test_a_restart_that_diverges_ends_with_an_error(client: TestClient) -> None:
    def diverging(model: Any, payload: bytes) -> list[Any]:
        return [
            *pieces([" a", " b"]),
            Restart("3-0", 2),
            *pieces([" a", " c", " d"], attempt=2, first_id=4),
            done(model, [" a", " c", " d"]),
        ]

    _fakes(client).scripts["model_t"] = diverging
    events = _events(
        client.post("/v1/completions", json={"model": "model_t", "prompt": "p", "stream": True})
    )
    assert [json.loads(e)["choices"][0]["text"] for e in events[:2]] == [" a", " b"]
    error = json.loads(events[-1])["error"]
    assert error["code"] == "stream_diverged"
    assert error["type"] == "server_error"
    assert "[DONE]" not in events


def test_a_failure_mid_stream_is_an_error_event(client: TestClient) -> None:
    _fakes(client).scripts["model_t"] = lambda model, payload: [
        *pieces([" a"]),
        failed(model, "out of words"),
    ]
    asked = {"model": "model_t", "messages": [{"role": "user", "content": "x"}], "stream": True}
    events = _events(client.post("/v1/chat/completions", json=asked))
    assert json.loads(events[1])["choices"][0]["delta"] == {"content": " a"}
    assert json.loads(events[-1])["error"]["message"] == "out of words"
    # Not streamed: the error answer itself.
    response = client.post("/v1/chat/completions", json={**asked, "stream": False})
    assert _error(response, 500)["message"] == "out of words"


def test_an_error_before_the_stream_is_a_plain_error(client: TestClient) -> None:
    _fakes(client).error = Overloaded("the queue is full", model="model_t", retry_after=3)
    response = client.post(
        "/v1/completions", json={"model": "model_t", "prompt": "p", "stream": True}
    )
    error = _error(response, 429)
    assert (error["type"], error["code"]) == ("rate_limit_error", "overloaded")
    assert response.headers["retry-after"] == "3"


@pytest.mark.parametrize(
    ("path", "extra", "param"),
    [
        ("/v1/completions", {"n": 2}, "n"),
        ("/v1/completions", {"logprobs": 1}, "logprobs"),
        ("/v1/completions", {"echo": True}, "echo"),
        ("/v1/completions", {"stop": ["\n"]}, "stop"),
        ("/v1/completions", {"prompt": ["a", "b"]}, "prompt"),
        ("/v1/completions", {"stream_options": {"include_usage": True}}, "stream_options"),
        ("/v1/chat/completions", {"logprobs": True}, "logprobs"),
        ("/v1/chat/completions", {"tools": [{"type": "function"}]}, "tools"),
        ("/v1/chat/completions", {"tool_choice": "auto"}, "tool_choice"),
        ("/v1/chat/completions", {"response_format": {"type": "json_object"}}, "response_format"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages.0.content",
        ),
        ("/v1/chat/completions", {"messages": [{"role": "tool", "content": "x"}]}, "messages.0"),
    ],
)
def test_what_is_not_served_is_a_400_naming_it(
    client: TestClient, path: str, extra: dict[str, Any], param: str
) -> None:
    body: dict[str, Any] = {"model": "model_t"}
    body.update({"prompt": "p"} if "chat" not in path else {"messages": [{"role": "user"}]})
    error = _error(client.post(path, json={**body, **extra}), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "p"}, "model"),
        ({"model": "model_t"}, "prompt"),
        ({"model": "model_t", "prompt": "p", "max_tokens": 0}, "max_tokens"),
        ({"model": "model_t", "prompt": "p", "seed": "x"}, "seed"),
        ({"model": "model_t", "prompt": "p", "max_tokens": 2**40}, "max_tokens"),
    ],
)
def test_malformed_requests(client: TestClient, body: dict[str, Any], param: str) -> None:
    error = _error(client.post("/v1/completions", json=body), 400)
    assert error["param"] == param


def test_not_json_is_a_400(client: TestClient) -> None:
    response = client.post(
        "/v1/completions", content=b"{", headers={"content-type": "application/json"}
    )
    _error(response, 400)


def test_models_outside_the_contract(client: TestClient) -> None:
    def ask(model: str) -> Any:
        return client.post("/v1/completions", json={"model": model, "prompt": "p"})

    assert _error(ask("model_a"), 400)["code"] == "model_not_supported"
    assert _error(ask("nope"), 404)["code"] == "model_not_found"
    assert _error(ask("model_t:9"), 404)["code"] == "model_not_found"
    assert _error(ask("model_idle"), 503)["code"] == "model_unavailable"
    assert _error(ask("bad name!"), 400)["param"] == "model"


def test_unknown_paths_and_methods(client: TestClient) -> None:
    assert _error(client.get("/v1/embeddings"), 404)["type"] == "invalid_request_error"
    response = client.get("/v1/completions")
    assert _error(response, 405)
    assert response.headers["allow"] == "POST"


def test_api_keys_apply() -> None:
    catalog = FakeCatalog(text_model())
    settings = Settings(default_timeout=5.0, max_timeout=60.0, api_keys=("k1-0123456789abcdef",))
    client = TestClient(fake_gateway(catalog, _dispatcher(), settings=settings))
    error = _error(client.get("/v1/models"), 401)
    assert error["type"] == "authentication_error"
    response = client.get("/v1/models", headers={"Authorization": "Bearer k1-0123456789abcdef"})
    assert response.status_code == 200


def test_the_edges_429_is_in_openais_shape() -> None:
    status, headers, _, body = Admission(1, retry_after=2).refusal("/v1/completions", ())
    assert status == 429
    assert (b"retry-after", b"2") in headers
    error = json.loads(body)["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "rate_limit_error",
        "overloaded",
        None,
    )
