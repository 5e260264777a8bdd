"""The streams of the protocols without a restart event, ``/v2/models/<m>/generate_stream`` and
the OpenAI-compatible chat completion (the official ``openai`` client), with model_c, real
brokers and real processes (a stack of its own: this test starts and kills its workers itself).

- A client that goes away before the first piece stops the generation then: the gateway sets
  the task's stop key long before that piece is due, and the task ends ``cancelled`` with at
  most that one piece.
- A worker SIGKILLed mid-stream is hidden (``api.pieces.seamless``): the client reads one
  stream, no restart in it, whose text equals an uninterrupted run's with the same seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
import redis

from conveyor.protocol import STOP_KEY_PREFIX, events_key
from tests.integration.sse import event_types, final_types, iter_events
from tests.integration.stack import Stack, wait_until
from tests.streaming.mid_stream import MODEL_C, kill_mid_stream

PIECE_MS = 4000
"""The delay of each piece of the model whose clients leave before the first."""
LEAVE_AFTER = 1.0
"""When those clients leave: seconds after asking."""
BODY = {"prompt": "the river", "max_tokens": 20, "seed": 21}
"""What the killed streams ask (model_c's request)."""
LONG = {"parameters": {"timeout": 120_000_000}}
"""generate's request parameters for the time a worker's restart takes (in microseconds)."""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(MAX_TIMEOUT="120") as stack:
        yield stack


@pytest.fixture(scope="module")
def slow_model(stack: Stack) -> str:
    """model_c with a piece every ``PIECE_MS``."""
    model = stack.model_name("model_c")
    stack.start_worker(MODEL_C, model, CHUNK_DELAY_MS=str(PIECE_MS))
    return model


@pytest.fixture
def keys(stack: Stack) -> Iterator[redis.Redis]:
    """The stack's Redis: the tasks' stop keys and event streams."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        yield client
    finally:
        client.close()


def _openai(stack: Stack, timeout: float = 120.0) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{stack.api_url}/v1", api_key="unused", max_retries=0, timeout=timeout
    )


def _leave_generate_stream(stack: Stack, model: str) -> None:
    """Ask generate_stream, then hang up after ``LEAVE_AFTER`` s without an answer."""
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.Client(base_url=stack.api_url, timeout=httpx.Timeout(10, read=LEAVE_AFTER)) as http,
        http.stream("POST", f"/v2/models/{model}/generate_stream", json=BODY) as response,
    ):
        response.read()


def _leave_chat(stack: Stack, model: str) -> None:
    """Ask a streamed chat completion, then hang up after ``LEAVE_AFTER`` s without an answer."""
    with pytest.raises(openai.APITimeoutError), _openai(stack, LEAVE_AFTER) as client:
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "the river"}],
            max_tokens=20,
            seed=21,
            stream=True,
        )


@pytest.mark.parametrize("leave", [_leave_generate_stream, _leave_chat])
def test_a_client_gone_before_the_first_piece_stops_the_generation(
    stack: Stack, slow_model: str, keys: redis.Redis, leave: Callable[[Stack, str], None]
) -> None:
    before = set(keys.scan_iter(match=f"{STOP_KEY_PREFIX}*"))
    asked = time.monotonic()
    leave(stack, slow_model)

    def stopped() -> set[bytes]:
        return set(keys.scan_iter(match=f"{STOP_KEY_PREFIX}*")) - before

    (stop,) = wait_until(stopped, 10.0, interval=0.05, what="the task's stop key")
    # Set when the client left, not when the first piece came (PIECE_MS after asking).
    assert time.monotonic() - asked < PIECE_MS / 1000 - 1.0
    task_id = stop.decode().removeprefix(STOP_KEY_PREFIX)
    assert event_types(keys, events_key(task_id)).count("chunk") == 0
    ended = wait_until(
        lambda: final_types(keys, events_key(task_id)), 30.0, what="the stream's final event"
    )
    assert ended[-1] == "cancelled", ended
    assert ended.count("chunk") <= 1, ended


def test_generate_stream_hides_a_worker_killed_mid_stream(stack: Stack) -> None:
    events: list[tuple[str | None, str, Any]] = []

    def read(model: str, at_fifth: Callable[[], None]) -> None:
        with (
            httpx.Client(base_url=stack.api_url, timeout=120) as http,
            http.stream(
                "POST", f"/v2/models/{model}/generate_stream", json={**BODY, **LONG}
            ) as response,
        ):
            assert response.status_code == 200, response.read()
            for event in iter_events(response.iter_lines()):
                events.append(event)
                if len(events) == 5:
                    at_fifth()

    model = kill_mid_stream(stack, read)
    # The documented contract: an event per piece, data only (no event: nor id:), each the
    # model, its version and the piece's fields; the stream ends after the last piece.
    assert [(event_id, kind) for event_id, kind, _ in events] == [(None, "message")] * 20
    assert all(data.keys() == {"model_name", "model_version", "text"} for _, _, data in events)
    assert {(data["model_name"], data["model_version"]) for _, _, data in events} == {(model, "1")}
    whole = httpx.post(f"{stack.api_url}/v2/models/{model}/generate", json=BODY, timeout=60)
    assert whole.status_code == 200, whole.text
    assert "".join(data["text"] for _, _, data in events) == whole.json()["text"]


def test_a_streamed_chat_completion_hides_a_worker_killed_mid_stream(stack: Stack) -> None:
    deltas: list[str] = []
    finishes: list[str | None] = []
    messages: list[Any] = [{"role": "user", "content": BODY["prompt"]}]

    def read(model: str, at_fifth: Callable[[], None]) -> None:
        with _openai(stack) as client:
            stream = client.chat.completions.create(
                model=model, messages=messages, max_tokens=20, seed=21, stream=True
            )
            for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta.content:
                        deltas.append(choice.delta.content)
                        if len(deltas) == 5:
                            at_fifth()
                    finishes.append(choice.finish_reason)

    model = kill_mid_stream(stack, read)
    with _openai(stack) as client:
        whole = client.chat.completions.create(
            model=model, messages=messages, max_tokens=20, seed=21
        )
    assert len(deltas) == 20  # each piece once: the restarted run's first five were skipped
    assert "".join(deltas) == whole.choices[0].message.content
    assert finishes[-1] == "length"
