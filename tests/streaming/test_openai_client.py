"""The official ``openai`` client, unchanged, against the gateway's OpenAI-compatible endpoints:
a streamed chat completion and completion give the same text as the call not streamed, with
the same seed; usage, finish reasons and errors as the client reads them."""

import time
from collections.abc import Iterator

import openai
import pytest
import redis
from openai.types.chat import ChatCompletionMessageParam

from tests.streaming.target import Target

SEED = 42


@pytest.fixture(scope="module")
def client(target: Target) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{target.base_url}/v1", api_key="unused", max_retries=0) as c:
        yield c


def test_the_model_is_listed(client: openai.OpenAI, target: Target) -> None:
    assert target.model in [model.id for model in client.models.list()]
    assert client.models.retrieve(target.model).id == target.model


def test_a_streamed_chat_completion_is_the_same_text(client: openai.OpenAI, target: Target) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "the cat sat on"}]
    whole = client.chat.completions.create(
        model=target.model, messages=messages, max_tokens=12, seed=SEED
    )
    text = whole.choices[0].message.content
    assert text and len(text.split()) == 12
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None and whole.usage.completion_tokens == 12
    stream = client.chat.completions.create(
        model=target.model,
        messages=messages,
        max_tokens=12,
        seed=SEED,
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, roles, finishes, usage = [], [], [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            roles.append(choice.delta.role)
            deltas.append(choice.delta.content or "")
            finishes.append(choice.finish_reason)
    assert roles[0] == "assistant"
    assert "".join(deltas) == text
    assert finishes[-1] == "length"
    assert usage is not None and usage.completion_tokens == 12


def test_a_streamed_completion_is_the_same_text(client: openai.OpenAI, target: Target) -> None:
    whole = client.completions.create(
        model=target.model, prompt="once upon a time", max_tokens=8, seed=SEED
    )
    pieces = [
        chunk.choices[0].text
        for chunk in client.completions.create(
            model=target.model, prompt="once upon a time", max_tokens=8, seed=SEED, stream=True
        )
    ]
    assert "".join(pieces) == whole.choices[0].text
    assert len(whole.choices[0].text.split()) == 8


def test_errors_are_the_clients_exceptions(client: openai.OpenAI, target: Target) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="no_such_model", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=target.model, messages=[{"role": "user", "content": "x"}], n=2
        )
    assert caught.value.param == "n"


def test_closing_a_stream_stops_the_generation(client: openai.OpenAI, target: Target) -> None:
    if target.dispatcher is None:
        pytest.skip("the fakes' dispatcher tells what was stopped (a real stack: the next test)")
    before = len(target.dispatcher.streams)
    stream = client.completions.create(
        model=target.model, prompt="p", max_tokens=500, seed=SEED, stream=True
    )
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 10
    while before not in target.dispatcher.stopped:
        assert time.monotonic() < deadline, "the stream was not stopped"
        time.sleep(0.02)


def test_closing_a_stream_stops_the_worker(client: openai.OpenAI, target: Target) -> None:
    """On a real stack: the task's event stream ends ``cancelled``, long before its last piece."""
    if target.redis_url is None:
        pytest.skip("a real stack's event streams tell what the worker did")
    from tests.integration.sse import event_types, events_keys, final_types
    from tests.integration.stack import wait_until

    events = redis.Redis.from_url(target.redis_url)
    try:
        before = events_keys(events)
        stream = client.completions.create(
            model=target.model, prompt="p", max_tokens=500, seed=SEED, stream=True
        )
        next(iter(stream))
        (key,) = events_keys(events) - before
        stream.close()
        types = wait_until(
            lambda: final_types(events, key), 10.0, interval=0.05, what="the stream's final event"
        )
        assert types[-1] == "cancelled", types
        assert event_types(events, key).count("chunk") < 100  # 500 pieces take 10 s
    finally:
        events.close()
