"""The worker's side of streaming, against real brokers and real worker processes: streamed
tasks published straight to model_c's queues, as a gateway would, read where a gateway reads
them (the chunk and reply channels, the task's event stream).

- the pieces arrive in order with increasing ids, then the result (the pieces joined); the
  event stream holds the same pieces, then ``done``;
- a worker SIGKILLed mid-stream: the task is redelivered, its stream restarts with a
  ``restart`` marker, then the whole stream again, equal to an uninterrupted run's;
- the stop key stops the generation within one piece (``CANCELLED``);
- an asynchronous streamed task (no channels) has its pieces in its event stream;
- a model that does not stream (model_a) answers a stream in one piece.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import aio_pika
import pytest
import redis.asyncio as aioredis

from conveyor.events import parse_entries
from conveyor.protocol import (
    STREAM_FEATURE,
    TASK_BATCH_FEATURE,
    TASK_CONTENT_TYPE,
    TEXT_GENERATION_FEATURE,
    chunk_channel,
    durable_queue,
    events_key,
    reply_channel,
    result_key,
    stop_key,
    streamed_key,
    sync_queue,
)
from conveyor.results import parse_result
from conveyor.streams import Chunk, Restart, parse_push, push_item, request_stop, stream_item
from models.model_c import ModelC
from proto import model_a_pb2, model_c_pb2, task_pb2
from tests.integration.stack import AMQP_URL, REDIS_URL, Stack, wait_until

MODEL_C = "models.model_c"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack() as stack:
        yield stack


def _request(prompt: str, max_tokens: int, seed: int) -> bytes:
    return model_c_pb2.ModelCRequest(
        prompt=prompt, max_tokens=max_tokens, seed=seed
    ).SerializeToString()


def _task(stack: Stack, model: str, payload: bytes, gateway: str = "") -> task_pb2.Task:
    """A streamed task as a gateway makes it: synchronous (channels of ``gateway``) or, without
    one, asynchronous."""
    task_id = uuid.uuid4().hex
    now = int(time.time() * 1000)
    return task_pb2.Task(
        task_id=task_id,
        model=model,
        version="1",
        payload=payload,
        result_key=result_key(task_id),
        reply_channel=reply_channel(gateway) if gateway else "",
        chunk_channel=chunk_channel(gateway) if gateway else "",
        events_key=events_key(task_id),
        stream=True,
        result_ttl_seconds=600,
        created_unix_ms=now,
        deadline_unix_ms=now + 120_000,
        attempt=1,
        request_id=f"test-{stack.id}",
    )


async def _publish(task: task_pb2.Task) -> None:
    """Publish ``task`` to its model's fast lane (synchronous) or durable lane."""
    queue = (sync_queue if task.reply_channel else durable_queue)(task.model, task.version)
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        message = aio_pika.Message(
            task.SerializeToString(), content_type=TASK_CONTENT_TYPE, message_id=task.task_id
        )
        await channel.default_exchange.publish(message, routing_key=queue, mandatory=True)
    finally:
        await connection.close()


@dataclass
class Heard:
    """What a gateway heard of one task, in order: its pushes, then its result."""

    items: list[Chunk | Restart]
    result: task_pb2.TaskResult

    @property
    def text(self) -> str:
        return "".join(_text(item.payload) for item in self.items if isinstance(item, Chunk))


def _text(payload: bytes) -> str:
    return model_c_pb2.ModelCResponse.FromString(payload).text


class Gateway:
    """Listens on one gateway's chunk and reply channels, as a gateway does."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self.redis = aioredis.Redis.from_url(REDIS_URL)
        self.pubsub = self.redis.pubsub()
        self.items: list[Chunk | Restart] = []

    async def __aenter__(self) -> Gateway:
        await self.pubsub.subscribe(chunk_channel(self.id), reply_channel(self.id))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.pubsub.aclose()
        await self.redis.aclose()

    async def hear(self, until: float, pushes: int = 1 << 30) -> task_pb2.TaskResult | None:
        """Read until the result comes (returned), ``pushes`` pushes are in, or ``until``
        (loop time) passes; pushes heard after the result fail the test."""
        loop = asyncio.get_running_loop()
        while len(self.items) < pushes:
            remaining = until - loop.time()
            assert remaining > 0, f"heard {len(self.items)} pushes and no result in time"
            message = await self.pubsub.get_message(
                ignore_subscribe_messages=True, timeout=min(remaining, 1.0)
            )
            if message is None:
                continue
            if message["channel"].decode() == reply_channel(self.id):
                result = parse_result(message["data"], "")
                await asyncio.sleep(0.2)  # nothing may follow the result
                late = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
                assert late is None, f"a message after the result: {late}"
                return result
            item = push_item(parse_push(message["data"]))
            assert item is not None
            self.items.append(item)
        return None

    async def heard(self, seconds: float = 60.0) -> Heard:
        """Everything until the result."""
        result = await self.hear(asyncio.get_running_loop().time() + seconds)
        assert result is not None
        return Heard(self.items, result)


async def _events(task: task_pb2.Task) -> list[tuple[str, Chunk | Restart | None]]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        events = parse_entries(await client.xrange(task.events_key))
    finally:
        await client.aclose()
    return [(event.type, stream_item(event)) for event in events]


async def _cleanup(task: task_pb2.Task) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = (task.result_key, task.events_key, streamed_key(task.task_id))
        await client.delete(*keys, stop_key(task.task_id))
    finally:
        await client.aclose()


def _reference(prompt: str, max_tokens: int, seed: int) -> list[str]:
    """The pieces of an uninterrupted run, from model_c in this process."""

    async def run() -> list[str]:
        model = ModelC(chunk_delay_ms=0)
        await model.load()
        body = _request(prompt, max_tokens, seed)
        return [piece.text async for piece in model.process_stream(body)]

    return asyncio.run(run())


def _increasing(ids: list[str]) -> bool:
    keys = [tuple(int(part) for part in event_id.split("-")) for event_id in ids]
    return all(a < b for a, b in itertools.pairwise(keys))


def test_pieces_arrive_in_order_then_the_result_and_the_stream_ends_done(stack: Stack) -> None:
    model = stack.model_name("model_c")
    stack.start_worker(MODEL_C, model, CHUNK_DELAY_MS="5")
    features = stack.http.get(f"{stack.registry_url}/models/{model}").json()["features"]
    assert features == sorted([STREAM_FEATURE, TASK_BATCH_FEATURE, TEXT_GENERATION_FEATURE])

    async def scenario() -> tuple[task_pb2.Task, Heard, list[tuple[str, Chunk | Restart | None]]]:
        async with Gateway() as gateway:
            task = _task(stack, model, _request("The keeper", 40, 3), gateway.id)
            await _publish(task)
            heard = await gateway.heard()
            return task, heard, await _events(task)

    task, heard, events = asyncio.run(scenario())
    try:
        assert heard.result.WhichOneof("outcome") == "response", heard.result
        chunks = [item for item in heard.items if isinstance(item, Chunk)]
        assert len(chunks) == len(heard.items) == 40  # no restart
        assert [c.index for c in chunks] == list(range(40))
        assert {c.attempt for c in chunks} == {1}
        assert _increasing([c.id for c in chunks])
        reference = _reference("The keeper", 40, 3)
        assert [_text(c.payload) for c in chunks] == reference
        assert model_c_pb2.ModelCResponse.FromString(heard.result.response).text == "".join(
            reference
        )
        assert [kind for kind, _ in events] == ["chunk"] * 40 + ["done"]
        assert [item for _, item in events[:-1]] == chunks  # the same ids, pieces and order
        # Not streamed, through the gateway: the same text in one answer (the README's example).
        body = {"prompt": "The keeper", "max_tokens": 40, "seed": 3}
        answer = stack.http.post(f"/predict/{model}", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"text": "".join(reference)}
        readme = stack.http.post(f"/predict/{model}", json={**body, "max_tokens": 8, "seed": 7})
        assert readme.json() == {"text": " lived in it alone with a cat, a"}
    finally:
        asyncio.run(_cleanup(task))


def test_a_worker_killed_mid_stream_restarts_it_whole(stack: Stack) -> None:
    model = stack.model_name("model_c")
    doomed = stack.start_worker(MODEL_C, model, CHUNK_DELAY_MS="100", WORKER_PREFETCH="1")
    prompt, tokens, seed = "the river", 30, 21

    async def scenario() -> tuple[task_pb2.Task, Heard, list[tuple[str, Chunk | Restart | None]]]:
        async with Gateway() as gateway:
            task = _task(stack, model, _request(prompt, tokens, seed), gateway.id)
            await _publish(task)
            loop = asyncio.get_running_loop()
            assert await gateway.hear(loop.time() + 60, pushes=5) is None
            doomed.signal(9)
            await asyncio.to_thread(doomed.process.wait, 30)
            before = len(gateway.items)
            await asyncio.to_thread(stack.start_worker, MODEL_C, model, CHUNK_DELAY_MS="5")
            heard = await gateway.heard()
            assert before >= 5
            return task, heard, await _events(task)

    task, heard, events = asyncio.run(scenario())
    try:
        reference = _reference(prompt, tokens, seed)
        restarts = [i for i, item in enumerate(heard.items) if isinstance(item, Restart)]
        assert len(restarts) == 1, heard.items
        cut = restarts[0]
        first_run, second_run = heard.items[:cut], heard.items[cut + 1 :]
        assert all(isinstance(c, Chunk) for c in first_run + second_run)
        # The killed run's pieces were a true beginning; after the marker, the whole stream.
        assert [_text(c.payload) for c in first_run] == reference[: len(first_run)]  # type: ignore[union-attr]
        assert [c.index for c in second_run] == list(range(tokens))  # type: ignore[union-attr]
        assert [_text(c.payload) for c in second_run] == reference  # type: ignore[union-attr]
        assert _increasing([item.id for item in heard.items])
        assert heard.result.redelivered
        assert model_c_pb2.ModelCResponse.FromString(heard.result.response).text == "".join(
            reference
        )
        kinds = [kind for kind, _ in events]
        marker = kinds.index("restart")
        assert [item for _, item in events[:marker]] == first_run
        assert kinds[marker:] == ["restart"] + ["chunk"] * tokens + ["done"]
        # The gateway heard every piece the stream holds after the marker, with the same ids.
        assert [item for _, item in events[marker:-1]] == heard.items[cut:]
    finally:
        asyncio.run(_cleanup(task))


def test_the_stop_key_stops_the_generation_within_one_piece(stack: Stack) -> None:
    model = stack.model_name("model_c")
    stack.start_worker(MODEL_C, model, CHUNK_DELAY_MS="50")

    async def scenario() -> tuple[task_pb2.Task, Heard, int, float]:
        async with Gateway() as gateway:
            task = _task(stack, model, _request("The lamp", 200, 5), gateway.id)
            await _publish(task)
            loop = asyncio.get_running_loop()
            assert await gateway.hear(loop.time() + 60, pushes=3) is None
            await request_stop(gateway.redis, task.task_id, 60)
            stopped_at = loop.time()
            appended = sum(kind == "chunk" for kind, _ in await _events(task))
            heard = await gateway.heard()
            return task, heard, appended, loop.time() - stopped_at

    task, heard, appended, seconds = asyncio.run(scenario())
    try:
        assert heard.result.error.code == task_pb2.TaskError.CANCELLED, heard.result
        assert heard.result.error.message == "the client stopped the stream"
        events = asyncio.run(_events(task))
        chunks = sum(kind == "chunk" for kind, _ in events)
        assert chunks - appended <= 1, (appended, chunks)
        assert events[-1][0] == "cancelled"
        assert seconds < 5.0
    finally:
        asyncio.run(_cleanup(task))


def test_an_asynchronous_streamed_task_has_its_pieces_in_its_event_stream(stack: Stack) -> None:
    model = stack.model_name("model_c")
    stack.start_worker(MODEL_C, model)
    task = _task(stack, model, _request("", 12, 8))
    try:
        asyncio.run(_publish(task))

        def ended() -> list[tuple[str, Chunk | Restart | None]] | None:
            events = asyncio.run(_events(task))
            return events if events and events[-1][0] == "done" else None

        events = wait_until(ended, 60.0, interval=0.2, what="the stream's done event")
        kinds = [kind for kind, _ in events]
        assert kinds == ["started"] + ["chunk"] * 12 + ["done"]
        texts = [_text(item.payload) for _, item in events if isinstance(item, Chunk)]
        assert texts == _reference("", 12, 8)
    finally:
        asyncio.run(_cleanup(task))


def test_a_model_that_does_not_stream_answers_in_one_piece(stack: Stack) -> None:
    model = stack.model_name("model_a")
    stack.start_worker("models.model_a", model)
    payload = model_a_pb2.ModelARequest(data="whole").SerializeToString()

    async def scenario() -> tuple[task_pb2.Task, Heard]:
        async with Gateway() as gateway:
            task = _task(stack, model, payload, gateway.id)
            await _publish(task)
            return task, await gateway.heard()

    task, heard = asyncio.run(scenario())
    try:
        expected = model_a_pb2.ModelAResponse(reply="Processed message: whole")
        [piece] = heard.items
        assert isinstance(piece, Chunk) and piece.index == 0
        assert model_a_pb2.ModelAResponse.FromString(piece.payload) == expected
        assert model_a_pb2.ModelAResponse.FromString(heard.result.response) == expected
        features = stack.http.get(f"{stack.registry_url}/models/{model}").json()["features"]
        assert features == [TASK_BATCH_FEATURE]
    finally:
        asyncio.run(_cleanup(task))
