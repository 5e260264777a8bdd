"""The streamed answers of ``/v1/completions``, ``/v1/chat/completions`` and
``/v2/models/{m}/generate_stream`` share predict's two behaviours (``api.pieces.sse_answer``): a
client that goes away before the first piece stops the generation, and a quiet stream carries
keepalive comments. The real gateway app with fakes behind it, driven at the ASGI level so that
the client leaves at a known moment."""

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message

import api.pieces
from api.oip.tests import text_pb2
from api.oip.tests.fakes import (
    FakeCatalog,
    FakeDispatcher,
    fake_gateway,
    text_model,
    word_list,
    words,
)
from api.streaming import SSE_KEEPALIVE

pytestmark = pytest.mark.asyncio

ASKED = {"prompt": "the dog", "max_tokens": 3, "seed": 3}
STREAMS = {
    "/v1/completions": {"model": "model_t", "stream": True, **ASKED},
    "/v1/chat/completions": {
        "model": "model_t",
        "messages": [{"role": "user", "content": "the dog"}],
        "max_tokens": 3,
        "seed": 3,
        "stream": True,
    },
    "/v2/models/model_t/generate_stream": ASKED,
}


def _dispatcher(gap: float) -> FakeDispatcher:
    return FakeDispatcher(scripts={"model_t": words}, gap=gap)


async def _call(
    dispatcher: FakeDispatcher, path: str, body: dict[str, Any], leave_after: float | None
) -> tuple[int, bytes]:
    """POST ``body`` to ``path`` on the gateway app; the client goes away ``leave_after``
    seconds after sending it (None: it stays). The status and the body sent."""
    app = fake_gateway(FakeCatalog(text_model()), dispatcher)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"gateway"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    requests = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
    status, sent = 0, bytearray()

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        if leave_after is None:
            await asyncio.Event().wait()
        await asyncio.sleep(leave_after or 0.0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            sent.extend(message.get("body", b""))

    await asyncio.wait_for(app(scope, receive, send), 20)
    return status, bytes(sent)


@pytest.mark.parametrize("path", list(STREAMS))
async def test_a_client_gone_before_the_first_piece_stops_the_generation(path: str) -> None:
    dispatcher = _dispatcher(gap=30.0)  # the first piece would come in 30 s
    status, body = await _call(dispatcher, path, STREAMS[path], leave_after=0.05)
    assert dispatcher.stopped == [0]
    # Nobody reads it, but it is the protocol's JSON error.
    assert status == 400, body
    error = json.loads(body)["error"]
    if path.startswith("/v1"):
        assert error["code"] == "client_disconnected"
    else:
        assert "went away" in error


@pytest.mark.parametrize("path", list(STREAMS))
async def test_a_quiet_stream_has_keepalive_comments(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.pieces, "KEEPALIVE_SECONDS", 0.01)
    dispatcher = _dispatcher(gap=0.1)
    status, body = await _call(dispatcher, path, STREAMS[path], leave_after=None)
    assert status == 200, body
    events = body.split(b"\n\n")
    assert SSE_KEEPALIVE.rstrip(b"\n") in events
    data = [event for event in events if event.startswith(b"data: ")]
    texts = []
    for event in data:
        if event == b"data: [DONE]":
            continue
        document = json.loads(event.removeprefix(b"data: "))
        texts.append(document["text"] if "text" in document else _openai_text(document))
    expected = word_list(text_pb2.TextRequest(max_tokens=3, seed=3).SerializeToString())
    assert "".join(texts) == "".join(expected)


def _openai_text(document: dict[str, Any]) -> str:
    choices = document["choices"]
    if not choices:
        return ""
    choice = choices[0]
    return str(choice.get("text") or (choice.get("delta") or {}).get("content") or "")
